"""The content-addressed teacher response cache, and the ledger of calls made.

One SQLite file (`RUN/cache/responses.sqlite` unless the user shares one across runs). A response is
committed the moment it arrives, so a run killed with SIGKILL keeps every answer it received and a
resumed or identical run asks the teacher only for what is missing. WAL mode with `synchronous=NORMAL`
survives a killed process (not a power cut) at a few tens of microseconds per commit.

`responses` holds successful answers by key. `calls` is the ledger: one row per request the engine
finished (answered or failed after its retries) with its tokens and cost, tagged with the run, which
is what budget caps and cost reports add up. Failed calls are not cached: a resumed run tries them again."""

from __future__ import annotations

import errno
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from synthloop.teachers.base import TeacherResponse

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY, texts TEXT NOT NULL, prompt_tokens INTEGER, completion_tokens INTEGER,
    attempts INTEGER, backend TEXT, model TEXT, created REAL);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run TEXT, key TEXT, ok INTEGER, prompt_tokens INTEGER,
    completion_tokens INTEGER, cost_usd REAL, attempts INTEGER, error TEXT, created REAL);
CREATE INDEX IF NOT EXISTS calls_by_run ON calls (run);
"""


@dataclass(frozen=True)
class Spent:
    calls: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ResponseCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with self.guard():
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self.db.execute("SELECT count(*) FROM responses LIMIT 1").fetchone()

    @contextmanager
    def guard(self) -> Iterator[None]:
        """SQLite's errors as one line naming the file: a damaged file (found when it is opened, or only
        when a damaged page is read) is a user error; a full or failing disk an `OSError` with the path."""
        try:
            yield
        except sqlite3.DatabaseError as err:
            message = str(err)
            if "full" in message:
                raise OSError(errno.ENOSPC, f"SQLite: {message}", str(self.path)) from None
            if "disk I/O error" in message:
                raise OSError(errno.EIO, f"SQLite: {message}", str(self.path)) from None
            from synthloop.storage.rundir import RunDirError

            raise RunDirError(
                f"{self.path} is not a usable response cache ({message}); move it aside and rerun with --resume "
                "(the answers in it will be paid for again)"
            ) from None

    def get_many(self, keys: Iterable[str]) -> dict[str, TeacherResponse]:
        with self.guard():
            return self._get_many(keys)

    def _get_many(self, keys: Iterable[str]) -> dict[str, TeacherResponse]:
        found: dict[str, TeacherResponse] = {}
        keys = list(dict.fromkeys(keys))
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self.db.execute(
                "SELECT key, texts, prompt_tokens, completion_tokens, attempts FROM responses "
                f"WHERE key IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for key, texts, prompt, completion, attempts in rows:
                found[key] = TeacherResponse(tuple(json.loads(texts)), None, prompt, completion, attempts, cached=True)
        return found

    def known(self, keys: Iterable[str]) -> set[str]:
        """Which of `keys` have an answer, without reading the answers."""
        with self.guard():
            keys, found = list(dict.fromkeys(keys)), set()
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                query = f"SELECT key FROM responses WHERE key IN ({','.join('?' * len(chunk))})"
                found.update(key for (key,) in self.db.execute(query, chunk))
            return found

    def record(self, run: str, key: str, response: TeacherResponse, cost_usd: float, backend: str, model: str) -> None:
        """Keep a finished call: the answer (if any) in `responses`, and a row in the ledger, in one commit."""
        now = time.time()
        with self.guard(), self.db:  # one transaction
            self.db.execute("BEGIN")
            if response.texts is not None:
                self.db.execute(
                    "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        json.dumps(list(response.texts)),
                        response.prompt_tokens,
                        response.completion_tokens,
                        response.attempts,
                        backend,
                        model,
                        now,
                    ),
                )
            self.db.execute(
                "INSERT INTO calls (run, key, ok, prompt_tokens, completion_tokens, cost_usd, attempts, error, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run,
                    key,
                    int(response.texts is not None),
                    response.prompt_tokens,
                    response.completion_tokens,
                    cost_usd,
                    response.attempts,
                    response.error,
                    now,
                ),
            )

    def spent(self, run: str) -> Spent:
        with self.guard():
            row = self.db.execute(
                "SELECT COUNT(*), COALESCE(SUM(1 - ok), 0), COALESCE(SUM(prompt_tokens), 0), "
                "COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cost_usd), 0.0) FROM calls WHERE run = ?",
                (run,),
            ).fetchone()
        return Spent(*row)

    def calls_for(self, run: str) -> list[tuple[str, bool]]:
        """(key, ok) of every call the run made, in order: what tests count to prove nothing was paid twice."""
        with self.guard():
            rows = self.db.execute("SELECT key, ok FROM calls WHERE run = ? ORDER BY id", (run,)).fetchall()
        return [(k, bool(ok)) for k, ok in rows]

    def close(self) -> None:
        self.db.close()
