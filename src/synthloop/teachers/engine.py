"""The generation engine: many teacher requests, at the server's capacity, none lost, none paid twice.

- Identical requests (same content address) are called once; answers already in the response cache
  are not called at all, so a resumed or repeated run pays only for what is missing.
- A fixed pool of workers pulls requests one at a time: no batch barriers, a slow call holds only
  its own slot.
- Token buckets bound requests/min and tokens/min (tokens reserved from an estimate, then settled
  from the reported usage).
- Retries use exponential backoff with jitter on retryable errors (429, 5xx, timeouts, dropped
  connections, unreadable bodies). A `Retry-After` pauses every worker for that long.
- Every finished call is committed to the cache and ledger at once. A call that still fails after
  its retries comes back as a response with `error`: the caller keeps it as a failed record.
- A failure every call would share (`TeacherUnavailable`: a key refused, a model gone mid-run) stops
  the run at once: the calls in flight are cancelled and the error is raised out of `run`.
- Every error string stored or raised passes through the teacher's `redact` (the key never lands).
- Budget caps (total tokens, total cost, counted over the whole run) stop issuing new calls before
  a call could cross them; in-flight calls finish and are kept, the rest come back as `None`."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from synthloop.storage.response_cache import ResponseCache, Spent
from synthloop.teachers.base import Teacher, TeacherError, TeacherRequest, TeacherResponse, TeacherUnavailable
from synthloop.teachers.limits import RateLimits
from synthloop.teachers.progress import Progress


@dataclass(frozen=True)
class Prices:
    """USD per million tokens."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million) / 1e6


@dataclass(frozen=True)
class EngineSettings:
    concurrency: int = 64
    max_retries: int = 5
    timeout_s: float = 120.0  # per attempt
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    backoff_base_s: float = 0.5
    backoff_max_s: float = 60.0
    retry_after_max_s: float = 300.0  # a server asking for longer is obeyed up to this
    max_total_tokens: int | None = None  # over the whole run, all rounds and sessions
    max_cost_usd: float | None = None
    prices: Prices = Prices()


@dataclass
class EngineReport:
    requests: int = 0
    unique: int = 0
    cached: int = 0
    issued: int = 0  # calls sent this session (each counted once, however many attempts)
    answered: int = 0
    failed: int = 0
    not_issued: int = 0  # left unsent because a budget cap was reached
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    stopped: str | None = None  # why issuing stopped early (a budget cap), or None
    errors: dict[str, int] = field(default_factory=dict)  # first words of each failure, counted

    def as_dict(self) -> dict[str, object]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


class BudgetExhausted(RuntimeError):
    """A budget cap stopped the run; everything answered so far is kept (raise it after writing)."""


class Engine:
    def __init__(
        self,
        teacher: Teacher,
        settings: EngineSettings = EngineSettings(),
        cache: ResponseCache | None = None,
        run_id: str = "",
        progress: Progress | None = None,
    ):
        self.teacher, self.settings, self.cache, self.run_id = teacher, settings, cache, run_id
        self.progress = progress
        self.on_ray: Any = None  # a RayTeachers when the calls go through Ray actors (--engine ray)
        self.limits = RateLimits(settings.requests_per_minute, settings.tokens_per_minute)
        self.resume_at = 0.0  # monotonic time before which no call starts (a server's Retry-After)
        self.reserved_tokens = 0
        self.reserved_cost = 0.0

    def key(self, request: TeacherRequest) -> str:
        return request.key(self.teacher.backend, self.teacher.model)

    async def run(self, requests: Sequence[TeacherRequest]) -> tuple[list[TeacherResponse | None], EngineReport]:
        """One response per request, in request order (`None`: not sent because a budget cap was reached)."""
        start = time.perf_counter()
        report = EngineReport(requests=len(requests))
        keys = [self.key(r) for r in requests]
        unique = dict(zip(keys, requests, strict=True))  # identical requests are called once
        report.unique = len(unique)
        answers: dict[str, TeacherResponse] = self.cache.get_many(unique) if self.cache else {}
        report.cached = len(answers)
        pending = [(k, r) for k, r in unique.items() if k not in answers]
        self.spent = self.cache.spent(self.run_id) if self.cache else Spent(0, 0, 0, 0, 0.0)
        if self.progress:
            self.progress.begin(len(unique), len(answers))
        queue = iter(pending)
        workers = [
            asyncio.create_task(self._worker(queue, answers, report))
            for _ in range(min(self.settings.concurrency, len(pending)))
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            # A fatal error (a refused key) ends the run at once: the other calls in flight are cancelled
            # and awaited, so none is left running. What they answered before is in the cache already.
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            if self.progress:
                self.progress.finish()
        report.not_issued = len(unique) - len(answers)
        report.seconds = time.perf_counter() - start
        return [answers.get(k) for k in keys], report

    async def _worker(self, queue, answers: dict[str, TeacherResponse], report: EngineReport) -> None:
        for key, request in queue:
            if report.stopped:
                return
            response = await self._call(request, report)
            if response is None:  # a budget cap: leave this and the rest unsent
                return
            answers[key] = response
            cost = self.settings.prices.cost(response.prompt_tokens, response.completion_tokens)
            if self.cache:
                self.cache.record(self.run_id, key, response, cost, self.teacher.backend, self.teacher.model)
            self._account(response, cost, report)

    async def _call(self, request: TeacherRequest, report: EngineReport) -> TeacherResponse | None:
        estimate = worst_tokens(request)
        s = self.settings
        for attempt in range(1, s.max_retries + 2):
            await self._wait_for_retry_after()
            if not self._reserve(estimate, report):
                if attempt == 1:
                    return None  # never sent: left for a resumed run
                return TeacherResponse(
                    None, f"budget cap reached while retrying: {report.stopped}", attempts=attempt - 1
                )
            await self.limits.acquire(estimate)
            report.attempts += 1
            if attempt == 1:
                report.issued += 1
            error: BaseException
            try:
                async with asyncio.timeout(s.timeout_s):
                    response = await self.teacher.complete(request)
                self.limits.settle(estimate, response.prompt_tokens + response.completion_tokens)
                return TeacherResponse(
                    response.texts, None, response.prompt_tokens, response.completion_tokens, attempt
                )
            except TeacherUnavailable as err:  # a refused key, an unknown model: every other call would fail too
                raise TeacherUnavailable(self.teacher.redact(str(err))) from None
            except TeacherError as err:
                error = err
                retryable, retry_after = err.retryable, err.retry_after
            except TimeoutError:
                error = TeacherError(f"no reply within {s.timeout_s:g}s")
                retryable, retry_after = True, None
            except Exception as err:  # a backend bug or a transport error must not lose the request
                error, retryable, retry_after = err, True, None
            finally:
                self._release(estimate)
            if not retryable or attempt > s.max_retries:
                return TeacherResponse(None, self.teacher.redact(f"{type(error).__name__}: {error}"), attempts=attempt)
            if retry_after is not None:
                self.resume_at = max(self.resume_at, time.monotonic() + min(retry_after, s.retry_after_max_s))
            else:
                delay = min(s.backoff_max_s, s.backoff_base_s * 2 ** (attempt - 1))
                await asyncio.sleep(delay * (0.5 + random.random()))
        raise AssertionError("unreachable")

    async def _wait_for_retry_after(self) -> None:
        while (wait := self.resume_at - time.monotonic()) > 0:
            await asyncio.sleep(wait + random.random() * 0.05)

    def _reserve(self, estimate: int, report: EngineReport) -> bool:
        """Hold `estimate` tokens against the budget caps; False (and stop) if the call could cross one."""
        tokens = self.spent.tokens + report.prompt_tokens + report.completion_tokens + self.reserved_tokens
        cost = self.spent.cost_usd + report.cost_usd + self.reserved_cost
        reached = cap_reached(self.settings, tokens, cost, estimate)
        if reached:
            report.stopped = reached
            return False
        self.reserved_tokens += estimate
        self.reserved_cost += worst_cost(self.settings.prices, estimate)
        return True

    def _release(self, estimate: int) -> None:
        self.reserved_tokens -= estimate
        self.reserved_cost -= worst_cost(self.settings.prices, estimate)

    def _account(self, response: TeacherResponse, cost: float, report: EngineReport) -> None:
        ok = response.texts is not None
        report.answered += ok
        report.failed += not ok
        report.prompt_tokens += response.prompt_tokens
        report.completion_tokens += response.completion_tokens
        report.cost_usd += cost
        if not ok:
            kind = error_kind(response.error or "")
            report.errors[kind] = report.errors.get(kind, 0) + 1
        if self.progress:
            self.progress.advance(ok, response.completion_tokens)


def worst_tokens(request: TeacherRequest) -> int:
    """A call's tokens at most, its prompt estimated (4 characters a token): the prompt and every sample's
    `max_tokens`."""
    return request.estimated_prompt_tokens() + request.sampling.max_tokens * request.sampling.n


def worst_cost(prices: Prices, estimate: int) -> float:
    """An upper bound on a call's cost: all `estimate` tokens priced as prompt and again as completion."""
    return prices.cost(0, estimate) + prices.cost(estimate, 0)


def cap_reached(settings: EngineSettings, tokens: int, cost: float, estimate: int) -> str | None:
    """Why a call of `estimate` tokens would cross a budget cap after `tokens` and `cost` spent or held
    (in flight), or None."""
    if settings.max_total_tokens is not None and tokens + estimate > settings.max_total_tokens:
        return f"max_total_tokens {settings.max_total_tokens} reached ({tokens} spent or in flight)"
    if settings.max_cost_usd is not None and cost + worst_cost(settings.prices, estimate) > settings.max_cost_usd:
        return f"max_cost_usd {settings.max_cost_usd} reached (${cost:.4f} spent or in flight)"
    return None


def error_kind(error: str) -> str:
    """A short label for counting failures: the HTTP status if there is one, else the first words."""
    if match := re.search(r"HTTP \d{3}", error):
        return match.group()
    message = error.split(": ", 1)[-1]
    return " ".join(message.split()[:3])


async def run_requests(
    teacher: Teacher,
    requests: Sequence[TeacherRequest],
    concurrency: int,
    max_retries: int,
    base_delay: float = 0.5,
) -> list[TeacherResponse]:
    """One response per request, in request order, with no cache and no caps (tests and small jobs)."""
    settings = EngineSettings(concurrency=concurrency, max_retries=max_retries, backoff_base_s=base_delay)
    responses, _ = await Engine(teacher, settings).run(requests)
    return [r for r in responses if r is not None]
