"""`openai`: any OpenAI-compatible HTTP server (vLLM, SGLang, llama.cpp server, Ollama, `transformers
serve`, hosted APIs), on the chat or the completions endpoint.

The recipe names the environment variable that holds the key, never the key. Errors are sorted for
the engine: 429, 408, 409, 5xx, timeouts, dropped connections and unreadable bodies are retryable
(honouring `Retry-After`); other 4xx are not. `check()` fails early, before anything is written,
when the server is unreachable, the model is not served or the key is refused."""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import time
from typing import Any

import aiohttp

from synthloop.teachers.base import Teacher, TeacherError, TeacherRequest, TeacherResponse, TeacherUnavailable

RETRYABLE_STATUS = {408, 409, 425, 429}


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
    ):
        if endpoint not in ("chat", "completions"):
            raise ValueError(f"endpoint must be 'chat' or 'completions', got {endpoint!r}")
        self.model, self.base_url, self.endpoint = model, base_url.rstrip("/"), endpoint
        self.structured_output, self.concurrency = structured_output, concurrency
        self.extra_body = dict(extra_body or {})
        self.headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise TeacherUnavailable(
                    f"environment variable {api_key_env} is not set; export the API key in it "
                    "(the recipe names the variable, never the key itself)"
                )
            self.headers["Authorization"] = f"Bearer {key}"
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
                connector=connector, headers=self.headers, timeout=aiohttp.ClientTimeout(total=None)
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
                status, raw = resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError) as err:
            raise TeacherUnavailable(
                f"cannot reach the teacher at {self.base_url} ({type(err).__name__}: {err}); is the server running "
                "and is teacher.base_url right?"
            ) from None
        if status in (401, 403):
            raise TeacherUnavailable(f"the teacher at {self.base_url} refused the API key (HTTP {status})")
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
                status, raw = resp.status, await resp.read()
                retry_after = parse_retry_after(resp.headers)
        except aiohttp.ClientError as err:  # refused, reset, dropped mid-body, ...
            raise TeacherError(f"connection to {self.base_url} failed ({type(err).__name__}: {err})") from None
        if status != 200:
            detail = raw[:300].decode("utf-8", "replace").strip()
            retryable = status in RETRYABLE_STATUS or status >= 500
            if status == 404 and not retryable:
                detail = f"{detail} (is model {self.model!r} served at {self.url}?)"
            raise TeacherError(f"HTTP {status} from {self.url}: {detail}", retryable, retry_after)
        try:
            payload = json.loads(raw)
            choices = sorted(payload["choices"], key=lambda c: c.get("index", 0))
            texts = tuple(choice_text(c, self.endpoint) for c in choices)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            snippet = raw[:120].decode("utf-8", "replace")
            raise TeacherError(f"unreadable response body ({type(err).__name__}: {err}): {snippet!r}") from None
        if not texts:
            raise TeacherError("the response has no choices")
        usage = payload.get("usage") or {}
        prompt_tokens = usage.get("prompt_tokens") or request.estimated_prompt_tokens()
        completion_tokens = usage.get("completion_tokens") or sum(len(t) // 4 for t in texts)
        return TeacherResponse(texts, None, int(prompt_tokens), int(completion_tokens))


def choice_text(choice: dict[str, Any], endpoint: str) -> str:
    if endpoint == "completions":
        return choice["text"]
    return choice["message"].get("content") or ""


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
