"""A hostile or broken teacher server, for real, on loopback: a key refused mid-run, a model that goes
away, error bodies that echo the key, replies of 50 MB, a gzip bomb, absurd usage, 10,000 choices.
Each is stopped, bounded or kept as a failed call, and the key never lands anywhere."""

import asyncio
import json
import tracemalloc
import zlib

import pytest
import yaml
from aiohttp import web

from synthloop.cli.main import main
from synthloop.records import Message
from synthloop.storage.response_cache import ResponseCache
from synthloop.teachers.base import SamplingParams, TeacherRequest, TeacherUnavailable
from synthloop.teachers.engine import Engine, EngineSettings
from synthloop.teachers.openai_http import OpenAITeacher
from synthloop.testing import serve_in_thread

KEY = "sk-test-7f3a9c1e5b2d4f60"


class Hostile:
    """An OpenAI-compatible server whose behaviour a test sets in `mode`."""

    def __init__(self, mode="ok", after=0):
        self.mode, self.after, self.calls = mode, after, 0

    def app(self):
        app = web.Application()
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    async def models(self, request):
        return web.json_response({"data": [{"id": "m"}]})

    async def chat(self, request):
        body = await request.json()
        self.calls += 1
        text = f"# Notes on {body['messages'][-1]['content'][:40]}"
        ok = {
            "choices": [{"index": 0, "message": {"content": text}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 5},
        }
        mode = self.mode if self.calls > self.after else "ok"
        headers = dict(request.headers)
        if mode == "ok":
            return web.json_response(ok)
        if mode in ("401", "403"):
            return web.json_response({"error": "invalid api key"}, status=int(mode))
        if mode == "404":
            return web.json_response({"error": "The model `m` does not exist"}, status=404)
        if mode in ("echo400", "echo500"):
            return web.json_response({"error": "bad request", "headers": headers}, status=int(mode[-3:]))
        if mode == "echo200":
            return web.Response(
                text=f"Authorization: {headers.get('Authorization')} is not json", content_type="text/plain"
            )
        if mode == "huge":
            stream = web.StreamResponse(headers={"Content-Type": "application/json"})
            await stream.prepare(request)
            await stream.write(b'{"choices": [{"message": {"content": "')
            for _ in range(50):  # 50 MB, written as the client reads it
                await stream.write(b"x" * 1_000_000)
            await stream.write(b'"}}]}')
            return stream
        if mode == "bomb":
            return web.Response(body=BOMB, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
        if mode == "choices":
            ok["choices"] = [{"index": i, "message": {"content": "x"}} for i in range(10_000)]
            return web.json_response(ok)
        if mode.startswith("usage:"):
            ok["usage"] = {"prompt_tokens": json.loads(mode[6:]), "completion_tokens": json.loads(mode[6:])}
            return web.json_response(ok)
        raise AssertionError(mode)


def gzip_bomb(size: int) -> bytes:
    """`size` bytes of zeros, gzipped (about a thousandth of that), built in pieces."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(size >> 20)]
    return b"".join([*parts, packer.flush()])


BOMB = gzip_bomb(1 << 30)  # 1 GiB inflated


def requests(n):
    return [TeacherRequest((Message("user", f"topic {i}"),), SamplingParams(max_tokens=16)) for i in range(n)]


def call(url, batch, cache=None, **settings):
    teacher = OpenAITeacher("m", f"{url}/v1", max_reply_bytes=settings.pop("max_reply_bytes", 8 * 2**20))
    engine = Engine(teacher, EngineSettings(max_retries=0, backoff_base_s=0.01, **settings), cache, "run")

    async def go():
        try:
            return await engine.run(batch)
        finally:
            await teacher.aclose()

    return asyncio.run(go())


def write_job(path, url, inputs):
    teacher = {"backend": "openai", "model": "m", "base_url": f"{url}/v1", "api_key_env": "SYNTHLOOP_TEST_KEY",
               "max_retries": 1, "backoff_base_s": 0.01, "concurrency": 1}  # fmt: skip
    path.write_text(yaml.safe_dump({"name": "job", "teacher": teacher,
                                    "steps": [{"name": "notes", "task": "textbook", "inputs": inputs}]}))  # fmt: skip
    return path


@pytest.mark.parametrize("status", ["401", "403", "404"])
def test_a_refused_key_or_a_vanished_model_stops_the_run_at_once(status, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_TEST_KEY", KEY)
    server = Hostile(status, after=3)
    root = tmp_path / "run"
    with serve_in_thread(server.app()) as url:
        job = write_job(tmp_path / "job.yaml", url, [f"subject {i}" for i in range(20)])
        assert main(["generate", str(job), "--run-dir", str(root)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("synthloop: error: the teacher at") and f"(HTTP {status}" in err and "\n" not in err
        assert server.calls == 4  # stopped at the first refusal: no retry, no other call
        server.mode = "ok"
        assert main(["generate", str(job), "--run-dir", str(root), "--resume"]) == 0
    assert server.calls == 4 + 17  # the three answers received before were kept


@pytest.mark.parametrize("mode", ["echo400", "echo500", "echo200"])
def test_the_key_never_lands_in_the_run_directory_or_the_output(mode, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_TEST_KEY", KEY)
    root = tmp_path / "run"
    with serve_in_thread(Hostile(mode).app()) as url:
        job = write_job(tmp_path / "job.yaml", url, ["alpha", "beta"])
        main(["generate", str(job), "--run-dir", str(root)])
    out, err = capsys.readouterr()
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "responses.sqlite" for p in files)
    assert "[redacted]" in out + err or any(b"[redacted]" in p.read_bytes() for p in files)
    assert KEY not in out + err
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path


def test_a_50_mb_reply_is_a_failed_call_read_no_further_than_the_cap():
    with serve_in_thread(Hostile("huge").app()) as url:
        tracemalloc.start()
        (response,), _ = call(url, requests(1), max_reply_bytes=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert response.texts is None and f"reply over {1 << 20} bytes" in response.error
    assert peak < 16 * 2**20, peak


def test_a_gzip_bomb_is_inflated_no_further_than_the_cap():
    with serve_in_thread(Hostile("bomb").app()) as url:
        tracemalloc.start()
        (first, second), _ = call(url, requests(2))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert first.texts is None and "reply over" in first.error and second.texts is None
    assert peak < 64 * 2**20, peak  # two calls, 8 MiB cap each: not the gigabyte it would inflate to


@pytest.mark.parametrize("usage", ["-1000000", "0", '"abc"', "true", "1e30", "2.5"])
def test_absurd_usage_neither_hides_spending_nor_breaks_the_caps(usage, tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    with serve_in_thread(Hostile(f"usage:{usage}").app()) as url:
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
    with serve_in_thread(Hostile("choices").app()) as url:
        (response,), _ = call(url, requests(1))
    assert response.texts is None and "10000 choices for n=1" in response.error


def test_a_refused_key_raises_out_of_the_engine():
    with serve_in_thread(Hostile("401").app()) as url, pytest.raises(TeacherUnavailable, match="HTTP 401"):
        call(url, requests(5))
