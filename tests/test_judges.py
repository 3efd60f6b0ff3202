"""LLM-as-judge over a real OpenAI-compatible server on loopback, with judges whose behaviour is known
(they know each question's correct answer), so every verdict can be checked exactly."""

import copy

import pytest

from synthloop.curation.judge import LLMJudge, PairwiseJudge, compare_pairs
from synthloop.records import Record
from synthloop.storage.response_cache import ResponseCache
from synthloop.teachers.engine import Engine, EngineSettings
from synthloop.teachers.openai_http import OpenAITeacher
from synthloop.testing import serve_in_thread
from synthloop.testing.judges import reference_judge
from synthloop.testing.simulated_server import SimulatedServer

REFERENCES = {f"What is {a} + {a + 1}?": str(2 * a + 1) for a in range(20)}


def row(question, answer, sample=0):
    return Record(
        kind="solution",
        skill="addition",
        question=question,
        source="synthetic",
        round=1,
        reasoning=f"Add the two numbers (sample {sample}).",
        answer=answer,
        sample_index=sample,
    )


def rows_with_wrong_every(k):
    out = []
    for i, (q, a) in enumerate(REFERENCES.items()):
        out.append(row(q, str(int(a) + 1) if i % k == 0 else a))
    return out


@pytest.fixture
def judge_server():
    servers = []

    def start(**behaviour):
        server = SimulatedServer(
            max_concurrent=0, seconds_per_token=0.0, responder=reference_judge(REFERENCES, **behaviour)
        )
        context = serve_in_thread(server.app())
        url = context.__enter__()
        servers.append(context)
        return server, Engine(OpenAITeacher("simulated", f"{url}/v1"), EngineSettings(concurrency=8, max_retries=1))

    yield start
    for context in servers:
        context.__exit__(None, None, None)


def test_pointwise_judge_rejects_exactly_the_wrong_answers_with_the_judges_reason(judge_server):
    _, engine = judge_server()
    rows = rows_with_wrong_every(4)
    out = list(LLMJudge(engine, threshold=7).run(rows))
    assert len(out) == len(rows)
    for i, r in enumerate(out):
        verdict = r.verdicts[-1]
        assert verdict.stage == "judge" and verdict.keep == (i % 4 != 0)
        assert verdict.score == (2.0 if i % 4 == 0 else 9.0)
        assert verdict.detail == "the final answer is " + ("wrong" if i % 4 == 0 else "right")
        if not verdict.keep:
            assert verdict.reason == "low_judge_score"


def test_judge_calls_are_cached_and_already_rejected_rows_are_not_judged(judge_server, tmp_path):
    server, engine = judge_server()
    engine.cache = ResponseCache(tmp_path / "cache.sqlite")
    rows = rows_with_wrong_every(4)
    rows[1].add_verdict("verify", False, "wrong_answer")
    list(LLMJudge(engine).run(rows))
    assert sum(server.completed.values()) == len(rows) - 1 and len(rows[1].verdicts) == 1
    list(LLMJudge(engine).run(rows_with_wrong_every(4)))
    assert sum(server.completed.values()) == len(rows), "only the row not judged before is a new call"


def test_a_judge_answering_in_prose_is_repaired_once_then_kept_as_a_verdict(judge_server):
    _, engine = judge_server(prose="first")
    out = list(LLMJudge(engine).run(rows_with_wrong_every(4)))
    assert [r.verdicts[-1].keep for r in out] == [i % 4 != 0 for i in range(len(out))], "repair gave JSON"
    _, engine = judge_server(prose="always")
    out = list(LLMJudge(engine).run(rows_with_wrong_every(4)))
    for r in out:
        verdict = r.verdicts[-1]
        assert (verdict.keep, verdict.reason) == (False, "judge_unparsed")
        assert "the judge said: I think this deserves" in verdict.detail
    out = list(LLMJudge(engine, on_unparsed="keep").run(rows_with_wrong_every(4)))
    assert all(r.kept and r.verdicts[-1].reason == "judge_unparsed" for r in out)


def test_an_unreachable_judge_rejects_rows_as_judge_failed_without_crashing():
    engine = Engine(OpenAITeacher("m", "http://127.0.0.1:1/v1"), EngineSettings(max_retries=0, timeout_s=2))
    out = list(LLMJudge(engine).run(rows_with_wrong_every(4)[:3]))
    assert [r.reject_reason for r in out] == ["judge_failed"] * 3
    assert all(r.verdicts[-1].detail for r in out)


def test_pairwise_keeps_the_better_answer_and_both_orders_cancel_a_position_bias(judge_server):
    questions = list(REFERENCES)[:6]
    rows = []
    for i, q in enumerate(questions):  # the wrong answer is first for half of the questions, second for the rest
        good, bad = row(q, REFERENCES[q], 0), row(q, "0", 1)
        rows += [bad, good] if i % 2 else [good, bad]
    _, engine = judge_server()
    judge = PairwiseJudge(engine)
    out = list(judge.run(copy.deepcopy(rows)))
    assert all(r.kept == (r.answer != "0") for r in out)
    assert (judge.pairs, judge.orders_agreed) == (6, 6)
    kept = [r for r in out if r.kept]
    assert {r.verdicts[-1].detail for r in kept} == {"won 1 of 1 comparisons; both orders agreed on 1"}

    # A judge that always says "A": every pair's two orders disagree, so no row wins on position alone.
    _, engine = judge_server(position_bias=1.0)
    biased = PairwiseJudge(engine)
    out = list(biased.run(rows))
    assert all(r.kept for r in out) and biased.orders_agreed == 0
    assert all(r.verdicts[-1].score == 0.5 for r in out)


def test_compare_pairs_reports_the_winner_and_order_agreement(judge_server):
    _, engine = judge_server(position_bias=0.5)
    q = list(REFERENCES)
    pairs = [(q[i], f"x\nFinal answer: {REFERENCES[q[i]]}", "x\nFinal answer: 0") for i in range(20)]
    outcomes = compare_pairs(engine, "correct answers win", pairs)
    for outcome in outcomes:
        assert outcome.winner in (0, None) and outcome.winner == (0 if outcome.orders_agree else None)
    assert 0 < sum(o.orders_agree for o in outcomes) < 20, "about half the backward orders are biased to A"


def test_one_answer_per_question_is_kept_without_a_comparison(judge_server):
    _, engine = judge_server()
    out = list(PairwiseJudge(engine).run(rows_with_wrong_every(4)[:2]))
    assert all(r.kept and r.verdicts[-1].detail == "one answer: nothing to compare" for r in out)


def test_a_repair_reply_must_match_the_schema_too():
    def wrong_json(body):
        return "Sure! Seven out of ten." if len(body["messages"]) == 2 else '{"rating": "seven"}'

    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0, responder=wrong_json)
    with serve_in_thread(server.app()) as url:
        engine = Engine(OpenAITeacher("simulated", f"{url}/v1"), EngineSettings(max_retries=0))
        [out] = LLMJudge(engine).run(rows_with_wrong_every(4)[:1])
    assert out.reject_reason == "judge_unparsed" and "Seven out of ten" in out.verdicts[-1].detail
    assert sum(server.completed.values()) == 2, "one call and one repair, no more"
