"""Progress of a batch of teacher calls: a one-line bar on a terminal, plain log lines otherwise.

Shows calls done/total, calls/s, output tokens/s, errors and the ETA."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    def __init__(
        self,
        label: str = "teacher",
        stream: TextIO | None = None,
        log: Callable[[str], None] | None = None,
        interval_s: float | None = None,
    ):
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if hasattr(self.stream, "isatty") else False
        self.log = log or (lambda line: print(line, file=self.stream, flush=True))
        self.interval_s = interval_s if interval_s is not None else (0.2 if self.tty else 10.0)
        self.total = self.done = self.errors = self.cached = self.tokens = 0
        self.start = self.last = time.monotonic()

    def begin(self, total: int, cached: int) -> None:
        self.total, self.cached, self.done = total, cached, cached
        self.errors = self.tokens = 0
        self.start = self.last = time.monotonic()
        self._show(force=True)

    def advance(self, ok: bool, completion_tokens: int) -> None:
        self.done += 1
        self.errors += not ok
        self.tokens += completion_tokens
        self._show()

    def finish(self) -> None:
        self._show(force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        made = self.done - self.cached
        rate = made / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta_text = f"{eta:.0f}s" if eta == eta else "?"
        share = self.done / self.total if self.total else 1.0
        return (
            f"{self.label}: {self.done}/{self.total} calls ({share:.0%}, {self.cached} cached) "
            f"{rate:.1f} calls/s {self.tokens / elapsed:.0f} tok/s errors {self.errors} ETA {eta_text}"
        )

    def _show(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.interval_s:
            return
        self.last = now
        if self.tty:
            width = 24
            filled = int(width * (self.done / self.total if self.total else 1))
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.line()}\x1b[K")
            self.stream.flush()
        else:
            self.log(self.line())
