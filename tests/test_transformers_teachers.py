"""Real models behind the teacher interface: a tiny model the test builds, run in-process by the
`transformers` backend, and served by a real `transformers serve` that the engine and the official
`openai` client both drive."""

import asyncio

import pytest

from synthloop.curation.judge import LLMJudge
from synthloop.records import Message, Record
from synthloop.teachers.base import SamplingParams, TeacherRequest, TeacherUnavailable
from synthloop.teachers.engine import Engine, EngineSettings
from synthloop.teachers.factory import check_teacher
from synthloop.teachers.openai_http import OpenAITeacher
from synthloop.teachers.transformers_local import TransformersTeacher
from synthloop.testing import transformers_serve
from synthloop.testing.tiny_model import build_tiny_chat_model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny") / "model")


def ask(n, max_tokens=6, temperature=0.0):
    return [
        TeacherRequest((Message("user", f"What is {i} + 1?"),), SamplingParams(temperature, max_tokens=max_tokens))
        for i in range(n)
    ]


def test_local_transformers_teacher_batches_and_matches_one_by_one(tiny_model):
    teacher = TransformersTeacher(str(tiny_model), device="cpu", batch_size=8)
    out, report = asyncio.run(Engine(teacher, EngineSettings(concurrency=8)).run(ask(12)))
    assert report.answered == 12 and all(r.completion_tokens > 0 and r.prompt_tokens > 0 for r in out)
    alone, _ = asyncio.run(Engine(teacher, EngineSettings(concurrency=1)).run(ask(3)))
    assert [r.text for r in alone] == [r.text for r in out[:3]], "greedy output does not depend on the batch"


def test_local_teacher_that_cannot_be_loaded_says_so(tmp_path):
    with pytest.raises(TeacherUnavailable, match="cannot load teacher model"):
        TransformersTeacher(str(tmp_path / "nothing-here"))


@pytest.mark.slow
def test_transformers_serve_driven_by_the_engine_and_the_openai_client(tiny_model):
    with transformers_serve(str(tiny_model)) as base:
        teacher = OpenAITeacher(str(tiny_model), f"{base}/v1", concurrency=4)
        check_teacher(teacher)
        out, report = asyncio.run(Engine(teacher, EngineSettings(concurrency=4, timeout_s=60)).run(ask(8)))
        assert report.answered == 8 and report.failed == 0
        assert all(r.completion_tokens > 0 for r in out), "usage comes back from the server"
        from openai import OpenAI

        client = OpenAI(base_url=f"{base}/v1", api_key="unused")
        reply = client.chat.completions.create(
            model=str(tiny_model), messages=[{"role": "user", "content": "What is 0 + 1?"}], max_tokens=6, temperature=0
        )
        assert reply.choices[0].message.content == out[0].text, "the engine and the official client get the same reply"


def test_a_local_model_as_judge_gets_verdicts_even_when_it_writes_gibberish(tiny_model):
    rows = [Record("solution", "addition", f"What is {i} + 1?", "synthetic", 1, answer=str(i + 1)) for i in range(3)]
    judge = LLMJudge(Engine(TransformersTeacher(str(tiny_model), device="cpu")), max_tokens=16)
    out = list(judge.run(rows))
    # A random tiny model cannot write the JSON asked for, even when shown its reply: each row says so.
    assert [r.reject_reason for r in out] == ["judge_unparsed"] * 3
    assert all("the judge said:" in r.verdicts[-1].detail for r in out)
