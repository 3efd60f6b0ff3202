"""The parts of report.html that help decide what to do next, read from the run directory: what the
teacher cost and where its calls failed, kept and rejected rows per reason, the student's answers on
probes (right and wrong), the loss curves, the human review, the Natural vs Synthetic table, and the
recipe itself."""

from __future__ import annotations

import math
from html import escape
from itertools import islice
from pathlib import Path
from typing import Any

import yaml

from synthloop.monitoring import embeddings
from synthloop.reports.card import natural_vs_synthetic_rows, percent
from synthloop.reports.svg import line_chart
from synthloop.review.agreement import wilson
from synthloop.storage.atomic import read_json
from synthloop.storage.shards import iter_records

EXAMPLES = 2  # rows shown per reject reason (and kept rows), from the last round
PROBE_EXAMPLES = 2  # right and wrong answers shown per skill


def per_skill_intervals(items: list[dict[str, Any]]) -> dict[str, list[float]]:
    """skill -> [low, high, probes] of its accuracy's 95% interval."""
    scores: dict[str, list[float]] = {}
    for item in items:
        scores.setdefault(item["skill"], []).append(float(item["score"]))
    return {skill: [*(round(v, 4) for v in wilson(sum(s) / len(s), len(s))), len(s)] for skill, s in scores.items()}


def table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def short(text: str | None, limit: int = 240) -> str:
    flat = " ".join((text or "").split())
    return escape(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def teacher_section(rounds: list[dict[str, Any]], per_round: list[dict[str, Any]]) -> str:
    """Calls, tokens and cost per round (metrics.json), and the failed calls' errors (`dataset_facts`)."""
    errors_of = {f["round"]: f["errors"] for f in per_round}
    rows = []
    failures: list[str] = []
    for r in rounds:
        t = r["teacher"]
        rows.append(
            [
                f"round {r['round']}",
                str(t["issued"]),
                str(t["cached"]),
                str(t["failed"]),
                f"{t['prompt_tokens']:,}",
                f"{t['completion_tokens']:,}",
                f"${t['cost_usd'] or 0:.4f}",
            ]
        )
        failures += [
            f"<li>round {r['round']}: {n} × <code>{escape(e)}</code></li>"
            for e, n in list(errors_of.get(r["round"], {}).items())[:5]  # the most frequent first
        ]
    head = ["round", "calls made", "cached", "failed", "prompt tokens", "completion tokens", "cost"]
    out = "<h2>Teacher calls, tokens and cost</h2>" + table(head, rows)
    if failures:
        out += (
            "<p>Failed calls (kept as failed rows, rejected as <code>teacher_error</code>; "
            f"<code>--resume</code> sends them again):</p><ul>{''.join(failures)}</ul>"
        )
    return out


def examples_section(run_root: Path, number: int) -> str:
    rdir = run_root / "rounds" / f"{number:02d}"
    if not (rdir / "curated").is_dir():
        return ""
    kept = list(islice(iter_records(rdir / "curated"), EXAMPLES))
    by_reason: dict[str, list[Any]] = {}
    for row in iter_records(rdir / "rejected"):
        shown = by_reason.setdefault(row.reject_reason or "rejected", [])
        if len(shown) < EXAMPLES:
            shown.append(row)
    rows = [["kept", short(r.question), short(r.answer, 80), short(r.reference_answer, 80), ""] for r in kept]
    for reason, examples in by_reason.items():
        for r in examples:
            detail = next((v.detail for v in r.verdicts if not v.keep), None)
            rows.append([f"<b>{escape(reason)}</b>", short(r.question), short(r.answer, 80),
                         short(r.reference_answer, 80), short(detail or r.error, 160)])  # fmt: skip
    return (
        f"<h2>Examples of kept and rejected rows (round {number})</h2>"
        "<p>Every row is in <code>curated/</code> or <code>rejected/</code> with all its verdicts; "
        "<code>synthloop review</code> shows them one by one.</p>"
        + table(["decision", "question", "answer", "reference", "why"], rows)
    )


def probes_section(run_root: Path, number: int) -> str:
    path = run_root / "rounds" / f"{number:02d}" / "eval.json"
    try:
        items = read_json(path).get("items", [])
    except (OSError, ValueError):
        return ""
    rows = []
    for skill in dict.fromkeys(item["skill"] for item in items):
        mine = [i for i in items if i["skill"] == skill]
        right = [i for i in mine if i["score"] >= 1.0][:PROBE_EXAMPLES]
        wrong = [i for i in mine if i["score"] < 1.0][:PROBE_EXAMPLES]
        for item in right + wrong:
            verdict = "right" if item["score"] >= 1.0 else "<b>wrong</b>"
            rows.append([escape(skill), verdict, short(item["question"], 160), short(item["reference"], 60),
                         short(item.get("extracted"), 60), short(item["output"], 200)])  # fmt: skip
    return f"<h2>The student's answers on probes (round {number})</h2>" + table(
        ["skill", "", "question", "reference", "its answer", "what it wrote"], rows
    )


def loss_section(rounds: list[dict[str, Any]]) -> str:
    curves = {f"round {r['round']}": r["train"].get("loss_curve") or [] for r in rounds}
    curves = {name: points for name, points in curves.items() if points}
    if not curves:
        return ""
    longest = max(curves.values(), key=len)
    series = {name: [loss for _, loss in points] for name, points in curves.items()}
    peak = max(v for values in series.values() for v in values if math.isfinite(v))
    labels = [str(step) if i % max(1, len(longest) // 8) == 0 else "" for i, (step, _) in enumerate(longest)]
    return (
        "<h2>Training loss</h2><p>Each round continues from the round before; loss per step (mean over the "
        "step's completion tokens).</p>" + line_chart(series, labels, peak * 1.05, "loss")
    )


def natural_section(facts: dict[str, Any]) -> str:
    rows = [[escape(a), escape(s), escape(n)] for a, s, n in natural_vs_synthetic_rows(facts["natural_vs_synthetic"])]
    return (
        "<h2>Natural vs Synthetic, measured for this dataset</h2><p>The rows <code>synthloop export</code> writes "
        "(human decisions applied) against the golden rows the rounds were grounded with; the same table is in the "
        "exported dataset card.</p>" + table(["", "synthetic", "natural (golden)"], rows)
    )


def review_section(facts: dict[str, Any]) -> str:
    if not facts["review"]:
        return (
            "<h2>Human review</h2><p>Nobody has reviewed this run: <code>synthloop review RUN</code> opens a queue of "
            "the rows the stages disagree on and a random audit slice, and measures the stages against you.</p>"
        )
    parts = ["<h2>Human review</h2>"]
    for number, f in facts["review"].items():
        h, e = f["human"], f["kept_error"]
        line = (
            f"<p>Round {number}: {f['decided']} rows decided ({h['accepted']} accepted, {h['rejected']} rejected, "
            f"{h['edited']} edited, {h['overturned']} against curation); audit slice {f['audit']['decided']} of "
            f"{f['audit']['size']}."
        )
        if e.get("error_rate") is not None:
            line += (
                f" Kept rows' error rate <b>{percent(e['error_rate'])}</b> ({percent(e['low'])}–{percent(e['high'])}, "
                f"{round(100 * e['confidence'])}% CI, prediction-powered from {e['audited']} audited rows)."
            )
        parts.append(line + "</p>")
        rows = [
            [escape(stage), str(s["rows"]), fmt(s["precision"]), fmt(s["recall"]), fmt(s["kappa"])]
            for stage, s in f["stages"].items()
        ]
        parts.append(table(["stage vs the humans", "audited rows", "precision", "recall", "Cohen's kappa"], rows))
        r = f["reviewers"]
        parts.append(
            f"<p>Reviewers: Krippendorff's alpha {fmt(r['alpha'])} over {r['rows_with_several_reviewers']} rows "
            f"decided by several ({r['rows_disagreed']} disagree).</p>"
        )
    return "".join(parts)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def recipe_section(recipe: dict[str, Any]) -> str:
    text = yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True)
    return f"<h2>The recipe</h2><details><summary>as run</summary><pre>{escape(text)}</pre></details>"


def story(run_root: Path, manifest: dict[str, Any], rounds: list[dict[str, Any]]) -> dict[str, str]:
    """The extra sections, by where they go. The Natural vs Synthetic diversity row uses the embedding model
    only when this process has it loaded already (a run with the embedding monitor): never a cold load."""
    from synthloop.reports.dataset import dataset_facts

    if not rounds:
        return {}
    last = rounds[-1]["round"]
    facts = dataset_facts(run_root, embed=embeddings.available() and embeddings.embedder.cache_info().currsize > 0)
    return {
        "teacher": teacher_section(rounds, facts["per_round"]),
        "examples": examples_section(run_root, last),
        "probes": probes_section(run_root, last),
        "loss": loss_section(rounds),
        "review": review_section(facts),
        "natural": natural_section(facts),
        "recipe": recipe_section(manifest["recipe"]),
    }
