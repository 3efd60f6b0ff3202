"""Two small chart kinds as inline SVG, so the report opens in any browser with no network."""

from __future__ import annotations

from html import escape

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#1f77b4",
    "#d62728",
)
W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 300, 48, 170, 16, 36


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def legend(names: list[str]) -> str:
    return "".join(
        f'<rect x="{W - RIGHT + 12}" y="{TOP + i * 18}" width="10" height="10" fill="{color(i)}"/>'
        f'<text x="{W - RIGHT + 28}" y="{TOP + i * 18 + 9}" font-size="11">{escape(n)}</text>'
        for i, n in enumerate(names)
    )


def frame(x_labels: list[str], y_max: float, y_label: str) -> tuple[str, callable, callable]:
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    step = plot_w / max(1, len(x_labels))

    def x(i: float) -> float:
        return LEFT + step * (i + 0.5)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / y_max) if y_max else TOP + plot_h

    parts = [
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#888"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#888"/>',
    ]
    for k in range(5):
        v = y_max * k / 4
        label = f"{v:.2f}" if y_max <= 1 else f"{v:.0f}"
        parts.append(f'<text x="{LEFT - 6}" y="{y(v) + 4}" font-size="10" text-anchor="end">{label}</text>')
        parts.append(f'<line x1="{LEFT}" y1="{y(v)}" x2="{LEFT + plot_w}" y2="{y(v)}" stroke="#eee"/>')
    for i, label in enumerate(x_labels):
        parts.append(f'<text x="{x(i)}" y="{H - 14}" font-size="11" text-anchor="middle">{escape(label)}</text>')
    parts.append(
        f'<text x="12" y="{TOP + plot_h / 2}" font-size="11" transform="rotate(-90 12 {TOP + plot_h / 2})" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    return "".join(parts), x, y


def line_chart(series: dict[str, list[float]], x_labels: list[str], y_max: float, y_label: str) -> str:
    body, x, y = frame(x_labels, y_max, y_label)
    for i, (name, values) in enumerate(series.items()):
        points = " ".join(f"{x(j):.1f},{y(v):.1f}" for j, v in enumerate(values))
        body += f'<polyline points="{points}" fill="none" stroke="{color(i)}" stroke-width="2"/>'
        body += "".join(
            f'<circle cx="{x(j):.1f}" cy="{y(v):.1f}" r="3" fill="{color(i)}"><title>{escape(name)}: '
            f"{v:.3f}</title></circle>"
            for j, v in enumerate(values)
        )
    return f'<svg width="{W}" height="{H}" xmlns="http://www.w3.org/2000/svg">{body}{legend(list(series))}</svg>'


def stacked_bars(stacks: list[dict[str, float]], x_labels: list[str], y_label: str) -> str:
    names = list(dict.fromkeys(k for s in stacks for k in s))  # first-seen order: colours match the other charts
    y_max = max((sum(s.values()) for s in stacks), default=1) or 1
    body, x, y = frame(x_labels, y_max, y_label)
    width = (W - LEFT - RIGHT) / max(1, len(stacks)) * 0.6
    for j, stack in enumerate(stacks):
        bottom = 0.0
        for i, name in enumerate(names):
            v = stack.get(name, 0.0)
            if v:
                body += (
                    f'<rect x="{x(j) - width / 2:.1f}" y="{y(bottom + v):.1f}" width="{width:.1f}" '
                    f'height="{y(bottom) - y(bottom + v):.1f}" fill="{color(i)}"><title>{escape(name)}: '
                    f"{v:.3g}</title></rect>"
                )
            bottom += v
    return f'<svg width="{W}" height="{H}" xmlns="http://www.w3.org/2000/svg">{body}{legend(names)}</svg>'
