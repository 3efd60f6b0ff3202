import asyncio

from synthloop.curation.base import run_stages
from synthloop.curation.decontaminate import Decontaminate
from synthloop.curation.dedup import ExactDedup
from synthloop.curation.verify import VerifyAnswers
from synthloop.records import Record
from synthloop.registry import SKILLS
from synthloop.tasks.solve import SolveTask
from synthloop.teachers.base import SamplingParams
from synthloop.teachers.engine import run_requests
from synthloop.teachers.oracle import OracleTeacher


def oracle_records(noise: float, n_per_skill: int = 60) -> list[Record]:
    task = SolveTask()
    problems = [SKILLS.get(s).generate(5, i, 2) for s in SKILLS.names() for i in range(n_per_skill)]
    requests = [task.build_request(p, SamplingParams()) for p in problems]
    responses = asyncio.run(run_requests(OracleTeacher(noise=noise, seed=1), requests, 32, 0))
    records = []
    for p, r in zip(problems, responses, strict=True):
        parsed = task.parse(r.text)
        records.append(
            Record(
                kind="solution",
                skill=p.skill,
                question=p.question,
                source="synthetic",
                round=1,
                reasoning=parsed.items[0].reasoning,
                answer=parsed.items[0].answer if not parsed.failure else None,
                reference_answer=p.answer,
                raw_output=r.text,
            )
        )
    return records


def test_verifier_rejects_every_injected_error_and_no_correct_answer():
    records = oracle_records(noise=0.3)
    truly_wrong = {r.id for r in records if r.answer != r.reference_answer}
    assert 0.2 * len(records) < len(truly_wrong) < 0.4 * len(records)
    out = list(VerifyAnswers().run(records))
    rejected = {r.id for r in out if not r.kept}
    assert rejected == truly_wrong
    assert all(r.reject_reason == "wrong_answer" for r in out if not r.kept)
    assert len(out) == len(records), "nothing is dropped"


def test_failed_and_unparsable_rows_are_rejected_with_reasons():
    ok = oracle_records(0.0, 1)[0]
    failed = Record(kind="solution", skill="addition", question="q1", source="synthetic", round=1, error="timeout")
    garbled = Record(kind="solution", skill="addition", question="q2", source="synthetic", round=1, raw_output="hm")
    out = list(VerifyAnswers().run([ok, failed, garbled]))
    assert [r.reject_reason for r in out] == [None, "teacher_error", "parse_error"]


def test_dedup_keeps_first_and_links_parent():
    a = Record(kind="solution", skill="s", question="What is 1 + 1?", source="synthetic", round=1, answer="2")
    b = Record(kind="solution", skill="s", question="what is 1 +  1?", source="synthetic", round=1, answer="3")
    c = Record(kind="solution", skill="s", question="Other", source="synthetic", round=1, answer="3")
    out = list(ExactDedup().run([a, b, c]))
    assert [r.kept for r in out] == [True, False, True]
    assert out[1].reject_reason == "duplicate" and out[1].parent_ids == [a.id]


def test_decontamination_and_already_rejected_rows_pass_through():
    probe = Record(kind="solution", skill="s", question="Probe Q", source="synthetic", round=1)
    other = Record(kind="solution", skill="s", question="fresh", source="synthetic", round=1)
    gone = Record(kind="solution", skill="s", question="probe q", source="synthetic", round=1)
    gone.add_verdict("verify", False, "wrong_answer")
    out = list(run_stages([Decontaminate({"probes": ["probe q"]}), ExactDedup()], [probe, other, gone]))
    assert [r.reject_reason for r in out] == ["contaminated", None, "wrong_answer"]
    assert len(out[2].verdicts) == 1, "a rejected row is not judged again"
