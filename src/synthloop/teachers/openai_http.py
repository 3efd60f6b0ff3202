"""`openai`: any OpenAI-compatible HTTP server (vLLM, SGLang, llama.cpp server, Ollama, `transformers
serve`, hosted APIs), on the chat or the completions endpoint.

The recipe names the environment variable that holds the key, never the key. Errors are sorted for
the engine: 429, 408, 409, 5xx, timeouts, dropped connections and unreadable bodies are retryable
(honouring `Retry-After`); other 4xx are not, and 401, 403 (the key) and 404 (the model or the URL)
stop the whole run at once, since every other call would fail the same way. `check()` fails early,
before anything is written, when the server is unreachable, the model is not served or the key is
refused.

Nothing from the server is trusted: a reply is read up to `max_reply_bytes` after decompression
(a gzip bomb stops there; an error reply, at 64 KiB), reported usage is never taken below a local
count (4 characters a token) nor above 10^12, and the key's value is redacted from every error message."""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import time
import zlib
from typing import Any

import aiohttp

from synthloop.teachers.base import Teacher, TeacherError, TeacherRequest, TeacherResponse, TeacherUnavailable

RETRYABLE_STATUS = {408, 409, 425, 429}
FATAL_STATUS = (401, 403, 404)  # the key refused, or the model or URL unknown: every other call would fail alike
ERROR_BODY_BYTES = 64 * 1024  # of an error reply we read only this much: a message, not a payload
MAX_REPORTED_TOKENS = 10**12  # above this a reported count is nonsense: clamped, so the caps still stop the run


class ReplyTooLarge(TeacherError):
    def __init__(self, limit: int):
        super().__init__(f"reply over {limit} bytes (teacher.max_reply_bytes)", retryable=False)


class OpenAITeacher(Teacher):
    backend = "openai"

    def __init__(
        self,
        model: str,
        base_url: str = "http://localhost:8000/v1",
        api_key_env: str | None = None,
        endpoint: str = "chat",
        structured_output: bool = False,
        concurrency: int = 64,
        extra_body: dict[str, Any] | None = None,
        max_reply_bytes: int = 8 * 2**20,
    ):
        if endpoint not in ("chat", "completions"):
            raise ValueError(f"endpoint must be 'chat' or 'completions', got {endpoint!r}")
        self.model, self.base_url, self.endpoint = model, base_url.rstrip("/"), endpoint
        self.structured_output, self.concurrency = structured_output, concurrency
        self.extra_body = dict(extra_body or {})
        self.max_reply_bytes = max_reply_bytes
        # we inflate replies ourselves, with a bound; no encoding we could not bound
        self.headers = {"Content-Type": "application/json", "Accept-Encoding": "gzip, deflate"}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise TeacherUnavailable(
                    f"environment variable {api_key_env} is not set; export the API key in it "
                    "(the recipe names the variable, never the key itself)"
                )
            self.headers["Authorization"] = f"Bearer {key}"
            self.secrets = (key,)
        self.api_key_env = api_key_env
        self.url = f"{self.base_url}/{'chat/completions' if endpoint == 'chat' else 'completions'}"
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    @property
    def supports_response_schema(self) -> bool:
        return self.structured_output

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session_loop = loop  # a session belongs to one event loop (each asyncio.run makes a new one)
            connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=0, ttl_dns_cache=300)
            # Timeouts belong to the engine (per attempt), so the session sets none of its own.
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=False,  # see read_capped
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def check(self) -> None:
        url = f"{self.base_url}/models"
        try:
            async with self._client().get(url, timeout=aiohttp.ClientTimeout(total=15)) as resp:
                status, raw = resp.status, await read_capped(resp, self.max_reply_bytes)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise TeacherUnavailable(
                self.redact(
                    f"cannot reach the teacher at {self.base_url} ({type(err).__name__}: {err}); is the server "
                    "running and is teacher.base_url right?"
                )
            ) from None
        except TeacherError as err:
            raise TeacherUnavailable(f"the teacher at {self.base_url} sent an unusable /models reply: {err}") from None
        if status in (401, 403):
            raise self.fatal(self.base_url, status, "", mid_run=False)
        if status != 200:
            return  # some servers have no /models: the first call will tell
        try:
            served = [m["id"] for m in json.loads(raw)["data"]]
        except (ValueError, KeyError, TypeError):
            return
        if served and self.model not in served and not any(s.split("@")[0] == self.model for s in served):
            raise TeacherUnavailable(
                f"model {self.model!r} is not served at {self.base_url}; it serves: {', '.join(served[:10])}"
            )

    def error_text(self, raw: bytes) -> str:
        """An error body as text, redacted before anything cuts it. A body we cut short at the read loses its
        tail too, where the front half of a secret could sit (redaction only finds a whole one)."""
        text = self.redact(raw.decode("utf-8", "replace"))
        if len(raw) >= ERROR_BODY_BYTES:
            margin = 3 * max((len(s) for s in self.secrets), default=0) + 16  # URL-encoding triples a character
            text = text[: max(0, len(text) - margin)] + " [cut]"
        return text

    def fatal(self, url: str, status: int, detail: str, mid_run: bool = True) -> TeacherUnavailable:
        """One line: what the server refused, what to fix, and (mid-run) that a resumed run keeps what it has."""
        said = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
        if status == 404:
            what = (
                f"does not know the model {self.model!r} or the URL ({said}); check teacher.model and teacher.base_url"
            )
        elif self.api_key_env:
            what = f"refused the API key ({said}); check the key in ${self.api_key_env}"
        else:
            what = f"wants an API key ({said}); name the variable that holds it in teacher.api_key_env"
        then = "rerun (with --resume if a run had started: answers received are kept)" if mid_run else "rerun"
        return TeacherUnavailable(f"the teacher at {url} {what}, then {then}")

    def body(self, request: TeacherRequest) -> dict[str, Any]:
        s = request.sampling
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        if s.n > 1:
            body["n"] = s.n
        if self.endpoint == "chat":
            body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
        else:
            body["prompt"] = render_prompt(request)
        if request.response_schema is not None and self.structured_output:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": request.response_schema, "strict": True},
            }
        body.update(self.extra_body)
        return body

    async def complete(self, request: TeacherRequest) -> TeacherResponse:
        try:
            async with self._client().post(self.url, json=self.body(request)) as resp:
                status, retry_after = resp.status, parse_retry_after(resp.headers)
                ok = status == 200
                raw = await read_capped(resp, self.max_reply_bytes if ok else ERROR_BODY_BYTES, truncate=not ok)
        except aiohttp.ClientError as err:  # refused, reset, dropped mid-body, ...
            message = f"connection to {self.base_url} failed ({type(err).__name__}: {err})"
            raise TeacherError(self.redact(message)) from None
        if status != 200:
            detail = cut(" ".join(self.error_text(raw).split()), 300)
            if status in FATAL_STATUS:
                raise self.fatal(self.url, status, cut(detail, 200))
            retryable = status in RETRYABLE_STATUS or status >= 500
            raise TeacherError(f"HTTP {status} from {self.url}: {detail}", retryable, retry_after)
        try:
            payload = json.loads(raw)
            choices = sorted(payload["choices"], key=lambda c: c.get("index", 0))
            texts = tuple(choice_text(c, self.endpoint) for c in choices)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:
            snippet = cut(self.redact(raw.decode("utf-8", "replace")), 120)
            raise TeacherError(f"unreadable response body ({type(err).__name__}: {err}): {snippet!r}") from None
        if not texts:
            raise TeacherError("the response has no choices")
        if len(texts) > request.sampling.n:
            raise TeacherError(f"{len(texts)} choices for n={request.sampling.n}", retryable=False)
        usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
        prompt_tokens = counted(usage.get("prompt_tokens"), request.estimated_prompt_tokens())
        completion_tokens = counted(usage.get("completion_tokens"), sum(len(t) // 4 for t in texts))
        # a reply that echoes the key must not carry it into the cache and the training rows either
        return TeacherResponse(tuple(self.redact(t) for t in texts), None, prompt_tokens, completion_tokens)


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


async def read_capped(resp: aiohttp.ClientResponse, limit: int, truncate: bool = False) -> bytes:
    """The body, inflated here (the session does not) and never past `limit` bytes of output: over that,
    `ReplyTooLarge`, or with `truncate` its first `limit` bytes (an error message needs no more)."""
    encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
        raise TeacherError(f"unsupported Content-Encoding {encoding!r}", retryable=False)
    inflater, head = None, b""
    body = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 16):
        data = chunk
        if inflater is None and encoding not in ("", "identity"):
            head += data  # the first two bytes tell zlib from raw deflate
            if len(head) < 2:
                continue
            inflater, data = zlib.decompressobj(window_bits(encoding, head)), head
        while data:
            if inflater is None:
                body += data
                data = b""
            else:
                try:
                    body += inflater.decompress(data, limit + 1 - len(body))  # never more than the cap allows
                except zlib.error as err:
                    raise TeacherError(f"corrupt {encoding} reply ({err})") from None
                data = inflater.unconsumed_tail
            if len(body) > limit:
                if truncate:
                    return bytes(body[:limit])
                raise ReplyTooLarge(limit)
    return bytes(body)


def window_bits(encoding: str, head: bytes) -> int:
    """gzip (header detected), or for `deflate` the zlib stream HTTP means, or the raw deflate some
    servers send instead (a zlib stream starts with a method byte ending in 8 and a check value)."""
    if encoding != "deflate":
        return 32 + zlib.MAX_WBITS
    zlib_header = len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
    return zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS


def counted(reported: Any, estimate: int) -> int:
    """A server's token count, never below the local count (4 characters a token), so a server reporting
    0 or -10^6 cannot make calls look cheaper to the budget caps than the text it sent. The price: where
    a tokenizer packs more than 4 characters a token, the ledger runs a little above the server's bill,
    which errs on the side of the caps. Negative numbers, NaN, booleans and strings count as no report
    (the local count stands); huge values are clamped so SQLite and the sums stay exact and a cap stops
    the run cleanly."""
    if isinstance(reported, bool) or not isinstance(reported, int | float) or not math.isfinite(reported):
        return estimate
    return max(int(min(reported, MAX_REPORTED_TOKENS)), estimate)


def choice_text(choice: dict[str, Any], endpoint: str) -> str:
    text = choice["text"] if endpoint == "completions" else choice["message"].get("content") or ""
    if not isinstance(text, str):  # a number, a list of parts, an object: nothing a task can parse
        raise TypeError(f"a choice's content is {type(text).__name__}, not text")
    return text


def render_prompt(request: TeacherRequest) -> str:
    """Messages as one prompt for the completions endpoint (base models without a chat template)."""
    parts = [f"{m.role.capitalize()}: {m.content}" for m in request.messages]
    return "\n\n".join([*parts, "Assistant:"])


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` in seconds or as an HTTP date."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class SpreadTeacher(Teacher):
    """One model served by several OpenAI-compatible servers (`base_url` as a list): calls go to them in
    turn, so each gets an equal share; every server is checked before a run."""

    backend = "openai"

    def __init__(self, servers: list[OpenAITeacher]):
        if not servers:
            raise ValueError("SpreadTeacher needs at least one server")
        self.servers = servers
        self.model, self.base_url = servers[0].model, servers[0].base_url
        self.secrets = servers[0].secrets
        self.calls = 0

    @property
    def supports_response_schema(self) -> bool:
        return self.servers[0].supports_response_schema

    async def check(self) -> None:
        for server in self.servers:
            await server.check()

    async def complete(self, request: TeacherRequest) -> TeacherResponse:
        server = self.servers[self.calls % len(self.servers)]
        self.calls += 1
        return await server.complete(request)

    async def aclose(self) -> None:
        for server in self.servers:
            await server.aclose()
