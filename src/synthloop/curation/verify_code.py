"""Generated Python code verified by running it against its tests in the sandbox. A row's `answer` is
the code; its `reference_answer` holds the tests (plain `assert` lines, or any script that exits 0 on
success). Runs go through a thread pool: the waiting happens in child processes, not in Python."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from synthloop.curation.sandbox import Isolation, SandboxLimits, SandboxResult, run_python
from synthloop.records import Record


def program(code: str, tests: str) -> str:
    return f"{code}\n\n# --- tests ---\n{tests}\n"


class VerifyCode:
    name = "verify_code"

    def __init__(self, limits: SandboxLimits | None = None, workers: int = 4, isolation: Isolation = "auto"):
        self.limits, self.workers, self.isolation = limits or SandboxLimits(), workers, isolation

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        rows = list(records)
        todo = [r for r in rows if r.kept and r.answer and r.reference_answer]
        with ThreadPoolExecutor(self.workers) as pool:
            results = pool.map(self.check, todo)
            for record, result in zip(todo, results, strict=True):
                if result.ok:
                    record.add_verdict(self.name, True, None, 1.0, f"tests passed in {result.seconds:.2f}s")
                else:
                    last = (result.stderr.strip().splitlines() or [""])[-1][:300]
                    record.add_verdict(self.name, False, f"tests_{result.reason}", 0.0, last or result.reason)
        run = {id(r) for r in todo}
        for record in rows:
            if record.kept and id(record) not in run:
                reason = "teacher_error" if record.error else "no_code" if not record.answer else None
                record.add_verdict(self.name, reason is None, reason, None, None if reason else "no tests: abstained")
        yield from rows

    def check(self, record: Record) -> SandboxResult:
        return run_python(program(record.answer or "", record.reference_answer or ""), "", self.limits, self.isolation)
