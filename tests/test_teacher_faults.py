"""A hostile or broken teacher server, for real, on loopback (`synthloop.testing.hostile_server`): a key
refused or a model gone mid-run (generate, run, a judge in curate), error bodies that echo the key (whole,
cut, escaped, URL-encoded), replies of 50 MB, a gzip bomb, corrupt or unasked-for encodings, absurd usage,
10,000 choices, unusable 200 bodies, a reply that never ends, a huge Retry-After, a bad single request.
Each is stopped, bounded or kept as a failed call, and the key never lands anywhere."""

import asyncio
import json
import sqlite3
import tracemalloc
import urllib.parse
from pathlib import Path

import pytest
import yaml

from synthloop.cli.main import main
from synthloop.records import Message
from synthloop.storage.response_cache import ResponseCache
from synthloop.storage.shards import read_records
from synthloop.teachers.base import SamplingParams, TeacherRequest, TeacherUnavailable
from synthloop.teachers.engine import Engine, EngineSettings
from synthloop.teachers.openai_http import OpenAITeacher
from synthloop.testing import serve_in_thread
from synthloop.testing.hostile_server import PROXY_TOKEN, HostileServer, gzip_bomb

KEY = "sk-test/7f3a+9c1e=5b2d4f60"  # '/', '+' and '=' change when a server escapes or URL-encodes the key
LEAKS = (KEY, KEY[:10], KEY[-10:], urllib.parse.quote(KEY, safe=""), KEY.replace("/", "\\/"), PROXY_TOKEN)


@pytest.fixture(scope="session")
def bomb():
    return gzip_bomb(1 << 30)  # 1 GiB inflated, about 1 MB sent; built once


def requests(n):
    return [TeacherRequest((Message("user", f"topic {i}"),), SamplingParams(max_tokens=16)) for i in range(n)]


def call(url, batch, cache=None, **settings):
    teacher = OpenAITeacher("m", f"{url}/v1", max_reply_bytes=settings.pop("max_reply_bytes", 8 * 2**20))
    settings = {"max_retries": 0, "backoff_base_s": 0.01, **settings}
    engine = Engine(teacher, EngineSettings(**settings), cache, "run")

    async def go():
        try:
            return await engine.run(batch)
        finally:
            await teacher.aclose()

    return asyncio.run(go())


def write_job(path, url, inputs, max_tokens=512, **engine):
    teacher = {"backend": "openai", "model": "m", "base_url": f"{url}/v1", "api_key_env": "SYNTHLOOP_TEST_KEY",
               "max_retries": 1, "backoff_base_s": 0.01, "concurrency": 1, **engine}  # fmt: skip
    step = {"name": "notes", "task": "textbook", "inputs": inputs, "max_tokens": max_tokens}
    path.write_text(yaml.safe_dump({"name": "job", "teacher": teacher, "steps": [step]}))
    return path


@pytest.mark.parametrize("status", ["401", "403", "404"])
def test_a_refused_key_or_a_vanished_model_stops_the_run_at_once(status, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_TEST_KEY", KEY)
    server = HostileServer(status, after=3)
    root = tmp_path / "run"
    with serve_in_thread(server.app()) as url:
        job = write_job(tmp_path / "job.yaml", url, [f"subject {i}" for i in range(20)])
        assert main(["generate", str(job), "--run-dir", str(root)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("synthloop: error: the teacher at") and f"(HTTP {status}" in err and "\n" not in err
        assert ("teacher.model" if status == "404" else "$SYNTHLOOP_TEST_KEY") in err and "--resume" in err
        assert server.calls == 4  # stopped at the first refusal: no retry, no other call
        server.mode = "ok"
        assert main(["generate", str(job), "--run-dir", str(root), "--resume"]) == 0
    assert server.calls == 4 + 17  # the three answers received before were kept


@pytest.mark.parametrize(
    "mode", ["echo400", "echo500", "echo200", "echo_cut", "echo_escaped", "echo401", "echo_content"]
)
def test_the_key_never_lands_in_the_run_directory_or_the_output(mode, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_TEST_KEY", KEY)
    root = tmp_path / "run"
    with serve_in_thread(HostileServer(mode, after=1).app()) as url:
        job = write_job(tmp_path / "job.yaml", url, ["alpha", "beta", "gamma"])
        main(["generate", str(job), "--run-dir", str(root)])
    out, err = capsys.readouterr()
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "responses.sqlite" for p in files)
    assert "[redacted]" in out + err or any(b"[redacted]" in p.read_bytes() for p in files)
    for leak in LEAKS:  # the key whole, either half (a cut message), escaped, URL-encoded; a proxy's token
        assert leak not in out + err, leak
        for path in files:
            assert leak.encode() not in path.read_bytes(), (leak, path)


def test_a_50_mb_reply_is_a_failed_call_read_no_further_than_the_cap():
    with serve_in_thread(HostileServer("huge").app()) as url:
        tracemalloc.start()
        (response,), _ = call(url, requests(1), max_reply_bytes=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert response.texts is None and f"reply over {1 << 20} bytes" in response.error
    assert peak < 16 * 2**20, peak


def test_a_gzip_bomb_is_inflated_no_further_than_the_cap(bomb):
    with serve_in_thread(HostileServer("bomb", bomb=bomb).app()) as url:
        tracemalloc.start()
        (first, second), _ = call(url, requests(2))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert first.texts is None and "reply over" in first.error and second.texts is None
    assert peak < 64 * 2**20, peak  # two calls, 8 MiB cap each: not the gigabyte it would inflate to


@pytest.mark.parametrize("usage", ["-1000000", "0", '"abc"', "true", "1e30", "2.5"])
def test_absurd_usage_neither_hides_spending_nor_breaks_the_caps(usage, tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    with serve_in_thread(HostileServer(f"usage:{usage}").app()) as url:
        responses, report = call(url, requests(50), cache, concurrency=1, max_total_tokens=2000)
    spent = cache.spent("run")
    answered = [r for r in responses if r is not None]
    assert all(r.prompt_tokens >= 1 and r.completion_tokens >= 1 for r in answered)  # never free
    assert 0 <= spent.tokens <= 10**13
    if usage == "1e30":
        assert report.stopped and len(answered) == 1  # one absurd reply: the cap stops the run
    else:
        assert report.stopped is not None or len(answered) == 50


def test_ten_thousand_choices_for_one_asked_is_a_failed_call():
    with serve_in_thread(HostileServer("choices").app()) as url:
        (response,), _ = call(url, requests(1))
    assert response.texts is None and "10000 choices for n=1" in response.error


def test_a_refused_key_raises_out_of_the_engine():
    with serve_in_thread(HostileServer("401").app()) as url, pytest.raises(TeacherUnavailable, match="HTTP 401"):
        call(url, requests(5))


@pytest.mark.parametrize("usage", ["-1000000", "0", '"abc"', "1e30"])
def test_absurd_usage_stops_the_cli_by_the_cap_with_status_3_and_the_ledger_at_least_the_local_count(
    usage, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("SYNTHLOOP_TEST_KEY", KEY)
    server = HostileServer(f"usage:{usage}")
    root = tmp_path / "run"
    with serve_in_thread(server.app()) as url:
        inputs = [f"subject {i}" for i in range(40)]
        job = write_job(tmp_path / "job.yaml", url, inputs, max_tokens=20, max_total_tokens=3000)
        assert main(["generate", str(job), "--run-dir", str(root)]) == 3
    assert "max_total_tokens 3000 reached" in capsys.readouterr().err
    with sqlite3.connect(root / "cache" / "responses.sqlite") as db:
        ledger, calls = db.execute("SELECT SUM(prompt_tokens + completion_tokens), COUNT(*) FROM calls").fetchone()
    assert calls == server.calls and 0 < calls < 40
    assert ledger >= server.local_tokens  # 4 characters a token of every prompt and reply, at least
    if usage == "1e30":
        assert calls == 1 and ledger == 2 * 10**12  # clamped: exact integers, and the cap stopped the run


def test_a_refused_key_stops_synthloop_run_before_anything_else(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_TEST_KEY", KEY)
    server = HostileServer("401", after=5)
    with serve_in_thread(server.app()) as url:
        recipe = yaml.safe_load((Path(__file__).parent / "tiny_recipe.yaml").read_text())
        recipe.update(rounds=1, generation={"budget_per_round": 40, "shard_size": 10})
        recipe["teacher"] = {"backend": "openai", "model": "m", "base_url": f"{url}/v1", "concurrency": 1,
                             "api_key_env": "SYNTHLOOP_TEST_KEY", "max_retries": 2, "backoff_base_s": 0.01}  # fmt: skip
        (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
        assert main(["run", str(tmp_path / "recipe.yaml"), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("synthloop: error: the teacher at") and "(HTTP 401" in err and "--resume" in err
    assert "\n" not in err and server.calls == 6
    assert not list((tmp_path / "run").rglob("student"))  # nothing trained on a round the teacher never finished


@pytest.mark.parametrize("status", ["400", "422"])
def test_a_bad_single_request_is_a_failed_row_and_the_run_goes_on(status, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_TEST_KEY", KEY)
    server = HostileServer(status)
    root = tmp_path / "run"
    with serve_in_thread(server.app()) as url:
        job = write_job(tmp_path / "job.yaml", url, ["alpha", "poison pill", "gamma", "delta"])
        assert main(["generate", str(job), "--run-dir", str(root)]) == 0
    assert server.calls == 4  # not retried: the same request gets the same answer
    failed = [r for r in read_records(root / "steps" / "notes") if r.error]
    assert len(failed) == 1 and f"HTTP {status}" in failed[0].error and "poison" in failed[0].skill


@pytest.mark.parametrize(
    "mode",
    [
        "body:<html>502 Bad Gateway</html>",
        "body:" + "[" * 100_000,
        "body:{}",
        'body:{"choices": {"a": 1}}',
        "content:123",
        'content:[{"type": "text", "text": "hi"}]',
        'content:{"a": 1}',
    ],
)
def test_an_unusable_200_reply_is_a_failed_call(mode):
    with serve_in_thread(HostileServer(mode).app()) as url:
        (response,), report = call(url, requests(1))
    assert response.texts is None and "unreadable response body" in response.error
    assert report.failed == 1


@pytest.mark.parametrize("mode", ["deflate", "raw_deflate"])
def test_a_deflate_reply_zlib_wrapped_or_raw_is_read(mode):
    with serve_in_thread(HostileServer(mode).app()) as url:
        (response,), _ = call(url, requests(1))
    assert response.error is None and response.text == "# Notes on topic 0"


def test_a_corrupt_gzip_reply_is_a_failed_call_that_says_so():
    with serve_in_thread(HostileServer("corrupt_gzip").app()) as url:
        (response,), _ = call(url, requests(1))
    assert response.texts is None and "corrupt gzip reply" in response.error


def test_a_reply_that_never_ends_is_cut_by_the_per_attempt_timeout():
    with serve_in_thread(HostileServer("drip").app()) as url:
        (response,), _ = call(url, requests(1), timeout_s=0.5)
    assert response.texts is None and "no reply within 0.5s" in response.error


@pytest.mark.parametrize("value", ["999999999", "inf", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_a_huge_retry_after_is_obeyed_only_up_to_the_cap(value):
    with serve_in_thread(HostileServer(f"retry_after:{value}").app()) as url:
        (response,), report = call(url, requests(1), max_retries=1, retry_after_max_s=0.2)
    assert response.text == "# Notes on topic 0" and response.attempts == 2 and report.errors == {}


def test_a_key_refused_with_many_calls_in_flight_cancels_them_and_keeps_what_was_answered(tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    server = HostileServer("401", after=10)
    with serve_in_thread(server.app()) as url, pytest.raises(TeacherUnavailable, match="HTTP 401"):
        call(url, requests(200), cache, concurrency=8)
    assert server.calls <= 10 + 8  # the refusal stopped every worker; none picked up another request
    assert 0 < cache.spent("run").calls <= 10  # the answers received are in the ledger (no failure is)


def test_a_per_attempt_timeout_of_forever_is_refused_before_anything_runs(tmp_path, capsys):
    job = write_job(tmp_path / "job.yaml", "http://127.0.0.1:1", ["alpha"], timeout_s=float("inf"))
    assert ".inf" in job.read_text()
    assert main(["generate", str(job), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("synthloop: error:") and "timeout_s" in err and not (tmp_path / "run").exists()


def test_a_judge_whose_model_goes_away_mid_curation_stops_curate_naming_the_judge(tmp_path, capsys):
    rows = "".join(json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n" for i in range(10))
    (tmp_path / "rows.jsonl").write_text(rows)
    server = HostileServer("404", after=2)
    with serve_in_thread(server.app()) as url:
        judge = {"judge": {"teacher": {"backend": "openai", "model": "m", "base_url": f"{url}/v1", "concurrency": 1}}}
        (tmp_path / "judge.yaml").write_text(yaml.safe_dump({"curation": judge}))
        args = ["curate", str(tmp_path / "rows.jsonl"), "--recipe", str(tmp_path / "judge.yaml")]
        assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("synthloop: error: the judge at") and "(HTTP 404" in err and "\n" not in err
    assert "curation.judge.teacher.model" in err and server.calls == 3


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, gzip"])
def test_a_reply_in_an_encoding_we_did_not_ask_for_is_a_failed_call_not_retried(encoding):
    server = HostileServer(f"encoding:{encoding}")
    with serve_in_thread(server.app()) as url:
        (response,), _ = call(url, requests(1), max_retries=2)
    assert response.texts is None and f"unsupported Content-Encoding {encoding!r}" in response.error
    assert server.calls == 1


def test_a_refusal_wrapped_in_a_gzip_bomb_still_stops_the_run_and_reads_little(bomb):
    with serve_in_thread(HostileServer("bomb401", bomb=bomb).app()) as url:
        tracemalloc.start()
        with pytest.raises(TeacherUnavailable, match="HTTP 401"):
            call(url, requests(2))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 16 * 2**20, peak  # an error body is read to 64 KiB, not to the 8 MiB a reply may have


def test_the_key_split_by_the_cut_of_a_long_error_body_is_not_stored(monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_TEST_KEY", KEY)
    with serve_in_thread(HostileServer("echo_tail").app()) as url:
        teacher = OpenAITeacher("m", f"{url}/v1", api_key_env="SYNTHLOOP_TEST_KEY")

        async def go():
            try:
                return await Engine(teacher, EngineSettings(max_retries=0)).run(requests(1))
            finally:
                await teacher.aclose()

        (response,), _ = asyncio.run(go())
    assert "HTTP 500" in response.error and "[cut]" in response.error
    assert not any(leak in response.error for leak in LEAKS), response.error
