"""A verifier that cannot judge a row says so: counted per stage (metrics, report, curate summary),
said in the verdict, and rejected when the recipe requires a verdict."""

import json

from synthloop.cli.main import main
from synthloop.curation.verify import VerifyAnswers
from synthloop.records import Record
from synthloop.storage.shards import read_records


def row(answer, reference):
    return Record(kind="solution", skill="user", question=f"q {answer} {reference}", answer=answer,
                  reference_answer=reference, source="synthetic", round=1)  # fmt: skip


def test_abstentions_are_counted_and_explained():
    verify = VerifyAnswers()
    out = list(verify.run([row("4", "4"), row("5", None), row("6", None), row("3", "4")]))
    assert [r.kept for r in out] == [True, True, True, False]
    assert verify.abstained == 2
    assert out[1].verdicts[-1].detail == "no reference answer: abstained"


def test_a_recipe_can_require_a_verdict(tmp_path, capsys):
    rows = [{"question": "planted", "answer": "41"}, {"question": "2 + 2", "answer": "4", "reference_answer": "4"}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for on_abstain, kept in (("keep", 2), ("reject", 1)):
        (tmp_path / f"{on_abstain}.yaml").write_text(f"curation:\n  verify: {{on_abstain: {on_abstain}}}\n")
        out = tmp_path / on_abstain
        args = ["curate", str(tmp_path / "rows.jsonl"), "--recipe", str(tmp_path / f"{on_abstain}.yaml")]
        assert main([*args, "--out", str(out)]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["kept"] == kept and summary["abstained"] == {"verify": 1}
    assert [r.reject_reason for r in read_records(tmp_path / "reject" / "rejected")] == ["verify_abstained"]


def test_every_stage_that_abstains_is_counted(tmp_path):
    """Self-consistency with one sample of a question, and a judge whose replies give no score, abstain."""
    from synthloop.testing import serve_in_thread
    from synthloop.testing.judges import reference_judge
    from synthloop.testing.simulated_server import SimulatedServer

    rows = [("2 + 2", "4"), ("2 + 2", "4"), ("3 + 3", "6"), ("4 + 4", "8")]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in rows))
    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0,
                             responder=reference_judge(dict(rows), prose="always"))  # fmt: skip
    with serve_in_thread(server.app()) as url:
        recipe = (
            "curation:\n  verify: false\n  dedup: false\n  self_consistency: {min_agreement: 0.5}\n"
            f"  judge: {{on_unparsed: keep, teacher: {{backend: openai, model: simulated, base_url: '{url}/v1'}}}}\n"
        )
        (tmp_path / "recipe.yaml").write_text(recipe)
        args = ["curate", str(tmp_path / "rows.jsonl"), "--recipe", str(tmp_path / "recipe.yaml")]
        assert main([*args, "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["kept"] == 4 and summary["abstained"] == {"self_consistency": 2, "judge": 4}
