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
