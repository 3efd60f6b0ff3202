"""A fault-injecting HTTP proxy for an OpenAI-compatible server, to test the engine against real faults.

Each POST draws one outcome from a seeded random stream: pass through, or one of
- `rate_limit`: 429 with `Retry-After` (not forwarded),
- `server_error`: 500 (not forwarded),
- `stall`: hold the connection past the client's timeout, then close it (not forwarded),
- `drop`: close the connection without a reply (not forwarded),
- `truncated`: forward, then send half the body and close (the upstream did the work: a paid call lost),
- `malformed`: forward, then reply 200 with a body that is not JSON (also paid and lost).
A prompt containing `ALWAYS_FAIL` gets a 500 every time, so some requests exhaust their retries.
`injected` counts the faults by kind and `lost_after_upstream` the paid-but-lost calls per prompt."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections import Counter

import aiohttp
from aiohttp import web

FAULTS = ("rate_limit", "server_error", "stall", "drop", "truncated", "malformed")


class FaultProxy:
    def __init__(self, upstream: str, rates: dict[str, float], seed: int = 0, stall_s: float = 5.0):
        unknown = set(rates) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; choose from {', '.join(FAULTS)}")
        self.upstream, self.rates, self.stall_s = upstream.rstrip("/"), rates, stall_s
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.lost_after_upstream: Counter[str] = Counter()  # prompt key -> paid-but-lost calls
        self.session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, app: web.Application) -> None:
        if self.session:
            await self.session.close()

    def _draw(self) -> str | None:
        x = self.rng.random()
        for fault in FAULTS:
            x -= self.rates.get(fault, 0.0)
            if x < 0:
                return fault
        return None

    async def _forward(self, request: web.Request, raw: bytes) -> tuple[int, bytes, str]:
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        url = f"{self.upstream}{request.rel_url}"
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        async with self.session.request(request.method, url, data=raw or None, headers=headers) as resp:
            return resp.status, await resp.read(), resp.headers.get("Content-Type", "application/json")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if request.method != "POST":
            status, body, ctype = await self._forward(request, raw)
            return web.Response(status=status, body=body, content_type=ctype.split(";")[0])
        key = prompt_key(raw)
        fault = "server_error" if b"ALWAYS_FAIL" in raw else self._draw()
        if fault:
            self.injected[fault] += 1
        if fault == "rate_limit":
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "0.2"})
        if fault == "server_error":
            return web.json_response({"error": "internal"}, status=500)
        if fault in ("stall", "drop"):
            if fault == "stall":
                await asyncio.sleep(self.stall_s)
            if request.transport is not None:  # a stalled client may have hung up already
                request.transport.close()
            return web.Response(status=500)  # never reaches the client: the connection is gone
        status, body, ctype = await self._forward(request, raw)
        if fault == "truncated" and status == 200:
            self.lost_after_upstream[key] += 1
            response = web.StreamResponse(status=200, headers={"Content-Length": str(len(body))})
            response.content_type = "application/json"
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            if request.transport is not None:
                request.transport.close()
            return response
        if fault == "malformed" and status == 200:
            self.lost_after_upstream[key] += 1
            return web.Response(status=200, body=body[: len(body) // 3] + b"<html>", content_type="application/json")
        return web.Response(status=status, body=body, content_type=ctype.split(";")[0])


def prompt_key(raw: bytes) -> str:
    """The same key the simulated server counts completions by (its prompt hash)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return ""
    prompt = json.dumps(body.get("messages"), sort_keys=True) if "messages" in body else str(body.get("prompt"))
    return hashlib.sha256(prompt.encode()).hexdigest()[:24]
