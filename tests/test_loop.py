"""The whole loop on a tiny recipe: the run-directory contract, traceability and safe reruns."""

import json
import shutil
from pathlib import Path

import pytest

from synthloop.cli.main import main
from synthloop.config import load_recipe, validate_recipe
from synthloop.loop import run_loop
from synthloop.storage.response_cache import ResponseCache
from synthloop.storage.shards import read_records

TINY = Path(__file__).parent / "tiny_recipe.yaml"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs") / "tiny"
    run_loop(load_recipe(TINY), root, log=lambda line: None)
    return root


def test_run_directory_contract(finished_run):
    manifest = json.loads((finished_run / "manifest.json").read_text())
    assert manifest["rounds"] == {"1": "done", "2": "done", "3": "done"}
    assert manifest["recipe_hash"] == load_recipe(TINY).hash() and manifest["versions"]["torch"]
    metrics = json.loads((finished_run / "metrics.json").read_text())
    assert [r["round"] for r in metrics["rounds"]] == [1, 2, 3]
    for r in metrics["rounds"]:
        assert set(r) >= {"round", "eval", "counts", "allocation", "monitor", "timings_s"}
        assert set(r["eval"]["per_skill"]) == {"addition", "comparison", "logic", "spatial_3d"}
        assert 0 <= r["eval"]["macro"] <= 1
        assert sum(r["allocation"].values()) == pytest.approx(1.0)
        assert r["counts"]["generated"] == 400
        assert r["counts"]["kept"] + sum(r["counts"]["rejected"].values()) == 400
        assert r["counts"]["rejected"]["wrong_answer"] > 40  # noise 0.2 on 400 rows
        teacher = r["teacher"]  # identical prompts are called once, so calls <= rows
        assert 0 < teacher["issued"] <= 400 and teacher["failed"] == 0 and teacher["completion_tokens"] > 0
    cache = ResponseCache(finished_run / "cache" / "responses.sqlite")
    assert cache.spent(manifest["run_id"]).calls == sum(r["teacher"]["issued"] for r in metrics["rounds"])
    for n in ("01", "02", "03"):
        rdir = finished_run / "rounds" / n
        for sub in ("generated", "curated", "rejected", "train"):
            assert (rdir / sub / "_SUCCESS.json").exists()
        assert (rdir / "student" / "config.json").exists() and (rdir / "eval.json").exists()
    html = (finished_run / "report.html").read_text()
    assert "Weakness report after round 3" in html
    assert (
        html.count("<svg") == 5  # accuracy, budget, kept/rejected, loss, guards
        and "Collapse guards" in html
        and "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )


def test_student_checkpoint_loads_with_plain_transformers(finished_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = finished_run / "rounds" / "03" / "student"
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    assert model.config.model_type == "llama"  # the tiny recipe's family; the default recipe's is gpt2
    assert tokenizer.decode(tokenizer("What is 12 + 7?")["input_ids"]) == "What is 12 + 7?"


def test_every_training_row_traces_back_to_its_teacher_call(finished_run):
    rdir = finished_run / "rounds" / "03"
    generated = {r.id: r for n in ("01", "02", "03") for r in read_records(finished_run / "rounds" / n / "generated")}
    train = read_records(rdir / "train")
    synthetic = [r for r in train if r.source == "synthetic"]
    assert synthetic and all(r.id in generated for r in synthetic)
    for row in synthetic:
        assert row.kept and row.request_id == generated[row.id].request_id
        assert row.teacher_backend == "oracle" and row.template_version == "solve-v1" and row.recipe_hash
        assert row.answer == row.reference_answer  # verification let no wrong answer through
    assert {r.round for r in synthetic} == {1, 2, 3}, "accumulate keeps earlier rounds"
    golden = [r for r in train if r.source == "reference"]
    assert 0.2 < len(golden) / len(train) < 0.3
    probes = {item["question"].lower() for item in json.loads((rdir / "eval.json").read_text())["items"]}
    assert not probes & {r.question.lower() for r in train}, "never train on a probe"


def test_rejected_rows_keep_their_reason(finished_run):
    rejected = read_records(finished_run / "rounds" / "01" / "rejected")
    assert rejected and all(not r.kept and r.reject_reason for r in rejected)
    wrong = [r for r in rejected if r.reject_reason == "wrong_answer"]
    assert all(r.answer != r.reference_answer and r.raw_output for r in wrong)


def test_resume_of_a_finished_run_changes_nothing(finished_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    before = {p: p.stat().st_mtime_ns for p in copy.rglob("*.parquet")}
    lines = []
    run_loop(load_recipe(TINY), copy, resume=True, log=lines.append)
    assert lines == [f"round {n}: already done, skipped" for n in (1, 2, 3)]
    assert {p: p.stat().st_mtime_ns for p in copy.rglob("*.parquet")} == before


def test_resume_rebuilds_metrics_a_kill_left_behind(finished_run, tmp_path):
    """Killed after round 3 was marked done but before metrics.json was rewritten."""
    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    complete = json.loads((copy / "metrics.json").read_text())
    (copy / "metrics.json").write_text(json.dumps({"rounds": complete["rounds"][:2]}))
    run_loop(load_recipe(TINY), copy, resume=True, log=lambda line: None)
    assert json.loads((copy / "metrics.json").read_text()) == complete


def test_replace_strategy_trains_on_this_round_only(tmp_path):
    data = load_recipe(TINY).model_dump()
    data["rounds"], data["grounding"]["strategy"] = 2, "replace"
    root = tmp_path / "replace"
    run_loop(validate_recipe(data), root, log=lambda line: None)
    train = read_records(root / "rounds" / "02" / "train")
    assert {r.round for r in train if r.source == "synthetic"} == {2}


def test_cli_refuses_a_foreign_or_existing_run_dir(finished_run, tmp_path, capsys):
    other = tmp_path / "other.yaml"
    other.write_text(TINY.read_text().replace("seed: 0", "") + "seed: 9\n")
    before = sorted(p.relative_to(finished_run) for p in finished_run.rglob("*"))
    assert main(["run", str(other), "--run-dir", str(finished_run), "--resume"]) == 2
    assert "belongs to a different recipe" in capsys.readouterr().err
    assert main(["run", str(TINY), "--run-dir", str(finished_run)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.relative_to(finished_run) for p in finished_run.rglob("*")) == before, "nothing touched"


def test_cli_bad_recipe_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text().replace("ratio: 0.25", "ratoi: 0.25"))
    assert main(["run", str(bad), "--run-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'grounding.ratio'" in err
    assert not (tmp_path / "out").exists()


def test_cli_bad_golden_file_writes_nothing(tmp_path, capsys):
    golden = tmp_path / "golden.jsonl"
    golden.write_text('{"question": "q", "answer": "a"}\n{"question": "q2"\n')
    recipe = tmp_path / "r.yaml"
    recipe.write_text(TINY.read_text().replace("{size: 40}", f"{{path: {golden}}}"))
    assert main(["run", str(recipe), "--run-dir", str(tmp_path / "out")]) == 2
    assert f"{golden} line 2: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "curation, message",
    [
        (
            "{judge: {teacher: {backend: openai, model: m, base_url: 'http://127.0.0.1:1/v1'}}}",
            "cannot reach the judge at http://127.0.0.1:1/v1",
        ),
        ("{reward_model: {path: /nonexistent/rm}}", "curation.reward_model.path /nonexistent/rm: no config.json"),
        (
            "{decontaminate: {eval_sets: [/nonexistent/eval.jsonl]}}",
            "evaluation set not found: /nonexistent/eval.jsonl",
        ),
    ],
)
def test_cli_curation_that_cannot_run_fails_before_anything_is_generated(tmp_path, capsys, curation, message):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(TINY.read_text() + f"curation: {curation}\n")
    assert main(["run", str(recipe), "--run-dir", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_every_curation_stage_runs_in_the_loop_with_its_findings_in_metrics_and_report(tmp_path):
    from synthloop.testing import serve_in_thread
    from synthloop.testing.judges import reference_judge
    from synthloop.testing.simulated_server import SimulatedServer
    from synthloop.testing.tiny_model import build_tiny_reward_model

    eval_set = tmp_path / "eval.jsonl"
    eval_set.write_text(json.dumps({"question": "Is the red cube above the blue sphere? Answer yes or no."}) + "\n")
    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0, responder=reference_judge({}))
    with serve_in_thread(server.app()) as url:
        data = load_recipe(TINY).model_dump()
        data["rounds"] = 2
        data["generation"].update(samples=3, budget_per_round=60)
        data["curation"] = {
            "verify": False,  # self-consistency does the checking: a verifier first would leave it only right answers
            "self_consistency": {"min_agreement": 0.6},
            "pii": {"action": "redact"},
            "quality": {"preset": "reasoning"},
            "decontaminate": {"n": 10, "eval_sets": [str(eval_set)]},
            "dedup": {"exact": False, "near": True, "semantic": {"threshold": 0.99, "field": "all"}},
            "reward_model": {"path": str(build_tiny_reward_model(tmp_path / "rm")), "threshold": -100},
            "judge": {
                "teacher": {"backend": "openai", "model": "simulated", "base_url": f"{url}/v1"},
                "mode": "pairwise",
            },
        }
        root = tmp_path / "all-stages"
        run_loop(validate_recipe(data), root, log=lambda line: None)
    metrics = json.loads((root / "metrics.json").read_text())
    for r in metrics["rounds"]:
        assert r["counts"]["generated"] == 180  # 60 problems x 3 samples
        assert r["curation"]["pii"] == {} and r["curation"]["quality_rules"] == {}
        # Near dedup keeps one of a question's identical samples, so the pairwise judge has nothing to compare.
        assert r["curation"]["pairwise"] == {"pairs": 0, "orders_agreed": 0}
        # ... so it abstains on every row it sees, and says so (as self-consistency does on a lone sample)
        assert r["curation"]["abstained"]["judge_pairwise"] == r["counts"]["kept"] > 0
        assert {"disagrees_with_majority", "near_duplicate"} <= set(r["counts"]["rejected"])
    kept = read_records(root / "rounds" / "02" / "curated")
    stages = [v.stage for v in kept[0].verdicts]
    assert stages == [
        "self_consistency",
        "pii",
        "quality",
        "decontaminate",
        "near_dedup",
        "semantic_dedup",
        "reward",
        "judge_pairwise",
    ]
    assert "PII found (per kind)" in (root / "report.html").read_text()
