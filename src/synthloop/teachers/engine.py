"""Run many teacher requests with bounded concurrency and retries, keeping every outcome.

No batch barriers: each request holds a slot only for itself, so a slow call never delays others.
A request that still fails after its retries comes back as a response with `error` set: the
caller keeps it as a failed record, so nothing is ever dropped."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

from synthloop.teachers.base import Teacher, TeacherError, TeacherRequest, TeacherResponse


async def _one(
    teacher: Teacher, request: TeacherRequest, slots: asyncio.Semaphore, max_retries: int, base_delay: float
) -> TeacherResponse:
    async with slots:
        for attempt in range(1, max_retries + 2):
            try:
                response = await teacher.complete(request)
                return TeacherResponse(
                    response.text, response.error, response.prompt_tokens, response.completion_tokens, attempt
                )
            except TeacherError as err:
                if not err.retryable or attempt > max_retries:
                    return TeacherResponse(None, f"{type(err).__name__}: {err}", attempts=attempt)
            except Exception as err:  # a backend bug must not lose the request either
                if attempt > max_retries:
                    return TeacherResponse(None, f"{type(err).__name__}: {err}", attempts=attempt)
            await asyncio.sleep(base_delay * 2 ** (attempt - 1) * (0.5 + random.random()))
    raise AssertionError("unreachable")


async def run_requests(
    teacher: Teacher, requests: Sequence[TeacherRequest], concurrency: int, max_retries: int, base_delay: float = 0.5
) -> list[TeacherResponse]:
    """One response per request, in request order."""
    slots = asyncio.Semaphore(concurrency)
    return list(await asyncio.gather(*(_one(teacher, r, slots, max_retries, base_delay) for r in requests)))
