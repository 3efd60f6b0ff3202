"""The loop closes on a user's own data, teacher and student: the built-in skills exported as a plain
dataset, a scripted teacher behind a real HTTP server, and a Hugging Face student (a tiny Llama with a
chat template, saved as a folder, standing in for a Hub model) trained with LoRA. Also the external
(`command`) trainer failing mid-run: the round stops with one line, nothing is lost, and `--resume`
retries it without calling the teacher again."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from synthloop.cli.main import main
from synthloop.config import parse_recipe
from synthloop.loop import run_loop
from synthloop.registry import SKILLS as SKILL_REGISTRY
from synthloop.skills.export import export_skills
from synthloop.storage.atomic import read_json
from synthloop.storage.shards import read_records
from synthloop.testing import serve_in_thread
from synthloop.testing.scripted_teacher import ScriptedTeacher
from synthloop.training import checkpoint as ckpt
from synthloop.training.lora import is_adapter
from synthloop.training.tiny import build_tiny_student

SKILLS = ["addition", "comparison"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("exported")
    export_skills(out, SKILLS, train_per_skill=30, eval_per_skill=8, difficulties=[1], seed=0)
    return out


@pytest.fixture(scope="module")
def hub_student(tmp_path_factory):
    """A stand-in for a Hub model: config, weights, tokenizer and chat template in a folder."""
    texts = []
    for name in SKILLS:
        for i in range(100):
            p = SKILL_REGISTRY.get(name).generate(7, i, 1)
            texts.append(f"{p.question}\n{chr(10).join(p.steps)}\n#### {p.answer}")
    return build_tiny_student(tmp_path_factory.mktemp("hub") / "tiny-llama", texts)


def recipe_text(exported, url: str, student: str) -> str:
    return f"""
name: own-task
rounds: 2
task: {{type: dataset, train: {exported / "train.jsonl"}, eval: {exported / "eval.jsonl"}, train_probe_per_category: 8}}
teacher: {{backend: openai, base_url: {url}, model: scripted, max_retries: 0}}
generation: {{budget_per_round: 24, samples: 5, temperature: 0.8, shard_size: 50}}
curation: {{self_consistency: {{min_agreement: 0.8}}}}
grounding: {{ratio: 0.2}}
student:
{student}
evaluation: {{max_new_tokens: 16, batch_size: 8}}
"""


LORA_STUDENT = """  base: {base}
  lora: {{r: 4, alpha: 8, target_modules: [q_proj, v_proj], merge: true}}
  train: {{steps_per_round: 6, batch_size: 8, learning_rate: 0.003, warmup_steps: 1, grad_accumulation: 2,
           checkpoint_every: 3}}"""


@pytest.fixture(scope="module")
def lora_run(exported, hub_student, tmp_path_factory):
    teacher = ScriptedTeacher(error_rate=0.2)
    root = tmp_path_factory.mktemp("lora") / "run"
    lines: list[str] = []
    with serve_in_thread(teacher.app()) as url:
        text = recipe_text(exported, f"{url}/v1", LORA_STUDENT.format(base=hub_student))
        run_loop(parse_recipe(text, "r.yaml"), root, log=lines.append)
    return root, teacher, lines, text


@pytest.mark.slow
def test_a_hub_student_with_lora_is_trained_and_evaluated_in_its_chat_template(lora_run, hub_student):
    root, _, lines, _ = lora_run
    manifest = read_json(root / "manifest.json")
    assert manifest["student_format"] == "chat_template"
    for number in (1, 2):
        folder = root / f"rounds/0{number}/student"
        assert is_adapter(folder) and ckpt.has_checkpoint(folder / ckpt.MERGED)  # adapters, and merged weights
        assert not (root / f"rounds/0{number}/student.work").exists()  # mid-round state gone once saved
        stats = read_json(folder / "train_stats.json")
        assert stats["format"] == "chat_template" and stats["lora"]["r"] == 4 and stats["trainer"] == "builtin"
        assert stats["steps"] == 6 and stats["trainable_parameters"] > 0
        # The student is asked in its own template: every eval prompt went through it (outputs recorded).
        evaluation = read_json(root / f"rounds/0{number}/eval.json")
        assert evaluation["per_skill"].keys() == set(SKILLS)
    metrics = read_json(root / "metrics.json")
    assert [r["train"]["format"] for r in metrics["rounds"]] == ["chat_template"] * 2
    assert all(r["train"]["lora"]["target_modules"] == ["q_proj", "v_proj"] for r in metrics["rounds"])
    assert any("trained (LoRA) 6 steps on cpu in float32, chat_template format" in line for line in lines)
    # Round 2 continued round 1's adapters, not a fresh set: its first loss is below round 1's.
    first = [r["train"]["first_loss"] for r in metrics["rounds"]]
    assert first[1] < first[0]


@pytest.mark.slow
def test_training_rows_are_sft_conversations_traceable_to_the_teacher_call(lora_run):
    root, teacher, _, _ = lora_run
    for number in (1, 2):
        curated = {row.id: row for row in read_records(root / f"rounds/0{number}/curated")}
        train = read_records(root / f"rounds/0{number}/train")
        assert {row.source for row in train} == {"synthetic", "human"}
        for row in train:
            user, assistant = row.messages
            assert (user.role, user.content) == ("user", row.question)
            assert assistant.role == "assistant" and assistant.content.endswith(f"#### {row.answer}")
            if row.source == "synthetic":
                kept = curated.get(row.id)  # accumulate: an earlier round's row is in that round's curated/
                kept = kept or next(
                    r for n in range(1, number) for r in read_records(root / f"rounds/0{n}/curated") if r.id == row.id
                )
                assert kept.messages[0].role in ("system", "user") and kept.request_id and kept.parent_ids
                assert kept.teacher_model == "scripted"
        wrong, checked = teacher.wrong_share([r for r in train if r.source == "synthetic"])
        assert checked and wrong <= 0.05 * checked


@pytest.mark.slow
def test_a_lora_run_resumes_without_training_or_calling_again(lora_run, exported, hub_student):
    root, _, _, text = lora_run
    teacher = ScriptedTeacher()
    with serve_in_thread(teacher.app()) as url:
        text = recipe_text(exported, f"{url}/v1", LORA_STUDENT.format(base=hub_student))
        lines: list[str] = []
        run_loop(parse_recipe(text, "r.yaml"), root, resume=True, log=lines.append)
    assert "round 2: already done, skipped" in lines and sum(teacher.calls.values()) == 0


@pytest.mark.slow
def test_synthloop_student_merge_writes_the_weights_the_round_merged(lora_run, tmp_path, capsys):
    root, _, _, _ = lora_run
    adapters = root / "rounds/02/student"
    assert main(["student", "merge", str(adapters), "--out", str(tmp_path / "merged")]) == 0
    assert "merged" in capsys.readouterr().out
    ours, theirs = (load_file(folder / "model.safetensors") for folder in (tmp_path / "merged", adapters / "merged"))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert (tmp_path / "merged" / "tokenizer_config.json").is_file()
    # Bad input: one line each, nothing written.
    cases = [
        ([str(root / "rounds/02"), "--out", str(tmp_path / "a")], "holds no LoRA adapters"),
        ([str(adapters), "--out", str(tmp_path / "merged")], "is not an empty folder"),
        ([str(adapters), "--out", str(tmp_path / "b"), "--base", str(tmp_path / "nowhere")], "is gone"),
    ]
    for args, message in cases:
        assert main(["student", "merge", *args]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert not list(tmp_path.glob("*.partial"))


TRAINER = """
import argparse, json, pathlib, sys
from transformers import AutoModelForCausalLM
p = argparse.ArgumentParser()
p.add_argument("--data"); p.add_argument("--base"); p.add_argument("--out"); p.add_argument("--fail-if")
a = p.parse_args()
if pathlib.Path(a.fail_if).exists():
    print("CUDA out of memory", file=sys.stderr)
    sys.exit(7)
rows = [json.loads(line) for line in open(a.data)]
assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in rows)
print(f"trained on {len(rows)} conversations", flush=True)
AutoModelForCausalLM.from_pretrained(a.base).save_pretrained(a.out)
"""


@pytest.mark.slow
def test_a_failing_command_trainer_stops_the_round_and_resume_retries_it(exported, hub_student, tmp_path, capsys):
    script, flag = tmp_path / "trainer.py", tmp_path / "broken"
    script.write_text(TRAINER)
    flag.touch()
    command = f"{sys.executable} {script} --data {{data}} --base {{base}} --out {{out}} --fail-if {flag}"
    student = f"  base: {hub_student}\n  trainer: command\n  command: {json.dumps(command)}"
    teacher = ScriptedTeacher(error_rate=0.2)
    with serve_in_thread(teacher.app()) as url:
        recipe = tmp_path / "r.yaml"
        recipe.write_text(recipe_text(exported, f"{url}/v1", student).replace("rounds: 2", "rounds: 1"))
        run = ["run", str(recipe), "--run-dir", str(tmp_path / "run")]
        assert main(run) == 2
        err = capsys.readouterr().err
        (error,) = [line for line in err.splitlines() if line.startswith("synthloop: error:")]
        assert "exited with status 7 (CUDA out of memory)" in error and "--resume" in error
        kept = read_records(tmp_path / "run/rounds/01/curated")
        assert kept and not (tmp_path / "run/rounds/01/student").exists()
        calls = sum(teacher.calls.values())
        flag.unlink()  # the cause fixed
        assert main([*run, "--resume"]) == 0
    assert sum(teacher.calls.values()) == calls  # nothing generated again
    assert read_records(tmp_path / "run/rounds/01/curated") == kept  # nothing lost
    stats = read_json(tmp_path / "run/rounds/01/student/train_stats.json")
    assert stats["trainer"] == "command" and stats["format"] == "chat_template"
    assert ckpt.has_checkpoint(tmp_path / "run/rounds/01/student")
    assert read_json(tmp_path / "run/metrics.json")["rounds"][0]["train"]["steps"] is None


@pytest.mark.parametrize(
    ("student", "expected"),
    [
        ("  base: {base}\n  lora: {{target_modules: [query_key_value]}}", "query_key_value not in this model"),
        ("  base: {base}\n  trainer: command\n  command: 'no-such-trainer {{data}} {{out}}'", "is not on PATH"),
        ("  base: {base}/nowhere", "nowhere"),
        ("  base: {base}\n  device: cuda:3", "student.device cuda:3"),
    ],
)
def test_a_student_that_cannot_train_is_one_line_before_anything_is_written(
    exported, hub_student, tmp_path, capsys, student, expected
):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(recipe_text(exported, "http://127.0.0.1:9/v1", student.format(base=hub_student)))
    assert main(["run", str(recipe), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


MID_ROUND = """
name: mid-round
rounds: 1
skills: {addition: {difficulty: 1}, comparison: {difficulty: 1}}
generation: {budget_per_round: 120, shard_size: 50}
student:
  architecture: {family: llama, hidden_size: 32, layers: 1, heads: 2, intermediate_size: 64}
  train: {steps_per_round: 400, batch_size: 8, checkpoint_every: 40}
evaluation: {probes_per_skill: 4, max_new_tokens: 8}
"""


def synthloop_run(recipe, run_dir, *extra) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "synthloop.cli.main", "run", str(recipe), "--run-dir", str(run_dir), *extra]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


@pytest.mark.slow
def test_a_run_killed_mid_round_resumes_mid_round_to_the_same_student(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(MID_ROUND)
    assert synthloop_run(recipe, tmp_path / "whole").wait(timeout=600) == 0
    proc = synthloop_run(recipe, tmp_path / "killed")
    state = tmp_path / "killed/rounds/01/student.work/train_state.pt"
    deadline = time.monotonic() + 600
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # mid-round, just after a checkpoint
    proc.wait()
    assert state.exists() and not (tmp_path / "killed/rounds/01/student").exists()
    resumed = synthloop_run(recipe, tmp_path / "killed", "--resume")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode()[-2000:]
    stats = read_json(tmp_path / "killed/rounds/01/student/train_stats.json")
    assert (
        stats["resumed_at_step"] >= 40
        and read_json(tmp_path / "whole/rounds/01/student/train_stats.json")["resumed_at_step"] == 0
    )
    whole = load_file(tmp_path / "whole/rounds/01/student/model.safetensors")
    again = load_file(tmp_path / "killed/rounds/01/student/model.safetensors")
    assert whole.keys() == again.keys() and all(torch.equal(whole[k], again[k]) for k in whole)
    assert not (tmp_path / "killed/rounds/01/student.work").exists()


@pytest.mark.slow
def judge_recipe(exported, url: str, judge_url: str):
    judge_teacher = "{backend: openai, base_url: " + judge_url + "/v1, model: simulated, max_retries: 0}"
    scorer = "scorer: {name: judge, judge: {teacher: " + judge_teacher + "}}, train_probe_per_category: 8}"
    student = "  architecture: {family: gpt2, hidden_size: 32, layers: 1, heads: 2, intermediate_size: 64}\n"
    student += "  train: {steps_per_round: 4, batch_size: 8}"
    text = recipe_text(exported, f"{url}/v1", student).replace("train_probe_per_category: 8}", scorer)
    return parse_recipe(text.replace("rounds: 2", "rounds: 1"), "r.yaml")


def test_a_judge_scorer_grades_the_student_and_a_resumed_evaluation_costs_no_judge_call(exported, tmp_path):
    from synthloop.testing.judges import grading_judge
    from synthloop.testing.simulated_server import SimulatedServer

    judge = SimulatedServer(max_concurrent=0, seconds_per_token=0.0, responder=grading_judge())
    teacher = ScriptedTeacher(error_rate=0.2)
    with serve_in_thread(teacher.app()) as url, serve_in_thread(judge.app()) as judge_url:
        recipe = judge_recipe(exported, url, judge_url)
        root = tmp_path / "run"
        run_loop(recipe, root, log=lambda line: None)
        graded = sum(judge.completed.values())
        evaluation = read_json(root / "rounds/01/eval.json")
        assert graded > 0 and all(item["detail"] for item in evaluation["items"])  # each grade says why
        assert evaluation["unscored"] == 0
        (root / "rounds/01/eval.json").unlink()
        lines: list[str] = []
        run_loop(recipe, root, resume=True, log=lines.append)
    assert sum(judge.completed.values()) == graded  # the judge's grades came from the run's cache
    assert read_json(root / "rounds/01/eval.json")["per_skill"] == evaluation["per_skill"]


def test_a_judge_that_fails_stops_the_run_and_resume_grades_without_calling_the_teacher(exported, tmp_path):
    """A judge down mid-run would grade every answer 0: a weak student, to the next round's plan. The run
    stops instead, one line; once the judge is back, --resume asks it only for what it has not graded."""
    from synthloop.scoring.item import ScoringFailed
    from synthloop.testing.judges import grading_judge
    from synthloop.testing.simulated_server import SimulatedServer

    down = {"now": True}
    grade = grading_judge()

    def respond(body: dict) -> str:
        if down["now"]:
            raise RuntimeError("the judge's server failed")
        return grade(body)

    judge = SimulatedServer(max_concurrent=0, seconds_per_token=0.0, responder=respond)
    teacher = ScriptedTeacher(error_rate=0.2)
    with serve_in_thread(teacher.app()) as url, serve_in_thread(judge.app()) as judge_url:
        recipe, root = judge_recipe(exported, url, judge_url), tmp_path / "run"
        with pytest.raises(ScoringFailed, match=r"the scorer could not grade (\d+) of \1 answers") as err:
            run_loop(recipe, root, log=lambda line: None)
        assert "\n" not in str(err.value) and "--resume" in str(err.value)
        assert ckpt.has_checkpoint(root / "rounds/01/student") and not (root / "rounds/01/eval.json").exists()
        calls = sum(teacher.calls.values())
        down["now"] = False
        run_loop(recipe, root, resume=True, log=lambda line: None)
    assert sum(teacher.calls.values()) == calls  # nothing generated or trained again
    evaluation = read_json(root / "rounds/01/eval.json")
    assert evaluation["unscored"] == 0 and not any("judge call failed" in i["detail"] for i in evaluation["items"])
