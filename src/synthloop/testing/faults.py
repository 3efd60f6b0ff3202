"""Curation stages that fail on purpose, for tests of what survives a failure."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path

from synthloop.records import Record


class KillWorkerOnce:
    """Keeps every row, but the first process to reach the row with question `at` is killed with
    SIGKILL on the spot (after leaving `marker`, so the retried work goes through): a Ray worker dying
    in the middle of a shard."""

    name = "kill_worker_once"

    def __init__(self, at: str, marker: Path):
        self.at, self.marker = at, marker

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            if record.question == self.at and not self.marker.exists():
                self.marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            yield record
