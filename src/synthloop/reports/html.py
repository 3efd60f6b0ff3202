"""report.html: what each round did and what it changed, readable offline."""

from __future__ import annotations

from html import escape
from typing import Any

from synthloop.evaluation.allocate import weakness_report
from synthloop.reports.svg import line_chart, stacked_bars
from synthloop.storage.atomic import read_json, write_text
from synthloop.storage.rundir import RunDir

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}h2{margin-top:1.6em}"
    ".warning{background:#fff3cd;border:1px solid #e0c060;padding:6px}"
)


def write_report(run: RunDir) -> None:
    from synthloop.reports.story import story

    manifest = read_json(run.manifest)
    rounds = read_json(run.metrics)["rounds"] if run.metrics.exists() else []
    write_text(run.report, render(manifest, rounds, story(run.root, manifest, rounds)))


def render(manifest: dict[str, Any], rounds: list[dict[str, Any]], extra: dict[str, str] | None = None) -> str:
    """The report; `extra` holds the sections read from the run's rows (reports/story.py), by place."""
    extra = extra or {}
    recipe = manifest["recipe"]
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>synthloop: {escape(recipe['name'])}</title>",
        f"<style>{STYLE}</style><h1>synthloop run: {escape(recipe['name'])}</h1>",
        f"<p>recipe hash <code>{manifest['recipe_hash']}</code>, teacher <code>{escape(recipe['teacher']['backend'])}"
        f"</code> ({escape(recipe['teacher']['model'])}), {len(rounds)} of {recipe['rounds']} rounds finished.</p>",
        *(f"<p class='warning'><strong>Warning:</strong> {escape(w)}</p>" for w in manifest.get("warnings", [])),
    ]
    if not rounds:
        return "".join([*parts, "<p>No round has finished yet.</p>"])
    labels = [f"round {r['round']}" for r in rounds]
    skills = list(rounds[0]["eval"]["per_skill"])
    accuracy = {s: [r["eval"]["per_skill"][s] for r in rounds] for s in skills}
    accuracy["macro"] = [r["eval"]["macro"] for r in rounds]
    parts += [
        "<h2>Per-skill accuracy on the held-out probes</h2>",
        line_chart(accuracy, labels, 1.0, "accuracy"),
        accuracy_table(rounds, skills),
        "<p>In brackets: the 95% interval (Wilson) of each accuracy, from its number of probes.</p>",
        weakness_paragraph(rounds[-1]),
        extra.get("probes", ""),
        extra.get("loss", ""),
        extra.get("natural", ""),
        extra.get("review", ""),
        "<h2>Generation budget per skill</h2><p>Round 1 is uniform; later rounds follow the weakness report.</p>",
        stacked_bars([r["allocation"] for r in rounds], labels, "share of budget"),
        extra.get("teacher", ""),
        "<h2>Kept and rejected rows</h2>",
        stacked_bars([{"kept": r["counts"]["kept"], **r["counts"]["rejected"]} for r in rounds], labels, "rows"),
        counts_table(rounds),
        kept_per_category_table(rounds, skills),
        kept_per_task_table(rounds),
        findings_table(rounds),
        mistakes_section(rounds, skills),
        extra.get("examples", ""),
        guards_section(rounds),
        "<h2>Monitor and timings</h2>",
        monitor_table(rounds),
        monitor_explained(rounds),
        extra.get("recipe", ""),
    ]
    return "".join(parts)


def weakness_paragraph(last: dict[str, Any]) -> str:
    """The weakness report after the last finished round: the next round's budget follows it."""
    ranked = weakness_report(last["eval"]["per_skill"])
    items = ", ".join(f"{escape(r['skill'])} {r['accuracy']:.2f}" for r in ranked)
    return f"<p><b>Weakness report after round {last['round']}</b> (weakest first): {items}.</p>"


def accuracy_table(rounds: list[dict[str, Any]], skills: list[str]) -> str:
    head = "".join(f"<th>round {r['round']}</th>" for r in rounds)

    def cell(r: dict[str, Any], skill: str) -> str:
        ci = r["eval"].get("per_skill_ci", {}).get(skill)
        interval = f" <small>[{ci[0]:.2f}, {ci[1]:.2f}] n={ci[2]}</small>" if ci else ""
        return f"<td>{r['eval']['per_skill'][skill]:.2f}{interval}</td>"

    body = "".join(f"<tr><td>{escape(s)}</td>" + "".join(cell(r, s) for r in rounds) + "</tr>" for s in skills)
    macro = "".join(f"<td><b>{r['eval']['macro']:.3f}</b></td>" for r in rounds)
    return f"<table><tr><th>skill</th>{head}</tr>{body}<tr><td><b>macro</b></td>{macro}</tr></table>"


def counts_table(rounds: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>round {r['round']}</td><td>{r['counts']['generated']}</td><td>{r['counts']['kept']}</td>"
        f"<td>{escape(', '.join(f'{k}: {v}' for k, v in r['counts']['rejected'].items()) or '-')}</td>"
        f"<td>{r['counts']['train_rows']}</td><td>{r['counts']['golden_rows']}</td></tr>"
        for r in rounds
    )
    return (
        "<table><tr><th>round</th><th>generated</th><th>kept</th><th>rejected by reason</th>"
        f"<th>training rows</th><th>golden rows</th></tr>{rows}</table>"
    )


def kept_per_category_table(rounds: list[dict[str, Any]], skills: list[str]) -> str:
    """Rows kept for training per category: a category that kept nothing is marked, not hidden."""
    head = "".join(f"<th>round {r['round']}</th>" for r in rounds)

    def cell(r: dict[str, Any], skill: str) -> str:
        kept = r["counts"].get("kept_per_category", {}).get(skill)
        if kept is None:
            return "<td>-</td>"
        return "<td style='background:#f8d7da'><b>0</b></td>" if kept == 0 else f"<td>{kept}</td>"

    body = "".join(f"<tr><td>{escape(s)}</td>{''.join(cell(r, s) for r in rounds)}</tr>" for s in skills)
    return (
        "<p>Rows kept per skill or category (a 0 is marked: nothing new to train on there).</p>"
        f"<table><tr><th>kept</th>{head}</tr>{body}</table>"
    )


def kept_per_task_table(rounds: list[dict[str, Any]]) -> str:
    """Rows kept per task (the written problems, each prompt task) and category, 0 marked; and the rows
    kept without a verifier (no checkable answer, no judge). Only for runs with prompt tasks."""
    if not any(len(r["counts"].get("kept_per_task", {})) > 1 for r in rounds):
        return ""
    pairs = list(
        dict.fromkeys((t, c) for r in rounds for t, per in r["counts"].get("kept_per_task", {}).items() for c in per)
    )
    head = "".join(f"<th>round {r['round']}</th>" for r in rounds)

    def cell(r: dict[str, Any], task: str, category: str) -> str:
        kept = r["counts"].get("kept_per_task", {}).get(task, {}).get(category)
        if kept is None:
            return "<td>-</td>"
        return "<td style='background:#f8d7da'><b>0</b></td>" if kept == 0 else f"<td>{kept}</td>"

    body = "".join(
        f"<tr><td>{escape(t)} / {escape(c)}</td>{''.join(cell(r, t, c) for r in rounds)}</tr>" for t, c in pairs
    )

    def listed(counts: dict[str, int]) -> str:
        return escape(", ".join(f"{k}: {v}" for k, v in counts.items()) or "-")

    unverified = "".join(f"<td>{listed(r['counts'].get('unverified_per_task', {}))}</td>" for r in rounds)
    return (
        "<p>Rows kept per task and category (the written problems and each prompt task; a 0 is marked).</p>"
        f"<table><tr><th>task / category</th>{head}</tr>{body}"
        f"<tr><td>kept unverified (no checkable answer, no judge)</td>{unverified}</tr></table>"
    )


def findings_table(rounds: list[dict[str, Any]]) -> str:
    """PII found per kind (redacted or dropped), rows breaking each quality rule, and how often a
    pairwise judge gave the same winner in both orders."""

    def listed(counts: dict[str, int]) -> str:
        return escape(", ".join(f"{k}: {v}" for k, v in counts.items()) or "none")

    rows = []
    for r in rounds:
        found = r.get("curation", {})
        pairwise = found.get("pairwise")
        agreement = f"{pairwise['orders_agreed']} of {pairwise['pairs']}" if pairwise else "-"
        rows.append(
            f"<tr><td>round {r['round']}</td><td>{listed(found['pii']) if 'pii' in found else 'off'}</td>"
            f"<td>{listed(found['quality_rules']) if 'quality_rules' in found else 'off'}</td><td>{agreement}</td>"
            f"<td>{listed(found.get('abstained', {}))}</td></tr>"
        )
    return (
        "<table><tr><th>round</th><th>PII found (per kind)</th><th>quality rules broken (rows per rule)</th>"
        "<th>pairwise judge: orders agreed</th><th>rows a verifier could not judge (per stage)</th></tr>"
        f"{''.join(rows)}</table>"
    )


def mistakes_section(rounds: list[dict[str, Any]], skills: list[str]) -> str:
    """The teacher's mistakes that verification caught, per skill and round, with examples."""
    found = [r.get("curation", {}).get("mistakes_per_category") for r in rounds]
    if not any(found):
        return ""
    head = "".join(f"<th>round {r['round']}</th>" for r in rounds)

    def cell(per: dict[str, Any] | None, skill: str) -> str:
        counts = (per or {}).get(skill, {})
        return f"<td>{escape(', '.join(f'{k}: {v}' for k, v in counts.items()) or '0')}</td>"

    body = "".join(f"<tr><td>{escape(s)}</td>{''.join(cell(per, s) for per in found)}</tr>" for s in skills)
    examples = rounds[-1].get("curation", {}).get("mistake_examples", {})
    shown = "".join(
        f"<tr><td>{escape(skill)}</td><td>{escape(e['question'])}</td><td>{escape(e['teacher'])}</td>"
        f"<td>{escape(str(e['reference']))}</td><td>{escape(e['reason'])}</td></tr>"
        for skill, listed in examples.items()
        for e in listed
    )
    return (
        "<h2>Teacher mistakes caught by verification</h2><p>Rows rejected because the teacher's final answer was "
        "wrong or missing, per skill: none of them reached training.</p>"
        f"<table><tr><th>skill</th>{head}</tr>{body}</table>"
        + (
            f"<p>Examples from round {rounds[-1]['round']}:</p><table><tr><th>skill</th><th>question</th>"
            f"<th>teacher wrote</th><th>reference</th><th>reason</th></tr>{shown}</table>"
            if shown
            else ""
        )
    )


def monitor_table(rounds: list[dict[str, Any]]) -> str:
    figures = list(dict.fromkeys(k for r in rounds for k in r["monitor"]))
    timings = list(dict.fromkeys(k for r in rounds for k in r["timings_s"]))
    rows = "".join(
        f"<tr><td>round {r['round']}</td>"
        + "".join(f"<td>{shown(r['monitor'].get(k))}</td>" for k in figures)
        + "".join(f"<td>{shown(r['timings_s'].get(k), '.1f')}</td>" for k in timings)
        + "</tr>"
        for r in rounds
    )
    keys = figures + [f"{k} (s)" for k in timings]
    return "<table><tr><th>round</th>" + "".join(f"<th>{escape(k)}</th>" for k in keys) + f"</tr>{rows}</table>"


def shown(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec) if spec else escape(str(value))


def monitor_explained(rounds: list[dict[str, Any]]) -> str:
    shown_figures = dict.fromkeys(k for r in rounds for k in r["monitor"])
    items = "".join(f"<li><b>{escape(k)}</b>: {escape(FIGURES[k])}</li>" for k in shown_figures if k in FIGURES)
    return f"<p>What the figures measure:</p><ul>{items}</ul>" if items else ""


FIGURES = {  # what each monitor figure measures, for the report's readers
    "distinct_2_questions": "unique word pairs over all word pairs of the synthetic questions",
    "distinct_3_texts": "the same with word triples of whole synthetic rows",
    "compression_ratio": "how well the synthetic rows compress together (higher: more repetition)",
    "unique_question_share": "share of synthetic rows whose question no other row has",
    "embedding_dispersion": "mean cosine distance between MiniLM embeddings of synthetic rows",
    "vendi_score": "effective number of distinct rows in a 512-row sample (MiniLM embeddings)",
    "golden_loss": "the student's loss on golden rows held out of training (drift from real data)",
    "tail_coverage": "share of rare golden word pairs the student still writes on those rows' questions",
    "synthetic_share_of_train": "share of the training mix that is synthetic (the rest is golden)",
    "golden_perplexity": "exp of golden_loss: how surprised the student is by real data (rising: drifting away)",
    "golden_loss_diverged": "the student's loss on golden rows is not a number: training diverged",
    "drift_rows": "golden rows held out of every round's training to measure drift on",
}


def guards_section(rounds: list[dict[str, Any]]) -> str:
    """Each guarded figure relative to round 1 (the curve the guard watches), and what each round's
    guards found and did."""
    decided = [r.get("guards") for r in rounds]
    if not any(decided):
        return ""
    metrics = list(dict.fromkeys(c["metric"] for d in decided if d for c in d["checks"]))
    first = rounds[0]["monitor"]
    series = {  # only figures measured in every round: a gap drawn as 0 would look like a collapse
        m: [r["monitor"][m] / first[m] for r in rounds]
        for m in metrics
        if first.get(m) and all(isinstance(r["monitor"].get(m), int | float) for r in rounds)
    }
    peak = max([1.5, *(v for values in series.values() for v in values)])
    rows = []
    for r, d in zip(rounds, decided, strict=True):
        for c in (d or {}).get("checks", []):
            moved = "-" if c["worsened_by"] is None else f"{c['worsened_by']:+.0%}"
            taken = f"<b>{escape(c['action'])}</b>" if c["triggered"] else "none"
            rows.append(
                f"<tr><td>round {r['round']}</td><td>{escape(c['metric'])}</td><td>{shown(c['round_1'])}</td>"
                f"<td>{shown(c['value'])}</td><td>{moved} ({escape(c['worse_when'])} is worse)</td>"
                f"<td>{c['tolerance']:.0%}</td><td>{taken}</td></tr>"
            )
    ratios = ", ".join(f"round {r['round']}: {shown(r.get('golden_ratio'))}" for r in rounds)
    stopped = [r["round"] for r, d in zip(rounds, decided, strict=True) if d and d.get("stop")]
    explained = "".join(f"<li><b>{escape(m)}</b>: {escape(FIGURES[m])}</li>" for m in metrics if m in FIGURES)
    return "".join(
        [
            "<h2>Collapse guards</h2><p>Each guarded figure relative to round 1 (1.0: unchanged). A guard acts "
            "when its figure moves the bad way by more than its tolerance (recipe <code>monitor.guards</code>).</p>",
            line_chart(series, [f"round {r['round']}" for r in rounds], peak, "relative to round 1") if series else "",
            f"<ul>{explained}</ul>",
            "<table><tr><th>after</th><th>figure</th><th>round 1</th><th>now</th><th>change</th><th>tolerance</th>"
            f"<th>action taken</th></tr>{''.join(rows)}</table>"
            if rows
            else "",
            f"<p>Golden ratio of each round's training mix: {ratios}.</p>",
            f"<p class='warning'>A guard stopped the run after round {stopped[0]}.</p>" if stopped else "",
        ]
    )
