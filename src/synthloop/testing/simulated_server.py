"""A latency-simulating OpenAI-compatible server whose capacity is known exactly.

At most `max_concurrent` requests are served at once (the rest wait in line, as in a real engine
whose batch is full); each takes `seconds_per_token` per output token, so the capacity is exactly
`max_concurrent / (output_tokens * seconds_per_token)` calls/s. Replies are deterministic text
derived from the prompt, with `usage` filled in. Used by the generation benchmark and by tests.

    python -m synthloop.testing.simulated_server --port 8900 --max-concurrent 256 --seconds-per-token 0.01
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable

from aiohttp import web


def choice_body(text: str, chat: bool) -> dict:
    return {"message": {"role": "assistant", "content": text}} if chat else {"text": text}


def reply_text(prompt: str, tokens: int) -> str:
    """`tokens` words made from the prompt's hash: the same prompt always gets the same reply."""
    digest = hashlib.sha256(prompt.encode()).hexdigest()
    return " ".join(digest[i % 60 : i % 60 + 4] for i in range(tokens))


class SimulatedServer:
    def __init__(
        self,
        max_concurrent: int = 64,
        seconds_per_token: float = 0.01,
        output_tokens: int | None = None,
        model: str = "simulated",
        responder: Callable[[dict], str] | None = None,
    ):
        self.max_concurrent, self.seconds_per_token = max_concurrent, seconds_per_token
        self.output_tokens, self.model, self.responder = output_tokens, model, responder
        self.received: Counter[str] = Counter()  # prompt hash -> requests received
        self.slots = asyncio.Semaphore(max_concurrent) if max_concurrent else None
        self.completed: Counter[str] = Counter()  # prompt hash -> completed calls: what was "paid"
        self.in_flight = self.peak = 0
        self.first_received: float | None = None  # the busy window, for throughput seen at the server
        self.last_completed: float | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        app.router.add_get("/stats", self.stats)
        app.router.add_post("/reset", self.reset)
        return app

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "received": sum(self.received.values()),
                "completed": sum(self.completed.values()),
                "distinct_completed": len(self.completed),
                "peak_in_flight": self.peak,
                "window_s": (self.last_completed or 0) - (self.first_received or 0),
            }
        )

    async def reset(self, request: web.Request) -> web.Response:
        self.received.clear()
        self.completed.clear()
        self.peak, self.first_received, self.last_completed = 0, None, None
        return web.json_response({"status": "reset"})

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        prompt = json.dumps(body.get("messages"), sort_keys=True)
        return await self._answer(body, prompt, chat=True)

    async def completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        return await self._answer(body, str(body.get("prompt")), chat=False)

    async def _answer(self, body: dict, prompt: str, chat: bool) -> web.Response:
        if body.get("model") != self.model:
            return web.json_response({"error": {"message": f"model {body.get('model')!r} not found"}}, status=404)
        key = hashlib.sha256(prompt.encode()).hexdigest()[:24]
        self.received[key] += 1
        if self.first_received is None:
            self.first_received = time.monotonic()
        limit = int(body.get("max_tokens") or 16)
        tokens = min(self.output_tokens, limit) if self.output_tokens else limit
        finish = "length" if tokens >= limit else "stop"
        n = int(body.get("n") or 1)
        if self.slots:
            async with self.slots:
                await self._work(tokens)
        else:
            await self._work(tokens)
        self.completed[key] += 1
        self.last_completed = time.monotonic()
        if self.responder is not None:
            texts = [self.responder(body) for _ in range(n)]
        else:
            texts = [reply_text(f"{prompt}/{i}" if i else prompt, tokens) for i in range(n)]
        choices = [
            {
                "index": i,
                "finish_reason": finish,
                **choice_body(t, chat),
            }
            for i, t in enumerate(texts)
        ]
        usage = {
            "prompt_tokens": len(prompt) // 4,
            "completion_tokens": tokens * n,
            "total_tokens": len(prompt) // 4 + tokens * n,
        }
        return web.json_response(
            {"id": key, "object": "chat.completion", "model": self.model, "choices": choices, "usage": usage}
        )

    async def _work(self, tokens: int) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(tokens * self.seconds_per_token)
        finally:
            self.in_flight -= 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8900)
    p.add_argument("--max-concurrent", type=int, default=64)
    p.add_argument("--seconds-per-token", type=float, default=0.01)
    p.add_argument("--output-tokens", type=int, default=None)
    p.add_argument("--model", default="simulated")
    args = p.parse_args()
    server = SimulatedServer(args.max_concurrent, args.seconds_per_token, args.output_tokens, args.model)
    web.run_app(server.app(), host=args.host, port=args.port, print=None, access_log=None, backlog=4096)


if __name__ == "__main__":
    main()
