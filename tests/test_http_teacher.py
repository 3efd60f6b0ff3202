"""The engine and the OpenAI-compatible backend against real HTTP servers on loopback: the simulated
server (known capacity), and the fault-injecting proxy in front of it."""

import asyncio
import time
from collections import Counter

import pytest
from aiohttp import web

from synthloop.records import Message
from synthloop.storage.response_cache import ResponseCache
from synthloop.teachers.base import SamplingParams, TeacherRequest, TeacherUnavailable
from synthloop.teachers.engine import Engine, EngineSettings, Prices
from synthloop.teachers.limits import TokenBucket
from synthloop.teachers.openai_http import OpenAITeacher, parse_retry_after
from synthloop.testing import free_port, serve_in_thread
from synthloop.testing.fault_proxy import FaultProxy, prompt_key
from synthloop.testing.simulated_server import SimulatedServer


def requests(n, prefix="q", max_tokens=8, fail_every=0):
    out = []
    for i in range(n):
        text = f"{prefix}{i}" + (" ALWAYS_FAIL" if fail_every and i % fail_every == 0 else "")
        out.append(TeacherRequest((Message("user", text),), SamplingParams(max_tokens=max_tokens)))
    return out


def run(engine, batch):
    async def go():
        try:
            return await engine.run(batch)
        finally:
            await engine.teacher.aclose()

    return asyncio.run(go())


def server_key(request):
    return prompt_key(f'{{"messages": [{{"role": "user", "content": "{request.messages[0].content}"}}]}}'.encode())


def test_engine_answers_everything_with_bounded_concurrency_and_never_calls_twice(tmp_path):
    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.001)
    with serve_in_thread(server.app()) as url:
        batch = requests(300) + requests(50)  # 50 identical prompts: called once each
        cache = ResponseCache(tmp_path / "cache.sqlite")
        engine = Engine(
            OpenAITeacher("simulated", f"{url}/v1", concurrency=16), EngineSettings(concurrency=16), cache, "r"
        )
        out, report = run(engine, batch)
        assert all(r is not None and r.text for r in out) and len(out) == 350
        assert out[0].text == out[300].text, "an identical prompt gets the same answer"
        assert report.unique == 300 and report.issued == 300 and report.answered == 300
        assert server.peak <= 16, "never more calls in flight than the concurrency"
        assert sum(server.completed.values()) == 300
        # 8 tokens reported per reply, but never below the local count (its 39 characters / 4)
        assert report.completion_tokens == sum(max(8, len(r.text) // 4) for r in out[:300])
        # An identical re-run is answered from the cache: no call reaches the server.
        again = Engine(OpenAITeacher("simulated", f"{url}/v1"), EngineSettings(), cache, "r")
        out2, report2 = run(again, batch)
        assert [r.text for r in out2] == [r.text for r in out] and all(r.cached for r in out2)
        assert report2.issued == 0 and sum(server.completed.values()) == 300


def test_faults_lose_nothing_duplicate_nothing_and_pay_only_for_lost_replies(tmp_path):
    server = SimulatedServer(max_concurrent=32, seconds_per_token=0.001)
    # 13.5% of attempts fail: a request that can succeed then fails all 6 attempts with odds of about
    # 6e-6 (at 27%, one of the 392 did in about one run in seven: the test was flaky).
    rates = {
        "rate_limit": 0.03,
        "server_error": 0.03,
        "stall": 0.015,
        "drop": 0.02,
        "truncated": 0.02,
        "malformed": 0.02,
    }
    with serve_in_thread(server.app()) as upstream:
        proxy = FaultProxy(upstream, rates, seed=3, stall_s=2.0)
        with serve_in_thread(proxy.app()) as url:
            batch = requests(400, fail_every=50)
            cache = ResponseCache(tmp_path / "cache.sqlite")
            settings = EngineSettings(concurrency=32, max_retries=5, timeout_s=0.5, backoff_base_s=0.02)
            engine = Engine(OpenAITeacher("simulated", f"{url}/v1", concurrency=32), settings, cache, "run")
            out, report = run(engine, batch)
    assert all(set(proxy.injected) >= {f} for f in rates), f"every fault kind was exercised: {proxy.injected}"
    assert len(out) == 400 and all(r is not None for r in out), "none lost"
    failed = [i for i, r in enumerate(out) if r.text is None]
    assert failed == list(range(0, 400, 50)), "only the always-failing requests fail, each kept with its error"
    assert all("HTTP 500" in out[i].error and out[i].attempts == 6 for i in failed)
    calls = cache.calls_for("run")
    assert len(calls) == 400 and len({k for k, _ in calls}) == 400, "each request finished exactly once"
    assert report.answered == 392 and report.failed == 8
    # What was paid: one completion per answered prompt, plus one per reply lost after the server did the work.
    for i, r in enumerate(out):
        key = server_key(batch[i])
        if r.text is not None:
            assert server.completed[key] == 1 + proxy.lost_after_upstream[key], batch[i].messages[0].content
        else:
            assert server.completed[key] == 0


def test_retry_after_is_honoured(tmp_path):
    seen = []

    async def handler(request):
        seen.append(time.monotonic())
        if len(seen) == 1:
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "1"})
        return web.json_response({"choices": [{"index": 0, "message": {"content": "ok"}}], "usage": {}})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    with serve_in_thread(app) as url:
        engine = Engine(OpenAITeacher("m", f"{url}/v1"), EngineSettings(backoff_base_s=0.01))
        out, _ = run(engine, requests(1))
    assert out[0].text == "ok" and out[0].attempts == 2
    assert seen[1] - seen[0] >= 0.95, "the retry waited for the Retry-After the server asked for"


def test_retry_after_formats():
    assert parse_retry_after({"Retry-After": "2.5"}) == 2.5
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past
    assert parse_retry_after({"Retry-After": "soon"}) is None and parse_retry_after({}) is None


def test_token_bucket_waits_for_refill():
    async def go():
        bucket = TokenBucket(per_minute=120)  # 2 per second, burst of 120
        await bucket.acquire(120)
        start = time.monotonic()
        await bucket.acquire(1)
        return time.monotonic() - start

    assert asyncio.run(go()) >= 0.45, "once the minute's allowance is spent, the next unit waits for the refill"


def test_budget_cap_stops_cleanly_and_keeps_what_was_answered(tmp_path):
    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0)
    with serve_in_thread(server.app()) as url:
        cache = ResponseCache(tmp_path / "cache.sqlite")
        prices = Prices(input_per_million=1000.0, output_per_million=1000.0)
        settings = EngineSettings(concurrency=4, prices=prices, max_cost_usd=0.5)
        out, report = run(Engine(OpenAITeacher("simulated", f"{url}/v1"), settings, cache, "r"), requests(200))
        assert report.stopped and "max_cost_usd" in report.stopped
        answered = [r for r in out if r is not None]
        assert 0 < len(answered) < 200 and report.not_issued == 200 - len(answered)
        assert cache.spent("r").cost_usd <= 0.5, "the cap is never crossed"
        assert sum(server.completed.values()) == len(answered) == cache.spent("r").calls


def test_check_names_the_url_of_an_unreachable_server_and_an_unknown_model():
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(TeacherUnavailable, match=dead.replace(".", r"\.")):
        asyncio.run(OpenAITeacher("m", dead).check())
    server = SimulatedServer(model="served-model")
    with serve_in_thread(server.app()) as url, pytest.raises(TeacherUnavailable, match="'wrong' is not served"):
        asyncio.run(OpenAITeacher("wrong", f"{url}/v1").check())


def test_a_key_variable_that_is_not_set_fails_before_any_call(monkeypatch):
    monkeypatch.delenv("SYNTHLOOP_TEST_KEY", raising=False)
    with pytest.raises(TeacherUnavailable, match="SYNTHLOOP_TEST_KEY is not set"):
        OpenAITeacher("m", "http://127.0.0.1:1/v1", api_key_env="SYNTHLOOP_TEST_KEY")
    monkeypatch.setenv("SYNTHLOOP_TEST_KEY", "sk-secret")
    teacher = OpenAITeacher("m", "http://127.0.0.1:1/v1", api_key_env="SYNTHLOOP_TEST_KEY")
    assert teacher.headers["Authorization"] == "Bearer sk-secret"


def test_completions_endpoint_and_n_samples():
    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0)
    with serve_in_thread(server.app()) as url:
        teacher = OpenAITeacher("simulated", f"{url}/v1", endpoint="completions")
        request = TeacherRequest((Message("user", "hi"),), SamplingParams(max_tokens=4, n=3))
        out, _ = run(Engine(teacher), [request])
    assert len(out[0].texts) == 3 and len(set(out[0].texts)) == 3
    assert Counter(server.completed.values()) == Counter({1: 1})


def test_structured_output_sends_the_schema_only_when_enabled():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    request = TeacherRequest((Message("user", "x"),), SamplingParams(max_tokens=5), response_schema=schema)
    on = OpenAITeacher("m", "http://127.0.0.1:1/v1", structured_output=True).body(request)
    assert on["response_format"]["json_schema"]["schema"] == schema and on["max_tokens"] == 5
    assert "response_format" not in OpenAITeacher("m", "http://127.0.0.1:1/v1").body(request)
    assert request.key("b", "m") != TeacherRequest((Message("user", "x"),), SamplingParams(max_tokens=5)).key("b", "m")


def test_progress_logs_plain_lines_when_not_a_terminal():
    import io

    from synthloop.teachers.progress import Progress

    lines = []
    progress = Progress("teacher", stream=io.StringIO(), log=lines.append, interval_s=0.0)
    progress.begin(total=4, cached=1)
    progress.advance(ok=True, completion_tokens=10)
    progress.advance(ok=False, completion_tokens=0)
    progress.finish()
    assert lines[0].startswith("teacher: 1/4 calls") and "3/4 calls" in lines[-1] and "errors 1" in lines[-1]
    assert "ETA" in lines[-1] and "calls/s" in lines[-1] and "tok/s" in lines[-1]
