"""The one async teacher interface. A backend turns a `TeacherRequest` into a `TeacherResponse`;
concurrency, rate limits, retries, the response cache and accounting live in the engine, so every
backend gets them alike."""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

from synthloop.records import Message
from synthloop.skills.base import Problem


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    n: int = 1  # samples of the same prompt returned by one call


@dataclass(frozen=True)
class TeacherRequest:
    messages: tuple[Message, ...]
    sampling: SamplingParams = SamplingParams()
    sample_index: int = 0  # the k-th call with the same prompt: part of the identity, so k calls differ
    response_schema: dict[str, Any] | None = field(default=None, hash=False)  # JSON schema the reply must match
    problem: Problem | None = field(default=None, compare=False)  # what the oracle reads; others ignore it

    def key(self, backend: str, model: str) -> str:
        """Content address of the call: backend, model, messages, sampling, sample index and schema."""
        payload = {
            "backend": backend,
            "model": model,
            "messages": [asdict(m) for m in self.messages],
            "sampling": asdict(self.sampling),
            "sample_index": self.sample_index,
        }
        if self.response_schema is not None:
            payload["response_schema"] = self.response_schema
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]

    def estimated_prompt_tokens(self) -> int:
        """A tokenizer-free estimate (about 4 characters per token) for rate limits and --dry-run."""
        return sum(len(m.content) for m in self.messages) // 4 + 4 * len(self.messages) + 1


@dataclass(frozen=True)
class TeacherResponse:
    texts: tuple[str, ...] | None  # one text per sample (`n`); None when the call failed
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 1
    cached: bool = False  # answered from the response cache: no call was made this time

    @property
    def text(self) -> str | None:
        return self.texts[0] if self.texts else None

    @classmethod
    def of(cls, text: str, prompt_tokens: int = 0, completion_tokens: int = 0) -> TeacherResponse:
        return cls((text,), None, prompt_tokens, completion_tokens)


class TeacherError(RuntimeError):
    """A call that failed. `retryable` says whether trying again can help; `retry_after` is the wait
    in seconds the server asked for (a 429 or 503 with a Retry-After header)."""

    def __init__(self, message: str, retryable: bool = True, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class TeacherUnavailable(RuntimeError):
    """The teacher cannot be used at all (unreachable server, unknown model, refused key): a user error.
    Raised by `check()` before anything is written, or mid-run by a call whose failure every other call
    would share (a key revoked, a model unloaded); the engine then stops the run at once."""


BEARER = re.compile(r"(bearer\s+)[^\s\"',;]+", re.IGNORECASE)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with each secret's value and any `Bearer` token replaced: error bodies echo request headers,
    and a proxy in between may have added a token of its own. Redact before cutting a text short, or
    half a key survives the cut."""
    for secret in (s for s in secrets if len(s) >= 4):  # a 1-letter placeholder key ("x") is no secret
        # as sent, as JSON strings echo it ('/' escaped or not), and URL-encoded (keys may hold '/', '+', '=')
        as_json = json.dumps(secret)[1:-1]
        forms = {secret, as_json, as_json.replace("/", "\\/"), urllib.parse.quote(secret, safe="")}
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, "[redacted]")
    return BEARER.sub(r"\1[redacted]", text)


class Teacher(ABC):
    backend: str
    model: str
    secrets: tuple[str, ...] = ()  # values that must never be stored or printed (an API key)

    def redact(self, text: str) -> str:
        """`text` with every secret's value (and any bearer token) replaced; see `redact`."""
        return redact(text, self.secrets)

    @abstractmethod
    async def complete(self, request: TeacherRequest) -> TeacherResponse:
        """Answer one request, or raise `TeacherError`."""

    async def check(self) -> None:  # noqa: B027 - optional hook
        """Raise `TeacherUnavailable` if the teacher cannot answer at all (called once before a run)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections or models."""

    @property
    def supports_response_schema(self) -> bool:
        """Whether the backend makes the server enforce a JSON schema (otherwise tasks parse and repair)."""
        return False
