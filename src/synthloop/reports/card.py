"""The dataset card (README.md beside the exported data): a Hub YAML header, then where every row came
from, what curation and the reviewers did to it, and the Natural vs Synthetic table measured for it."""

from __future__ import annotations

import json
from typing import Any

SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


def size_category(rows: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if rows < limit), "1M<n<10M" if rows < 10**7 else "n>10M")


def yaml_header(facts: dict[str, Any], license_: str, data_files: str | None) -> str:
    lines = [
        "---",
        f"license: {json.dumps(license_)}",
        "language:",
        "- en",
        "task_categories:",
        "- text-generation",
        "- question-answering",
        "size_categories:",
        f"- {size_category(facts['rows'])}",
        "tags:",
        "- synthetic",
        "- synthloop",
        f"pretty_name: {json.dumps(str(facts['recipe_name']) + ' (synthloop)')}",
    ]
    if data_files:
        lines += ["configs:", "- config_name: default", "  data_files:", "  - split: train", f"    path: {data_files}"]
    return "\n".join([*lines, "---", ""])


def percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def number(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:,}" if isinstance(value, int) else f"{value:g}" if isinstance(value, float) else str(value)


def kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in counts.items()) or "none found"


def natural_vs_synthetic_rows(table: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(aspect, synthetic, natural) as text: the same rows in the card and in report.html."""
    s = {aspect: sides["synthetic"] for aspect, sides in table.items()}
    n = {aspect: sides["natural"] for aspect, sides in table.items()}
    audits = s["accuracy"]["human_audited_error"]
    reviewed = s["accuracy"].get("reviewed_rounds", [])
    audited = "; ".join(
        f"round {k}: {percent(e['error_rate'])} ({percent(e['low'])}–{percent(e['high'])}, "
        f"{round(100 * e['confidence'])}% CI, {e['audited']} audited)"
        for k, e in audits.items()
    )
    div_s, div_n = s["diversity"], n["diversity"]

    def diversity(d: dict[str, Any]) -> str:
        text = f"distinct-2 {d['distinct_2']:.3f}, distinct-3 {d['distinct_3']:.3f}"
        if d.get("embedding_dispersion") is not None:
            text += f", embedding dispersion {d['embedding_dispersion']:.3f}"
        return text + f" (on {d['rows_measured']} rows)"

    cost = s["cost"]
    structure = s["structure"]
    return [
        (
            "Availability",
            f"{number(s['availability']['generated'])} generated, {number(s['availability']['kept_by_curation'])} kept "
            f"by curation, {number(s['availability']['kept'])} in the dataset (reviewers' decisions applied)",
            f"{number(n['availability']['golden'])} golden rows",
        ),
        (
            "Cost",
            f"{number(cost['tokens_per_kept_row'])} tokens and ${number(cost['usd_per_kept_row'])} per kept row "
            f"({number(cost['tokens'])} tokens, ${number(cost['usd'])} in all)",
            n["cost"]["note"],
        ),
        (
            "Privacy (PII found per kind)",
            f"{kinds(s['privacy']['found_per_kind'])}; {s['privacy']['handled']}",
            f"{kinds(n['privacy']['found_per_kind'])}; {n['privacy']['handled']}",
        ),
        (
            "Accuracy",
            f"verified {percent(s['accuracy']['verified_share'])}; human-audited error: "
            + (audited or ("too few audited kept rows decided yet" if reviewed else "not reviewed")),
            n["accuracy"]["note"],
        ),
        ("Diversity", diversity(div_s), diversity(div_n)),
        (
            "Structure",
            f"parsed {percent(structure['parse_success'])} of replies (schema-enforced {percent(structure['schema_enforced_share'])})",  # noqa: E501
            f"{percent(n['structure']['parse_success'])}; {n['structure']['note']}",
        ),
    ]


def render_card(facts: dict[str, Any], license_: str, data_files: str | None, how_to_load: str) -> str:
    out = [yaml_header(facts, license_, data_files)]
    out.append(f"# {facts['recipe_name']}: synthetic data made by synthloop\n")
    out.append(
        f"{facts['rows']:,} rows ({facts['synthetic_rows']:,} synthetic, {facts['human_edited_rows']:,} written by "
        f"reviewers) from round(s) {', '.join(map(str, facts['rounds']))} of run `{facts['run_id']}`. Each row says "
        "where it came from (`teacher_backend`, `teacher_model`, `request_id`, `recipe_hash`, `round`) and why it was "
        "kept (`verdicts`: every curation stage's decision, and a reviewer's as stage `human`).\n"
    )
    out.append(f"```python\n# from the folder that holds this dataset\n{how_to_load}\n```\n")
    out.append("## Natural vs Synthetic, measured for this dataset\n")
    out.append("| | Synthetic (this dataset) | Natural (the golden set it was grounded with) |\n|---|---|---|")
    out += [f"| {a} | {s} | {n} |" for a, s, n in natural_vs_synthetic_rows(facts["natural_vs_synthetic"])]
    out.append("\n## Provenance\n")
    out.append(f"- Recipe `{facts['recipe_name']}`, hash `{facts['recipe_hash']}`; run `{facts['run_id']}`.")
    out.append(
        "- Teachers (backend:model, synthetic rows): " + ", ".join(f"`{t}` {n:,}" for t, n in facts["teachers"].items())
    )
    out.append("- Rows per skill: " + ", ".join(f"{k} {n:,}" for k, n in facts["per_skill"].items()))
    versions = facts["versions"]
    out.append("- Made with " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    out.append("\n## Curation\n")
    c = facts["curation"]
    out.append(f"Stages, in order: {', '.join(c['stages']) or 'none'}.\n")
    out.append(
        "| Round | Generated | Kept | Rejected (per reason) | Teacher calls (failed) | PII found |\n"
        "|---|---|---|---|---|---|"
    )
    for r in facts["per_round"]:
        rejected = ", ".join(f"{k} {v}" for k, v in r["rejected"].items()) or "none"
        calls = r["calls"]
        out.append(
            f"| {r['round']} | {r['generated']:,} | {r['kept']:,} | {rejected} | {calls['issued']:,} "
            f"({calls['failed']:,}) | {kinds(r['pii'])} |"
        )
    sets = c["decontamination_sets"]
    out.append(
        "\n- Decontamination: "
        + (f"against {', '.join(sets)} ({json.dumps(c['decontamination'])})." if sets else "off.")
    )
    out.append(f"- PII policy: {c['pii_policy']} (kinds found are counted per round above).")
    out.append("\n## Human review\n")
    if not facts["review"]:
        out.append("Nobody reviewed these rounds (`synthloop review RUN`).")
    for k, f in facts["review"].items():
        h, e = f["human"], f["kept_error"]
        out.append(
            f"- Round {k}: {f['decided']:,} rows decided ({h['accepted']} accepted, {h['rejected']} rejected, "
            f"{h['edited']} edited, {h['overturned']} against curation); audit slice {f['audit']['decided']} of "
            f"{f['audit']['size']} decided."
        )
        if e.get("error_rate") is not None:
            out.append(
                f"  - Kept rows' error rate {percent(e['error_rate'])} ({percent(e['low'])}–{percent(e['high'])}, "
                f"{round(100 * e['confidence'])}% CI; prediction-powered from {e['audited']} audited rows)."
            )
        for stage, s in f["stages"].items():
            out.append(
                f"  - {stage} vs the humans ({s['rows']} audited rows): precision {number(rounded(s['precision']))}, "
                f"recall {number(rounded(s['recall']))}, Cohen's kappa {number(rounded(s['kappa']))}"
            )
        alpha = f["reviewers"]["alpha"]
        out.append(
            f"  - Reviewers: Krippendorff's alpha {number(rounded(alpha))} over "
            f"{f['reviewers']['rows_with_several_reviewers']} rows decided by several"
        )
    out.append("\n## Limits\n")
    out.append(
        "Synthetic rows were written by the teacher(s) above and kept by automatic checks; the error rate above is "
        "what the human audit measured, not zero. Check the license of every teacher model before use."
    )
    return "\n".join(out) + "\n"


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
