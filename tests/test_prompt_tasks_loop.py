"""Prompt tasks inside the loop (`generation.prompt_tasks`) and the `answer` step of `synthloop generate`,
against the scripted teacher behind a real HTTP server on loopback, with real Parquet shards."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from synthloop.cli.main import main
from synthloop.config import RecipeError, parse_recipe
from synthloop.curation.self_consistency import SelfConsistency
from synthloop.loop import run_loop
from synthloop.prompt_rounds import RequireVerified
from synthloop.records import Record
from synthloop.skills.export import export_skills
from synthloop.sources.build import build_source
from synthloop.storage.atomic import read_json
from synthloop.storage.response_cache import ResponseCache
from synthloop.storage.shards import read_records
from synthloop.testing import serve_in_thread
from synthloop.testing.scripted_teacher import ScriptedTeacher
from synthloop.weak_categories import plan_targets

SKILLS = ["addition", "subtraction", "comparison"]
PROMPT_TASKS = """
    - {task: exercises, share: 0.3, per_call: 2}
    - {task: self_instruct, share: 0.3, per_call: 2, personas: [a patient tutor, a terse engineer]}
    - {task: evol_instruct, per_category: 2, operations: [deepen, add_constraints]}
    - {task: textbook, per_category: 2, per_call: 2}
    - {task: refusal, per_category: 1, per_call: 2}"""


def recipe_text(data: Path, url: str = "http://127.0.0.1:9/v1", rounds: int = 2, prompt_tasks: str = PROMPT_TASKS):
    return f"""
name: pt
rounds: {rounds}
task: {{type: dataset, train: {data / "train.jsonl"}, eval: {data / "eval.jsonl"}, train_probe_per_category: 16}}
teacher: {{backend: openai, base_url: {url}, model: scripted, max_retries: 0}}
generation:
  budget_per_round: 30
  samples: 5
  temperature: 0.8
  shard_size: 50
  prompt_tasks:{prompt_tasks}
curation: {{self_consistency: {{min_agreement: 0.8}}, quality: false}}
student:
  architecture: {{family: gpt2, hidden_size: 32, layers: 1, heads: 2, intermediate_size: 64}}
  train: {{steps_per_round: 5, batch_size: 8}}
evaluation: {{max_new_tokens: 16}}
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    export_skills(out, SKILLS, train_per_skill=40, eval_per_skill=10, difficulties=[1], seed=0)
    return out


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def teacher_for(data: Path) -> ScriptedTeacher:
    """A scripted teacher that knows each train question's category (to write instructions like a seed)."""
    return ScriptedTeacher(
        error_rate=0.2, skill_of={r["question"]: r["category"] for r in rows_of(data / "train.jsonl")}
    )


# ---- the recipe --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "{task: exercises, shre: 0.2}",
            r"unknown key 'generation\.prompt_tasks\.0\.shre'; did you mean "
            r"'generation\.prompt_tasks\.0\.share'\?",
        ),
        (
            "{task: exercize, share: 0.2}",
            r"prompt_tasks\.0\.task: unknown prompt task 'exercize'; did you mean "
            r"'exercises'\?",
        ),
        ("{task: topics, share: 0.2}", "topics writes topic names, nothing to train on"),
        ("{task: exercises}", "give exactly one of share or per_category"),
        ("{task: exercises, share: 0.7}, {task: self_instruct, share: 0.5}", "the shares add up to 1.2"),
        ("{task: exercises, share: 0.2}, {task: exercises, per_category: 1}", "two entries are named 'exercises'"),
        ("{task: textbook, share: 0.2, template: 'On {topc}'}", r"unknown field \{topc\}; did you mean \{topic\}\?"),
        ("{task: evol_instruct, share: 0.2, operations: [deepn]}", "unknown operation 'deepn'; did you mean 'deepen'"),
        ("{task: exercises, share: 0.2, operations: [deepen]}", "operations are for evol_instruct only"),
    ],
)
def test_a_bad_prompt_task_entry_names_the_key(data, entry, message):
    with pytest.raises(RecipeError, match=message):
        parse_recipe(recipe_text(data, prompt_tasks=f" [{entry}]"), "r.yaml")


def test_prompt_tasks_are_refused_for_the_builtin_skills():
    text = "name: t\nskills: {addition: {}}\ngeneration: {prompt_tasks: [{task: textbook, per_category: 1}]}\n"
    with pytest.raises(RecipeError, match=r"generation\.prompt_tasks: only for a dataset task"):
        parse_recipe(text, "r.yaml")


# ---- the plan ----------------------------------------------------------------------------------------


def test_a_share_is_taken_from_the_problems_and_seeds_are_train_items(data, tmp_path):
    train = rows_of(data / "train.jsonl")
    without_comparison = tmp_path / "train.jsonl"
    without_comparison.write_text("".join(json.dumps(r) + "\n" for r in train if r["category"] != "comparison"))
    (tmp_path / "eval.jsonl").write_text((data / "eval.jsonl").read_text())
    recipe = parse_recipe(recipe_text(tmp_path), "r.yaml")
    source = build_source(recipe, 0)
    failures = {"addition": [i.id for i in source.train if i.category == "addition"][:5], "subtraction": []}
    targets = plan_targets(source, {"addition": 10, "comparison": 10, "subtraction": 10}, failures, recipe, 0)
    # 0.3 + 0.3 of 10 go to exercises and self_instruct; comparison has no train items to seed self_instruct
    assert targets["addition"]["problems"] == 4 and targets["comparison"]["problems"] == 7
    planned = targets["addition"]["prompt_tasks"]
    assert planned["exercises"] == {"items": 3, "why": "share 0.3 of 10", "calls": 2}
    assert set(planned["self_instruct"]["seeds"]) <= set(failures["addition"])  # the failures seed it
    assert planned["self_instruct"]["why"].endswith("seeds: train items answered wrong")
    assert targets["subtraction"]["prompt_tasks"]["self_instruct"]["why"].endswith("train items drawn evenly")
    assert planned["evol_instruct"]["items"] == 2 and planned["textbook"]["calls"] == 1
    assert targets["comparison"]["prompt_tasks"]["self_instruct"]["items"] == 0
    assert "no train items" in targets["comparison"]["prompt_tasks"]["self_instruct"]["why"]
    eval_ids = {item.id for item in source.eval}
    seeds = {s for t in targets.values() for p in t["prompt_tasks"].values() for s in p.get("seeds", [])}
    assert seeds and not seeds & eval_ids


def test_the_dry_run_counts_the_prompt_tasks_first_calls(data):
    from synthloop.loop import dry_run

    with_tasks = dry_run(parse_recipe(recipe_text(data), "r"), None)
    without = dry_run(parse_recipe(recipe_text(data, prompt_tasks=" []"), "r"), None)
    # 4 problems per category instead of 10 (0.3 + 0.3 of the budget taken), plus per category 2 exercises,
    # 2 self_instruct, 2 evol_instruct, 1 topics (textbook) and 1 refusal call
    assert with_tasks[2].startswith("  36 requests") and without[2].startswith("  30 requests")
    assert "generation.prompt_tasks' first calls" in with_tasks[1] and "prompt_tasks" not in without[1]


def test_an_answer_claimed_without_a_vote_is_rejected_and_prose_is_marked_unverified():
    def row(task: str, kind: str, question: str, answer: str) -> Record:
        return Record(kind, "addition", question, "synthetic", 1, answer=answer, task=task)

    lone = row("answer", "response", "What is 1 + 1?", "2")  # one sample survived: no vote
    voted = [row("answer", "response", "What is 2 + 2?", "4") for _ in range(3)]
    section = row("textbook", "textbook", "addition part 0", "# Addition\n\nText.")
    judged = row("textbook", "textbook", "addition part 1", "# Addition\n\nMore text.")
    judged.add_verdict("judge", True, None, 8.0, "clear")
    written = row("solve", "solution", "What is 3 + 3?", "6")  # the loop's own solutions are left as they were
    gate = RequireVerified()
    out = list(gate.run(SelfConsistency(0.6).run([lone, *voted, section, judged, written])))
    assert lone.reject_reason == "unverified_answer" and all(r.kept for r in voted)
    assert section.kept and section.verdicts[-1].stage == "unverified"
    assert judged.kept and all(v.stage != "unverified" for v in judged.verdicts)
    assert written.kept and all(v.stage != "require_verified" for v in written.verdicts)
    assert gate.unverified == {"textbook": 1} and len(out) == 7


# ---- a whole run -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prompted_run(data, tmp_path_factory):
    teacher = teacher_for(data)
    received: list[str] = []
    original = teacher.chat

    async def spy(request):
        received.append(json.dumps((await request.json())["messages"]))
        return await original(request)

    teacher.chat = spy
    root = tmp_path_factory.mktemp("pt") / "run"
    lines: list[str] = []
    with serve_in_thread(teacher.app()) as url:
        run_loop(parse_recipe(recipe_text(data, f"{url}/v1"), "r"), root, log=lines.append)
    return root, teacher, received, lines


@pytest.mark.slow
def test_the_eval_split_is_never_in_any_prompt(prompted_run, data):
    _, teacher, received, _ = prompted_run
    assert {"exercises", "self_instruct", "evol_instruct", "topics", "textbook", "refusal", "answer"} <= set(
        teacher.calls
    )
    evaluation = [row["question"] for row in rows_of(data / "eval.jsonl")]
    assert len(received) == sum(teacher.calls.values())
    assert not any(json.dumps(q)[1:-1] in prompt for q in evaluation for prompt in received)
    train = [row["question"] for row in rows_of(data / "train.jsonl")]
    assert any(json.dumps(q)[1:-1] in prompt for q in train for prompt in received)  # seeds are train items


@pytest.mark.slow
def test_prompt_task_rows_train_the_student_with_their_provenance(prompted_run, data):
    root, teacher, _, _ = prompted_run
    train_ids = {i.id for i in build_source(parse_recipe(recipe_text(data), "r"), 0).train}
    cache = ResponseCache(root / "cache" / "responses.sqlite")
    for number in (1, 2):
        rdir = root / f"rounds/0{number}"
        train = read_records(rdir / "train")
        by_task = {row.task for row in train if row.source == "synthetic"}
        assert {"answer", "exercises", "textbook", "refusal"} <= by_task
        instructions = {
            r.id: r for name in ("self_instruct", "evol_instruct") for r in read_records(rdir / "prompted" / name)
        }
        traced = 0
        for row in train:
            if row.source != "synthetic" or row.task == "solve":
                continue
            assert row.skill in SKILLS and row.teacher_model == "scripted" and row.round == number
            assert row.template_version.startswith(row.task.replace("_", "-")) or row.task == "exercises"
            reply = cache.get_many([row.request_id])[row.request_id]  # the teacher call that made it
            assert row.raw_output in (reply.texts or ())
            if row.task == "answer" and row.parent_ids[0] in instructions:  # instruction -> answer
                instruction = instructions[row.parent_ids[0]]
                assert instruction.question == row.question and instruction.kind == "instruction"
                assert set(instruction.parent_ids) <= train_ids  # seeded by a train item, never an eval one
                traced += 1
            if row.task in ("answer", "exercises"):  # a checkable answer: verified by the vote
                assert any(v.stage == "self_consistency" and v.keep and v.score >= 0.8 for v in row.verdicts)
            else:
                assert row.verdicts[-1].stage == "unverified"  # no judge in this recipe: said, and counted
        assert traced
        kept = read_records(rdir / "curated")
        wrong, checked = teacher.wrong_share([r for r in kept if r.task in ("answer", "exercises")])
        assert checked and wrong <= 0.05 * checked


@pytest.mark.slow
def test_kept_rows_per_task_are_in_the_log_metrics_and_report(prompted_run):
    root, _, _, lines = prompted_run
    for entry in read_json(root / "metrics.json")["rounds"]:
        per_task = entry["counts"]["kept_per_task"]
        assert set(per_task) == {"write_problems", "exercises", "self_instruct", "evol_instruct", "textbook", "refusal"}
        assert all(set(per) == set(SKILLS) for per in per_task.values())
        assert sum(sum(per.values()) for per in per_task.values()) == entry["counts"]["kept"]
        assert entry["counts"]["unverified_per_task"] == {
            "textbook": sum(per_task["textbook"].values()),
            "refusal": sum(per_task["refusal"].values()),
        }
        calls = entry["prompt_tasks"]  # every prompt-task folder's calls, from its marker
        assert set(calls) >= {"self_instruct", "self_instruct.answers", "textbook.topics", "textbook", "refusal"}
        assert all(c["issued"] + c["cached"] > 0 and c["failed"] == 0 for c in calls.values())
    assert any(line.startswith("round 1: kept per task write_problems=") for line in lines)
    assert any(line.startswith("round 2: prompt task self_instruct: ") for line in lines)
    report = (root / "report.html").read_text()
    assert "Rows kept per task and category" in report and "self_instruct / addition" in report


def test_a_task_and_category_that_kept_nothing_is_marked():
    from synthloop.prompt_rounds import TaskTally, kept_line
    from synthloop.reports.html import kept_per_task_table

    kept = Record("exercise", "addition", "q", "synthetic", 1, answer="1", task="exercises")
    rejected = Record("exercise", "logic", "q2", "synthetic", 1, answer="2", task="exercises")
    rejected.add_verdict("verify", False, "wrong_answer")
    tally = TaskTally([("write_problems", 0), ("exercises", 2)], ["addition", "logic"])
    tally.row(kept)  # the first folder holds no row: both rows are the exercises'
    tally.row(rejected)
    counts = tally.counts()
    assert counts["kept_per_task"] == {
        "write_problems": {"addition": 0, "logic": 0},
        "exercises": {"addition": 1, "logic": 0},
    }
    assert kept_line(counts["kept_per_task"]) == "write_problems=0 (0 in addition, logic) exercises=1 (0 in logic)"
    table = kept_per_task_table([{"round": 1, "counts": counts}])
    assert "exercises / logic</td><td style='background:#f8d7da'><b>0</b>" in table


@pytest.mark.slow
def test_resume_after_kill_9_past_the_prompt_task_step_sends_nothing_again(data, tmp_path):
    teacher = teacher_for(data)
    run_dir = tmp_path / "run"
    last = run_dir / "rounds/01/prompted/refusal/_SUCCESS.json"  # the round's last prompt-task folder
    with serve_in_thread(teacher.app()) as url:
        recipe = tmp_path / "r.yaml"
        recipe.write_text(recipe_text(data, f"{url}/v1", rounds=1))
        command = [sys.executable, "-m", "synthloop.cli.main", "run", str(recipe), "--run-dir", str(run_dir)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 300
        while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (run_dir / "rounds/01/train/_SUCCESS.json").exists()
        made = sum(teacher.calls.values())
        assert main(["run", str(recipe), "--run-dir", str(run_dir), "--resume"]) == 0
    assert sum(teacher.calls.values()) == made  # every answer came from the cache
    assert read_records(run_dir / "rounds/01/train")


# ---- synthloop generate: self_instruct -> answer -----------------------------------------------------


def test_generate_answers_self_instruct_instructions(tmp_path):
    teacher = ScriptedTeacher(error_rate=0.0, skill_of={"What is 2 + 3?": "addition"})
    with serve_in_thread(teacher.app()) as url:
        job = {
            "name": "instruct",
            "teacher": {"backend": "openai", "base_url": f"{url}/v1", "model": "scripted"},
            "steps": [
                {"name": "new", "task": "self_instruct", "inputs": ["What is 2 + 3?"], "count": 3},
                {"name": "answered", "task": "answer", "from": "new", "samples": 2},
                {"name": "plain", "task": "answer", "from": "new", "reasoning": False},
            ],
        }
        (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
        assert main(["generate", str(tmp_path / "job.yaml"), "--run-dir", str(tmp_path / "run")]) == 0
    instructions = {r.id: r for r in read_records(tmp_path / "run/steps/new")}
    answers = read_records(tmp_path / "run/steps/answered")
    assert len(instructions) == 3 and len(answers) == 6
    for row in answers:
        parent = instructions[row.parent_ids[0]]
        assert row.question == parent.question and row.task == "answer" and row.kind == "response"
        assert row.answer == teacher.truth[row.question] and row.reasoning  # chain of thought, then the answer
        assert row.template_version == "answer-v1"
    plain = read_records(tmp_path / "run/steps/plain")
    assert {r.template_version for r in plain} == {"answer-plain-v1"}
    assert all(r.answer and r.answer.rstrip().endswith(teacher.truth[r.question]) for r in plain)


def test_reasoning_is_an_answer_step_setting_only(tmp_path):
    from synthloop.generate import load_job

    job = {
        "name": "j",
        "teacher": {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
        "steps": [{"name": "a", "task": "textbook", "inputs": ["x"], "reasoning": True}],
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    with pytest.raises(RecipeError, match="reasoning is for the answer task only"):
        load_job(tmp_path / "job.yaml")
