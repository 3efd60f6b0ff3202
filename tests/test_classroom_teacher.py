"""The built-in classroom teacher: shipped in the package, loads offline, answers in the loop's prompt,
carries its model card; and the script that trained it runs (here shrunk to a few steps)."""

import json

import pytest

from synthloop.teachers.checkpoints import BUILTIN, resolve_model
from synthloop.teachers.classroom import train

SHIPPED = BUILTIN["classroom-teacher"]


def test_the_shipped_teacher_is_small_loads_offline_and_has_a_chat_template(monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    size = sum(f.stat().st_size for f in SHIPPED.iterdir())
    assert size < 12_000_000, f"the wheel should stay small; the teacher takes {size} bytes"
    path = resolve_model("builtin:classroom-teacher")
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    assert tokenizer.chat_template and model.config.vocab_size == len(tokenizer)


def test_the_model_card_states_data_accuracy_and_limits():
    card = (SHIPPED / "README.md").read_text()
    report = json.loads((SHIPPED / "training.json").read_text())
    for heading in ("## Training data", "## Accuracy", "## Limits"):
        assert heading in card
    for skill, accuracy in report["evaluation"]["per_skill"].items():
        assert f"| {skill} | {accuracy:.3f} |" in card
    assert "python -m synthloop.teachers.classroom.train --out DIR" in card


def test_the_shipped_teacher_solves_in_the_loop_prompt():
    import asyncio

    from synthloop.registry import SKILLS
    from synthloop.tasks.solve import SolveTask
    from synthloop.teachers.base import SamplingParams
    from synthloop.teachers.engine import Engine, EngineSettings
    from synthloop.teachers.transformers_local import TransformersTeacher

    problems = [SKILLS.get("comparison").generate(31, i, 1) for i in range(16)]
    teacher = TransformersTeacher("builtin:classroom-teacher", device="cpu", batch_size=16)
    sampling = SamplingParams(temperature=0.0, max_tokens=96)
    replies, _ = asyncio.run(
        Engine(teacher, EngineSettings()).run([SolveTask().build_request(p, sampling) for p in problems])
    )
    parsed = [SolveTask().parse(r.text) for r in replies]
    assert sum(p.failure is None for p in parsed) >= 14  # it writes the format
    right = sum(SKILLS.get("comparison").score(r.text, p.answer) for r, p in zip(replies, problems, strict=True))
    assert right >= 10  # comparison is its easiest skill (model card); a broken checkpoint gets ~0


@pytest.mark.slow
def test_the_training_script_writes_a_loadable_checkpoint_and_card(tmp_path):
    out = tmp_path / "teacher"
    args = ["--out", str(out), "--steps", "3", "--batch-size", "4", "--hidden-size", "32", "--layers", "1"]
    train.main([*args, "--heads", "2", "--vocab-size", "300", "--log-every", "1", "--eval-per-skill", "2"])
    from synthloop.teachers.transformers_local import TransformersTeacher

    assert TransformersTeacher(str(out), device="cpu").model == str(out)
    card = (out / "README.md").read_text()
    assert "--steps 3" in card and "--hidden-size 32" in card and "| **macro** |" in card
