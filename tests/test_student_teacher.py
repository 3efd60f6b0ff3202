"""`teacher: {backend: student}`: round N's student teaches round N+1, asked in its own format, named
by its checkpoint, never asked to write problems; and the teacher checkpoint checks (one line each)."""

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from synthloop.config import RecipeError, load_recipe, validate_recipe
from synthloop.loop import run_loop
from synthloop.storage.shards import read_records
from synthloop.tasks.solve import SolveTask
from synthloop.tasks.write_problems import WriteProblemsTask
from synthloop.teachers.base import SamplingParams, TeacherUnavailable
from synthloop.teachers.engine import Engine, EngineSettings
from synthloop.teachers.transformers_local import TransformersTeacher
from synthloop.training import student

TINY = Path(__file__).parent / "tiny_recipe.yaml"


@pytest.fixture(scope="module")
def student_taught_run(tmp_path_factory):
    recipe = load_recipe(TINY).model_copy(update={"rounds": 2})
    data = recipe.model_dump(mode="json")
    data["teacher"] = {"backend": "student", "first_round": {"backend": "oracle", "noise": 0.2}}
    data["student"]["train"]["steps_per_round"] = 40
    root = tmp_path_factory.mktemp("runs") / "student-taught"
    lines: list[str] = []
    try:
        run_loop(validate_recipe(data), root, log=lines.append)
    except Exception as err:  # a student this small may get everything wrong: round 2 then keeps nothing
        assert "kept 0" in str(err) or "0 rows" in str(err) or "nothing" in str(err), err
    return root, validate_recipe(data), lines


@pytest.mark.slow
def test_round_two_is_taught_by_round_ones_student(student_taught_run):
    root, _, lines = student_taught_run
    first = read_records(root / "rounds" / "01" / "generated")
    second = read_records(root / "rounds" / "02" / "generated")
    assert {r.teacher_backend for r in first} == {"oracle"}
    assert {r.teacher_backend for r in second} == {"student"}
    names = {r.teacher_model for r in second}
    assert len(names) == 1 and next(iter(names)).startswith("student:round-1:")
    assert any("the teacher is round 1's student" in line for line in lines)
    rejected = read_records(root / "rounds" / "02" / "rejected")
    reasons = {v.reason for r in rejected for v in r.verdicts if not v.keep}
    assert rejected and reasons <= {"wrong_answer", "parse_error", "duplicate", "contaminated"}, reasons
    for row in read_records(root / "rounds" / "02" / "curated"):  # what it got right, and only that, is kept
        assert row.answer == row.reference_answer


@pytest.mark.slow
def test_the_student_teacher_answers_as_the_student_does(student_taught_run):
    from synthloop.registry import SKILLS
    from synthloop.teachers.student_teacher import StudentTeacher

    root, recipe, _ = student_taught_run
    checkpoint = root / "rounds" / "01" / "student"
    problems = [SKILLS.get("addition").generate(5, i, 1) for i in range(6)]
    teacher = StudentTeacher(checkpoint, recipe, "student:test", batch_size=4)
    sampling = SamplingParams(temperature=0.0, max_tokens=recipe.evaluation.max_new_tokens)
    requests = [SolveTask().build_request(p, sampling) for p in problems]
    replies, _ = asyncio.run(Engine(teacher, EngineSettings(concurrency=8)).run(requests))
    direct = student.answer(checkpoint, [p.question for p in problems], recipe)
    assert [r.text.strip() for r in replies] == [d.strip() for d in direct]
    writing = WriteProblemsTask().from_topic("addition", "", sampling, 0)
    failed, _ = asyncio.run(Engine(teacher, EngineSettings(concurrency=1, max_retries=0)).run([writing]))
    assert failed[0].text is None and "answers problems only" in failed[0].error


def test_a_dataset_task_cannot_have_a_student_teacher():
    with pytest.raises(RecipeError, match="backend student answers problems but does not write them"):
        validate_recipe(
            {
                "name": "x",
                "task": {"type": "dataset", "train": "t.jsonl", "eval": "e.jsonl"},
                "teacher": {"backend": "student"},
                "generation": {"samples": 3, "temperature": 0.7},
                "curation": {"self_consistency": {}},
            }
        )


def test_teacher_checkpoint_problems_are_one_line_naming_the_path(tmp_path):
    from synthloop.testing.tiny_model import build_tiny_chat_model

    good = build_tiny_chat_model(tmp_path / "good")
    cases = {}
    cases["missing"] = (tmp_path / "missing", "does not exist")
    cases["file"] = (good / "config.json", "is a file")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases["empty"] = (empty, "holds no Hugging Face checkpoint")
    no_chat = shutil.copytree(good, tmp_path / "no-chat")
    (no_chat / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((no_chat / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (no_chat / "tokenizer_config.json").write_text(json.dumps(config))
    cases["no chat template"] = (no_chat, "has no chat template")
    for name, template, expected in (
        ("raising template", "{{ raise_exception('boom') }}", "its chat template fails on a system and a user turn"),
        ("unknown filter", "{{ messages | nosuchfilter }}", "its chat template does not compile"),
        ("empty template output", "{% if false %}x{% endif %}", "renders an empty prompt"),
    ):
        bad = shutil.copytree(good, tmp_path / name.replace(" ", "-"))
        (bad / "chat_template.jinja").write_text(template)
        cases[name] = (bad, expected)
    corrupt = shutil.copytree(good, tmp_path / "corrupt")
    weights = (corrupt / "model.safetensors").read_bytes()
    (corrupt / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    cases["truncated safetensors"] = (corrupt, "cannot be read")
    bert = tmp_path / "bert"
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2)).save_pretrained(
        bert
    )
    cases["not a causal LM"] = (bert, "not a causal language model")
    for name, (path, expected) in cases.items():
        with pytest.raises(TeacherUnavailable) as caught:
            TransformersTeacher(str(path))
        message = str(caught.value)
        assert expected in message and str(path) in message and "\n" not in message, (name, message)
    with pytest.raises(TeacherUnavailable, match="the built-in models are: builtin:classroom-teacher"):
        TransformersTeacher("builtin:no-such-teacher")


def test_engine_settings_belong_on_the_outer_teacher_and_the_dry_run_counts_round_one_only(tmp_path, capsys):
    from synthloop.cli.main import main

    base = {"name": "x", "skills": {"addition": {"difficulty": 1}}}
    first = {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", "max_cost_usd": 0.01}
    with pytest.raises(RecipeError, match=r"teacher.first_round.max_cost_usd: set max_cost_usd on teacher itself"):
        validate_recipe({**base, "teacher": {"backend": "student", "first_round": first}})
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "name: x\nrounds: 3\nskills: {addition: {difficulty: 1}}\n"
        "teacher: {backend: student, max_cost_usd: 5, first_round: {backend: oracle}}\n"
    )
    assert main(["run", str(recipe), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "teacher oracle:skills-reference" in out and "rounds 2 to 3: taught by the previous round's student" in out


@pytest.mark.slow
def test_a_damaged_student_is_one_line_when_it_should_teach(student_taught_run, tmp_path):
    from synthloop.teachers.base import TeacherUnavailable

    root, recipe, _ = student_taught_run
    copy = shutil.copytree(root, tmp_path / "copy")
    weights = copy / "rounds" / "01" / "student" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    (copy / "rounds" / "01" / "student" / "_SUCCESS.json").unlink()  # an old student without a marker is trusted
    shutil.rmtree(copy / "rounds" / "02")
    from synthloop.loop import run_loop as run

    with pytest.raises(TeacherUnavailable, match=r"round 1's student in .* cannot be loaded as the teacher"):
        run(recipe, copy, resume=True, log=lambda line: None)
