"""`--dry-run`: what a batch of requests would cost, before anything is sent.

Prompt tokens are estimated without a tokenizer (about 4 characters a token); completion tokens are
bounded by `max_tokens`, so the cost shown is an upper bound. Requests already in the response cache
and identical prompts are not counted: they would not be sent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from synthloop.storage.response_cache import ResponseCache
from synthloop.teachers.base import TeacherRequest
from synthloop.teachers.engine import Prices


@dataclass(frozen=True)
class Estimate:
    requests: int
    unique: int
    cached: int
    calls: int
    prompt_tokens: int
    max_completion_tokens: int
    max_cost_usd: float

    def scaled(self, factor: int) -> Estimate:
        return Estimate(*(round(v * factor, 6) if isinstance(v, float) else v * factor for v in self.__dict__.values()))

    def lines(self) -> list[str]:
        return [
            f"{self.requests} requests, {self.unique} distinct prompts, {self.cached} already cached: "
            f"{self.calls} calls to send",
            f"about {self.prompt_tokens:,} prompt tokens, at most {self.max_completion_tokens:,} completion tokens, "
            f"cost at most ${self.max_cost_usd:,.4f}",
        ]


def estimate(
    requests: Sequence[TeacherRequest], backend: str, model: str, prices: Prices, cache: ResponseCache | None
) -> Estimate:
    unique = {r.key(backend, model): r for r in requests}
    cached = cache.get_many(unique) if cache else {}
    to_send = [r for k, r in unique.items() if k not in cached]
    prompt = sum(r.estimated_prompt_tokens() for r in to_send)
    completion = sum(r.sampling.max_tokens * r.sampling.n for r in to_send)
    return Estimate(
        len(requests), len(unique), len(cached), len(to_send), prompt, completion, prices.cost(prompt, completion)
    )
