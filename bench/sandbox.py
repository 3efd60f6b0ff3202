"""Sandbox overhead per run (median ms of a trivial program) for every isolation layer this machine
has, and code-verification throughput (rows/s; code and tests each in their own sandbox) on all cores.
Prints one JSON line."""

from __future__ import annotations

import json
import os
import statistics
import time

from synthloop.curation.sandbox import SandboxLimits, available_isolation, run_python
from synthloop.curation.verify_code import VerifyCode
from synthloop.records import Record

RUNS = 40
ROWS = 80
CODE = "def add(a, b):\n    return a + b\n"
TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"


def median_ms(isolation: str) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        result = run_python("print(1)", isolation=isolation)
        times.append((time.perf_counter() - start) * 1000)
        assert result.ok, result
    return round(statistics.median(times), 1)


def rows_per_second(isolation: str) -> float:
    rows = [
        Record(kind="solution", skill="code", question=f"add {i}", answer=CODE, reference_answer=TESTS,
               source="synthetic", round=1)
        for i in range(ROWS)
    ]  # fmt: skip
    stage = VerifyCode(SandboxLimits(), workers=os.cpu_count() or 2, isolation=isolation)
    start = time.perf_counter()
    out = list(stage.run(rows))
    seconds = time.perf_counter() - start
    assert all(r.kept for r in out), [r.verdicts[-1] for r in out if not r.kept][:1]
    return round(ROWS / seconds, 1)


def main() -> None:
    figures: dict[str, object] = {"cores": os.cpu_count(), "runs": RUNS, "rows": ROWS}
    for isolation in available_isolation():
        figures[f"{isolation}_run_median_ms"] = median_ms(isolation)
        figures[f"{isolation}_verify_rows_per_s"] = rows_per_second(isolation)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
