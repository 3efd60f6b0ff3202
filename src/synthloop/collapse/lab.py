"""`synthloop collapse`: run an experiment under several strategies over generations and seeds, and write
the metric per generation and strategy (mean and spread) as `results.csv` and `results.md`, and as
`results.png` where matplotlib is installed (`pip install 'synthloop[lab]'`)."""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from synthloop.collapse.strategies import Strategy, StrategyError, parse_strategy
from synthloop.collapse.toy import gaussian, linear, linear_accumulate_bound, linear_error_per_fit
from synthloop.storage.atomic import atomic_write, write_text

Experiment = Callable[[Strategy, int, int], np.ndarray]
EXPERIMENTS: dict[str, tuple[Experiment, str]] = {  # name -> (run, what its metric is)
    "gaussian": (gaussian, "fitted sigma (real data: 1)"),
    "linear": (linear, "||w - w*||^2"),
}
REPORTED = 12  # generations shown in the Markdown table (the CSV has them all)


def run_lab(experiment: str, strategies: list[str], generations: int, seeds: int, out: Path) -> list[str]:
    """Run it, write out/results.csv and out/results.md, return the Markdown lines."""
    if experiment not in EXPERIMENTS:
        close = difflib.get_close_matches(experiment, EXPERIMENTS, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise StrategyError(f"unknown experiment {experiment!r}; {hint}this version has: {', '.join(EXPERIMENTS)}")
    if generations < 1 or seeds < 1:
        raise StrategyError(f"--generations and --seeds must be at least 1, got {generations} and {seeds}")
    parsed = [parse_strategy(name) for name in strategies]
    run, metric = EXPERIMENTS[experiment]
    curves = {strategy.name: run(strategy, generations, seeds) for strategy in parsed}
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.csv", table_csv(curves))
    lines = markdown(experiment, metric, curves, seeds)
    write_text(out / "results.md", "\n".join(lines) + "\n")
    if not write_plot(experiment, metric, curves, out / "results.png"):
        lines += ["", "(no results.png: matplotlib is not installed; pip install 'synthloop[lab]')"]
    return lines


def write_plot(experiment: str, metric: str, curves: dict[str, np.ndarray], path: Path) -> bool:
    """The median over seeds per generation, a band from the 10th to the 90th percentile; False without
    matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, values in curves.items():
        generations = np.arange(len(values))
        axes.plot(generations, np.median(values, axis=1), label=name)
        low, high = np.percentile(values, [10, 90], axis=1)
        axes.fill_between(generations, low, high, alpha=0.2)
    if len(next(iter(curves.values()))) > 50:
        axes.set_xscale("symlog")
    axes.set(xlabel="generation", ylabel=metric, title=f"collapse lab: {experiment}")
    axes.legend()
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"))
    plt.close(figure)
    return True


def table_csv(curves: dict[str, np.ndarray]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["strategy", "generation", "mean", "std", "median", "min", "max"])
    for name, values in curves.items():
        for generation, row in enumerate(values):
            stats = (row.mean(), row.std(), np.median(row), row.min(), row.max())
            writer.writerow([name, generation, *(f"{v:.6g}" for v in stats)])
    return buffer.getvalue()


def markdown(experiment: str, metric: str, curves: dict[str, np.ndarray], seeds: int) -> list[str]:
    generations = len(next(iter(curves.values()))) - 1
    shown = sorted({round(g) for g in np.geomspace(1, generations, num=min(REPORTED, generations))} | {0})
    lines = [
        f"# Collapse lab: {experiment}",
        "",
        f"{metric}, mean ± standard deviation over {seeds} seeds; generation 0 is the fit on real data.",
        "",
        "| generation | " + " | ".join(curves) + " |",
        "|---|" + "---|" * len(curves),
    ]
    for generation in shown:
        cells = [f"{values[generation].mean():.4g} ± {values[generation].std():.2g}" for values in curves.values()]
        lines.append(f"| {generation} | " + " | ".join(cells) + " |")
    if experiment == "linear":
        lines += [
            "",
            f"Theory (d=10, T=100, sigma^2=1): one fit {linear_error_per_fit():.4f}; replace after n fits n times "
            f"that; accumulate under {linear_accumulate_bound():.4f} (pi^2/6 times it).",
        ]
    return lines
