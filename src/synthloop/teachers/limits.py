"""Token buckets for requests per minute and tokens per minute.

A bucket holds at most one minute's allowance and refills continuously. `acquire` waits until the
amount is available; `refund` gives back what a call reserved but did not use (tokens are reserved
from an estimate before the call and settled from the usage the server reports)."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    def __init__(self, per_minute: float, clock=time.monotonic):
        if per_minute <= 0:
            raise ValueError(f"a rate limit must be positive, got {per_minute}")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.clock = clock
        self.stamp = clock()
        self.lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def acquire(self, amount: float) -> None:
        amount = min(amount, self.capacity)  # a single call larger than a minute's allowance still goes, alone
        async with self.lock:  # first come, first served: a big request is not starved by small ones
            while True:
                self._refill()
                if self.level >= amount:
                    self.level -= amount
                    return
                await asyncio.sleep((amount - self.level) / self.rate)

    def refund(self, amount: float) -> None:
        """Settle a reservation: positive gives tokens back, negative takes more (never below -capacity)."""
        self._refill()
        self.level = max(-self.capacity, min(self.capacity, self.level + amount))


class RateLimits:
    """Requests/min and tokens/min together; either may be None (no limit)."""

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None):
        self.requests = TokenBucket(requests_per_minute) if requests_per_minute else None
        self.tokens = TokenBucket(tokens_per_minute) if tokens_per_minute else None

    async def acquire(self, estimated_tokens: int) -> None:
        if self.requests:
            await self.requests.acquire(1)
        if self.tokens:
            await self.tokens.acquire(estimated_tokens)

    def settle(self, estimated_tokens: int, used_tokens: int) -> None:
        if self.tokens:
            self.tokens.refund(estimated_tokens - used_tokens)
