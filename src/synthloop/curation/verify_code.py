"""Generated Python code verified by running it against its tests in the sandbox. A row's `answer` is the
code; its `reference_answer` holds the tests (plain `assert` lines, or any script that ends cleanly on
success). The code and the tests run in two sandboxes joined by pipes (`code_harness.py`): the tests
call into the code, and the verdict comes from the testing process's own pipe, which the code cannot
reach. Each reads its input through an in-memory descriptor that no path leads to: the code can neither
read the tests (to hard-code their answers) nor change them. Runs go through a thread pool: the waiting
happens in child processes, not in Python."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from synthloop.curation.base import BatchStage
from synthloop.curation.code_harness import SHADOWED
from synthloop.curation.sandbox import (
    Box,
    Capture,
    Child,
    Isolation,
    SandboxLimits,
    SandboxResult,
    failure_reason,
    in_memory,
    launch,
    require_isolation,
    supervise,
)
from synthloop.records import Record

HARNESS = Path(__file__).with_name("code_harness.py")
PASS = b"PASS\n"


def run_tests(
    code: str, tests: str, limits: SandboxLimits | None = None, isolation: Isolation = "bwrap"
) -> SandboxResult:
    """Run `tests` against `code`, each in its own sandbox; ok only when the testing process ran every
    test line and said so on its result pipe. Returns a `SandboxResult` (stdout/stderr: the tests')."""
    require_isolation(isolation)
    limits = limits or SandboxLimits()
    start = time.perf_counter()
    harness = HARNESS.read_text(encoding="utf-8")
    with Box.create() as code_box, Box.create() as tests_box:
        to_code, to_tests, verdict = os.pipe(), os.pipe(), os.pipe()
        # each process reads the harness on stdin and its input through a descriptor: no path to them
        inputs = code_harness, code_in, tests_harness, tests_in = [
            in_memory(t) for t in (harness, code, harness, tests)
        ]
        plan = [
            ("serve", code_box, code_harness, (code_in, to_code[0], to_tests[1])),
            ("test", tests_box, tests_harness, (tests_in, to_tests[0], to_code[1], verdict[1])),
        ]
        children: list[Child] = []
        try:
            for role, box, stdin, fds in plan:
                children.append(launch(["-", role, *map(str, fds)], box, limits, isolation, stdin, pass_fds=fds))
        except BaseException:
            for child in children:
                child.kill()
                child.reap(block=True)
            os.close(verdict[0])
            raise
        finally:
            for fd in (*inputs, *to_code, *to_tests, verdict[1]):
                os.close(fd)
        server, tester = children
        said = Capture(verdict[0], len(PASS) + 1)
        timed_out = supervise(children, [said], limits, primary=tester)
    result = tester.result(limits, isolation, timed_out, time.perf_counter() - start)
    if result.ok and bytes(said.data) == PASS:
        return result
    stderr, reason = result.stderr, result.reason or "error"
    code_failed = not timed_out and server.status not in (0, None) and not server.killed_by_us
    if code_failed:  # the code's process ended first (a limit, an early exit): say why
        stderr = f"{stderr}\n{server.stderr.text(limits.output_chars)}".strip()
        reason = server.reason(limits, False)
    if tester.status == SHADOWED and not code_failed:
        reason = "shadows_builtin"
    if reason == "error":
        last = (stderr.strip().splitlines() or [""])[-1]
        reason = "failed" if last.startswith("AssertionError") else failure_reason(1, stderr, False)
    return SandboxResult(False, reason, result.exit_code, result.stdout, stderr, result.seconds, isolation)


class VerifyCode(BatchStage):
    name = "verify_code"
    batch_rows = 256  # test runs in flight at once are `workers`; a batch keeps them busy

    def __init__(self, limits: SandboxLimits | None = None, workers: int = 4, isolation: Isolation = "bwrap"):
        self.limits, self.workers, self.isolation = limits or SandboxLimits(), workers, isolation
        self.abstained = 0  # rows with code but no tests

    def judge_batch(self, rows: list[Record]) -> None:
        todo = [r for r in rows if r.answer and r.reference_answer]
        with ThreadPoolExecutor(self.workers) as pool:
            results = pool.map(self.check, todo)
            for record, result in zip(todo, results, strict=True):
                if result.ok:
                    record.add_verdict(self.name, True, None, 1.0, f"tests passed in {result.seconds:.2f}s")
                else:
                    last = (result.stderr.strip().splitlines() or [""])[-1][:300]
                    record.add_verdict(self.name, False, f"tests_{result.reason}", 0.0, last or result.reason)
        tested = {id(r) for r in todo}
        for record in rows:
            if id(record) not in tested:
                reason = "teacher_error" if record.error else "no_code" if not record.answer else None
                self.abstained += reason is None
                record.add_verdict(self.name, reason is None, reason, None, None if reason else "no tests: abstained")

    def check(self, record: Record) -> SandboxResult:
        return run_tests(record.answer or "", record.reference_answer or "", self.limits, self.isolation)
