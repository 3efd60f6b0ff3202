"""A hostile or broken OpenAI-compatible server, for the teacher-fault tests.

`mode` says how it misbehaves, from call `after + 1` on (the first `after` calls are answered well,
so a fault can arrive mid-run); a test may change `mode` while the server runs. Modes:

- `401`, `403`: the key refused; `404`: the model gone; `400`, `422`: a bad request, for prompts
  containing "poison" only (other prompts are answered)
- `echo400`, `echo401`, `echo500`, `echo200`: the request's headers echoed in the body (200: as plain text)
- `echo_cut`: the key echoed where a 300-character cut of the body would split it
- `echo_escaped`: the key JSON-escaped and URL-encoded, and a proxy's own bearer token
- `echo_tail`: the key where the client's cut of a long error body would split it
- `huge`: a 50 MB body; `bomb`: a gzip bomb (`gzip_bomb`), `bomb401`: the same as a 401's body;
  `corrupt_gzip`; `deflate`, `raw_deflate`;
  `encoding:<name>`: a body in an encoding we did not ask for
- `choices`: 10,000 choices for n=1; `usage:<json>`: that value as both token counts
- `body:<text>`: that text as a 200 body; `content:<json>`: that value as the choice's content
- `drip`: headers, then a byte every 0.1 s, forever
- `retry_after:<value>`: a 429 with that Retry-After once, then answers
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import zlib

from aiohttp import web

PROXY_TOKEN = "proxy-token-51c0ffee9d"  # a bearer token a proxy between us and the server added


def gzip_bomb(size: int) -> bytes:
    """`size` bytes of zeros, gzipped (about a thousandth of that), built a mebibyte at a time."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(size >> 20)]
    return b"".join([*parts, packer.flush()])


def deflate(data: bytes, raw: bool) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


class HostileServer:
    def __init__(self, mode: str = "ok", after: int = 0, bomb: bytes = b""):
        self.mode, self.after, self.bomb = mode, after, bomb
        self.calls = 0
        self.local_tokens = 0  # 4 characters a token, of every prompt received and reply sent well-formed
        self.retried: set[str] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "m"}]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.calls += 1
        prompt = body["messages"][-1]["content"]
        text = f"# Notes on {prompt[:40]}"
        ok = {
            "choices": [{"index": 0, "message": {"content": text}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 5},
        }
        mode = self.mode if self.calls > self.after else "ok"
        if mode == "ok" or mode.startswith("usage:"):
            if mode != "ok":
                value = json.loads(mode[6:])
                ok["usage"] = {"prompt_tokens": value, "completion_tokens": value}
            self.local_tokens += sum(len(m["content"]) for m in body["messages"]) // 4 + len(text) // 4
            return web.json_response(ok)
        return await self.misbehave(mode, request, ok, prompt)

    async def misbehave(self, mode: str, request: web.Request, ok: dict, prompt: str) -> web.StreamResponse:
        headers = dict(request.headers)
        key = headers.get("Authorization", "").removeprefix("Bearer ")
        if mode in ("401", "403"):
            return web.json_response({"error": "invalid api key"}, status=int(mode))
        if mode == "404":
            return web.json_response({"error": "The model `m` does not exist"}, status=404)
        if mode in ("400", "422"):
            if "poison" in prompt:
                return web.json_response({"error": "this request is malformed"}, status=int(mode))
            return web.json_response(ok)
        if mode in ("echo400", "echo401", "echo500"):
            return web.json_response({"error": "bad request", "headers": headers}, status=int(mode[-3:]))
        if mode == "echo_content":  # a "successful" reply whose text is our headers
            ok["choices"][0]["message"]["content"] = f"# Notes\n\nyour headers were {headers}"
            return web.json_response(ok)
        if mode == "echo200":
            return web.Response(text=f"Authorization: {headers.get('Authorization')} is not json")
        if mode == "echo_cut":  # the key starts 290 characters in, after spaces a cleaned-up message would fold
            return web.Response(text=" " * 200 + "x" * 90 + key + " was refused", status=400)
        if mode == "echo_escaped":
            escaped = json.dumps(key).strip('"').replace("/", "\\/")  # as PHP's json_encode writes it
            text = f"key={urllib.parse.quote(key, safe='')} json={escaped} upstream: Bearer {PROXY_TOKEN}"
            return web.Response(text=text, status=500)
        if mode == "huge":
            return await self.stream(
                request, [b'{"choices": [{"message": {"content": "', *[b"x" * 10**6] * 50, b'"}}]}']
            )
        if mode == "bomb401":  # a refusal wrapped in a gigabyte
            return web.Response(body=self.bomb, status=401, headers={"Content-Encoding": "gzip"})
        if mode == "echo_tail":  # the key straddles the 64 KiB we read of an error, after blanks that fold away
            return web.Response(text=" " * (64 * 1024 - 10) + key + " was refused", status=500)
        if mode == "bomb":
            return web.Response(
                body=self.bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
            )
        if mode == "corrupt_gzip":
            return web.Response(body=b"\x1f\x8b\x08\x00garbage" * 10, headers={"Content-Encoding": "gzip"})
        if mode.startswith("encoding:"):  # an encoding we never asked for
            return web.Response(body=b"\x00" * 64, headers={"Content-Encoding": mode[9:]})
        if mode in ("deflate", "raw_deflate"):
            packed = deflate(json.dumps(ok).encode(), raw=mode == "raw_deflate")
            return web.Response(
                body=packed, headers={"Content-Encoding": "deflate", "Content-Type": "application/json"}
            )
        if mode == "choices":
            ok["choices"] = [{"index": i, "message": {"content": "x"}} for i in range(10_000)]
            return web.json_response(ok)
        if mode.startswith("body:"):
            return web.Response(text=mode[5:], content_type="application/json")
        if mode.startswith("content:"):
            ok["choices"][0]["message"]["content"] = json.loads(mode[8:])
            return web.json_response(ok)
        if mode == "drip":
            return await self.stream(request, iter(lambda: b" ", None), pause=0.1)
        if mode.startswith("retry_after:"):
            if prompt in self.retried:
                return web.json_response(ok)
            self.retried.add(prompt)
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": mode[12:]})
        raise ValueError(f"unknown mode {mode!r}")

    async def stream(self, request: web.Request, parts, pause: float = 0.0) -> web.StreamResponse:
        """Write `parts` as the client reads them (a client that stops reading ends it)."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            for part in parts:
                await response.write(part)
                if pause:
                    await asyncio.sleep(pause)
        except ConnectionError:
            pass  # the client stopped reading, as it should
        return response
