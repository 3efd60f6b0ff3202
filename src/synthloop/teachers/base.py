"""The one async teacher interface. A backend turns a `TeacherRequest` into a `TeacherResponse`;
concurrency, retries and bookkeeping live in the engine, so every backend gets them alike."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field

from synthloop.records import Message
from synthloop.skills.base import Problem


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024


@dataclass(frozen=True)
class TeacherRequest:
    messages: tuple[Message, ...]
    sampling: SamplingParams = SamplingParams()
    sample_index: int = 0  # the k-th sample of the same prompt: part of the identity, so k samples differ
    problem: Problem | None = field(default=None, compare=False)  # what the oracle reads; others ignore it

    def key(self, backend: str, model: str) -> str:
        """Content address of the call: backend, model, messages, sampling and sample index."""
        payload = {
            "backend": backend,
            "model": model,
            "messages": [asdict(m) for m in self.messages],
            "sampling": asdict(self.sampling),
            "sample_index": self.sample_index,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class TeacherResponse:
    text: str | None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 1


class TeacherError(RuntimeError):
    """A call that failed; `retryable` says whether trying again can help."""

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


class Teacher(ABC):
    backend: str
    model: str

    @abstractmethod
    async def complete(self, request: TeacherRequest) -> TeacherResponse:
        """Answer one request, or raise `TeacherError`."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections or models."""
