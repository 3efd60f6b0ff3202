"""Real servers for tests and benchmarks: a latency-simulating OpenAI-compatible server and a
fault-injecting proxy, both aiohttp apps on loopback, and a helper that runs an app in a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_in_thread(app: web.Application, port: int | None = None) -> Iterator[str]:
    """Run `app` on 127.0.0.1 in its own thread and event loop; yields its base URL."""
    port = port or free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    started = threading.Event()

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    if not started.wait(30):
        raise RuntimeError("the test server did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


@contextmanager
def transformers_serve(model: str, timeout_s: float = 300.0) -> Iterator[str]:
    """A real `transformers serve` of `model` on loopback (CPU, offline); yields its base URL."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    cli = os.path.join(os.path.dirname(sys.executable), "transformers")
    server = subprocess.Popen(
        [cli, "serve", model, "--port", str(port), "--device", "cpu"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"transformers serve did not start within {timeout_s:.0f} s") from None
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(30)
