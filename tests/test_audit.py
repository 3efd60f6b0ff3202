"""`synthloop audit`: each stage's precision and recall on rows whose right decision is known, and
`synthloop curate` on a user's rows."""

import json

import pytest

from synthloop.cli.main import main
from synthloop.config import load_recipe
from synthloop.curation.audit import Labelled, audit, embedded_sample, read_labelled
from synthloop.curation.judge import LLMJudge, PairwiseJudge
from synthloop.curation.pipeline import Context, build_stages
from synthloop.records import Record
from synthloop.storage.input_files import InputFileError
from synthloop.storage.shards import read_records
from synthloop.teachers.engine import Engine, EngineSettings
from synthloop.teachers.openai_http import OpenAITeacher
from synthloop.testing import serve_in_thread
from synthloop.testing.judges import reference_judge
from synthloop.testing.simulated_server import SimulatedServer


def by_stage(results):
    return {r.stage: r for r in results}


def test_embedded_audit_rejects_every_injected_wrong_answer_and_no_right_one():
    sample = embedded_sample(rows_per_skill=60, wrong=0.3, seed=3)
    drops = sum(item.label == "drop" for item in sample.rows)
    assert 0.2 * len(sample.rows) < drops < 0.4 * len(sample.rows)
    results = by_stage(audit(build_stages(load_recipe().curation, Context(probes=sample.probes)), sample.rows))
    verify = results["verify"]
    assert (verify.tp, verify.fp, verify.fn) == (drops, 0, 0) and verify.precision == verify.recall == 1.0
    assert results["dedup"].recall == 1.0 and results["dedup"].fp == 0
    leaked = sum(item.stage_labels["decontaminate"] == "drop" for item in sample.rows)
    assert leaked > 0 and results["decontaminate"].tp == leaked and results["decontaminate"].fn == 0
    assert results["pii"].flagged == 0 and results["quality"].flagged == 0
    # Each false positive is listed with the stage's reason, so a reader sees why it was wrong.
    assert all(row["reason"] == "contaminated" for row in results["decontaminate"].false_positives)


def test_each_stage_is_scored_alone_on_a_fresh_copy():
    rows = [
        Labelled(
            Record("solution", "addition", "What is 2 + 2?", "synthetic", 0, answer="5", reference_answer="4"), "drop"
        )
    ]
    rows.append(
        Labelled(
            Record("solution", "addition", "What is 2 + 2?", "synthetic", 0, answer="4", reference_answer="4"),
            "keep",
            {"dedup": "drop"},
        )
    )
    results = by_stage(audit(build_stages(load_recipe().curation, Context()), rows))
    # In a real run the verifier would have removed the first row; alone, dedup sees both and is right.
    assert (results["dedup"].tp, results["dedup"].fp) == (1, 0)
    assert rows[0].record.verdicts == [], "the sample itself is not changed"


@pytest.fixture
def judge_engine():
    contexts = []

    def start(references, **behaviour):
        server = SimulatedServer(
            max_concurrent=0, seconds_per_token=0.0, responder=reference_judge(references, **behaviour)
        )
        context = serve_in_thread(server.app())
        contexts.append(context)
        url = context.__enter__()
        return Engine(OpenAITeacher("simulated", f"{url}/v1"), EngineSettings(concurrency=8, max_retries=1))

    yield start
    for context in contexts:
        context.__exit__(None, None, None)


def labelled_sums(n=40):
    rows = []
    for a in range(n):
        question, right = f"What is {a} + {a}?", str(2 * a)
        wrong = a % 3 == 0
        record = Record(
            "solution", "", question, "synthetic", 0, reasoning="add", answer=str(2 * a + 1) if wrong else right
        )
        rows.append(Labelled(record, "drop" if wrong else "keep"))
    return rows, {f"What is {a} + {a}?": str(2 * a) for a in range(n)}


def test_judge_agreement_with_labels_is_measured(judge_engine):
    rows, references = labelled_sums()
    [perfect] = audit([LLMJudge(judge_engine(references))], rows)
    assert perfect.agreement == 1.0 and perfect.fp == perfect.fn == 0
    [noisy] = audit([LLMJudge(judge_engine(references, error_rate=0.25))], rows)
    assert noisy.labelled == 40 and noisy.tp + noisy.fn == sum(r.label == "drop" for r in rows)
    assert 0.5 < noisy.agreement < 1.0 and noisy.fp + noisy.fn == round(40 * (1 - noisy.agreement))
    assert all(row["reason"] == "low_judge_score" for row in noisy.false_positives)


def test_pairwise_audit_reports_order_agreement(judge_engine):
    rows, references = labelled_sums(12)
    for a in range(12):  # a second answer to every question, wrong
        rows.append(
            Labelled(Record("solution", "", f"What is {a} + {a}?", "synthetic", 0, reasoning="add", answer="x"), "drop")
        )
    [fair] = audit([PairwiseJudge(judge_engine(references))], rows)
    # 8 questions have a right answer, which wins; the 4 with two wrong ones tie, so both are kept (missed).
    assert fair.orders_agreed == "12 of 12" and (fair.tp, fair.fp, fair.fn) == (8, 0, 8)
    [biased] = audit([PairwiseJudge(judge_engine(references, position_bias=1.0))], rows)
    assert biased.orders_agreed == "0 of 12" and biased.flagged == 0


def test_labelled_file_errors_name_the_line(tmp_path):
    path = tmp_path / "sample.jsonl"
    path.write_text(
        '{"question": "q", "answer": "a", "label": "keep"}\n{"question": "q2", "answer": "b", "label": "maybe"}\n'
    )
    with pytest.raises(InputFileError, match=r"sample.jsonl line 2: label 'maybe' is not one of keep, drop"):
        read_labelled(path)
    path.write_text('{"question": "q", "correct": false, "labels": {"dedup": "drop"}}\n')
    [item] = read_labelled(path)
    assert item.label == "drop" and item.label_for("dedup") == "drop" and item.label_for("quality") is None


def test_cli_audit_and_curate(tmp_path, capsys):
    sample = tmp_path / "sample.jsonl"
    rows = [
        {"question": "What is 2 + 3?", "answer": "5", "reference_answer": "5", "skill": "addition", "label": "keep"},
        {"question": "What is 2 + 4?", "answer": "7", "reference_answer": "6", "skill": "addition", "label": "drop"},
        {"question": "Simplify x + x", "answer": "2*x", "reference_answer": "2x", "label": "keep"},
        {"question": "Mail a@b.io", "answer": "ok", "labels": {"pii": "drop"}},
        {"question": "What is 2 + 3?", "answer": "5", "labels": {"dedup": "drop"}},
    ]
    sample.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["audit", str(sample), "--out", str(tmp_path / "audit.json")]) == 0
    out = capsys.readouterr().out
    assert "verify" in out and "precision" in out
    by_name = {s["stage"]: s for s in json.loads((tmp_path / "audit.json").read_text())["stages"]}
    assert (by_name["verify"]["tp"], by_name["verify"]["fp"]) == (1, 0), "2*x and 2x are symbolically equal"
    assert by_name["pii"]["tp"] == 1 and by_name["dedup"]["tp"] == 1
    assert main(["curate", str(sample), "--out", str(tmp_path / "curated")]) == 0
    summary = json.loads((tmp_path / "curated" / "summary.json").read_text())
    assert summary["rows"] == 5 and summary["kept"] == 3 and summary["pii"] == {"email": 1}
    assert summary["rejected"] == {"wrong_answer": 1, "duplicate": 1}
    kept = read_records(tmp_path / "curated" / "curated")
    assert "Mail [EMAIL]" in [r.question for r in kept]
    assert len(read_records(tmp_path / "curated" / "rejected")) == 2
    assert main(["audit"]) == 2 and "labelled sample file, or --embedded" in capsys.readouterr().err


def test_cli_curate_with_a_missing_reward_model_is_a_user_error(tmp_path, capsys):
    rows, recipe = tmp_path / "rows.jsonl", tmp_path / "r.yaml"
    rows.write_text('{"question": "q", "answer": "a"}\n')
    recipe.write_text(
        f"name: r\nskills: {{addition: {{}}}}\ncuration: {{reward_model: {{path: {tmp_path / 'none'}}}}}\n"
    )
    assert main(["curate", str(rows), "--recipe", str(recipe), "--out", str(tmp_path / "out")]) == 2
    assert "curation.reward_model.path" in capsys.readouterr().err and not (tmp_path / "out").exists()
