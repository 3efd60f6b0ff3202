"""`code`: the student's Python runs against the item's `tests` in the operating-system sandbox, the same
way curation verifies generated code (`curation/verify_code.py`: the code and the tests in two sandboxes
joined by pipes, the verdict on a pipe the code cannot reach). 1 when every test passes, else 0 with the
failing line.

The code is the last ```python fenced block of the reply (else its last fenced block, else the whole
reply). The sandbox must work: building the scorer checks the isolation asked for
(`task.scorer.code.isolation`, bubblewrap by default) and stops with one line saying what to install
when it does not. Every row must have `tests`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from synthloop.config import ScorerConfig
from synthloop.curation.sandbox import Isolation, SandboxLimits, SandboxUnavailable, require_isolation
from synthloop.curation.verify_code import run_tests
from synthloop.scoring.context import ScoringContext
from synthloop.scoring.item import Score, TaskItem

FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
PYTHON = {"python", "python3", "py"}
MAX_CODE_CHARS = 200_000


def code_of(reply: str) -> str:
    """The code in a reply: its last ```python block, else its last fenced block, else all of it."""
    blocks = [(lang.casefold(), body) for lang, body in FENCE.findall(reply)]
    python = [body for lang, body in blocks if lang in PYTHON]
    if python:
        return python[-1]
    return blocks[-1][1] if blocks else reply


def failure(reason: str, stderr: str, tests: str) -> str:
    """`tests failed at line 2: assert add(2, 3) == 5 (AssertionError)`: the tests' own line, when known."""
    last = (stderr.strip().splitlines() or [""])[-1][:300]
    lines = re.findall(r'File "tests\.py", line (\d+)', stderr)
    test_lines = tests.splitlines()
    if lines and 0 < int(lines[-1]) <= len(test_lines):
        where = f"tests {reason} at line {lines[-1]}: {test_lines[int(lines[-1]) - 1].strip()[:200]}"
        return f"{where} ({last})" if last else where
    return f"tests {reason}: {last}" if last else f"tests {reason}"


class CodeScorer:
    name = "code"

    def __init__(self, limits: SandboxLimits | None = None, workers: int = 4, isolation: Isolation = "bwrap"):
        self.limits, self.workers, self.isolation = limits or SandboxLimits(), workers, isolation
        try:
            require_isolation(isolation)  # fail closed, before anything is scored or written
        except SandboxUnavailable as err:
            message = str(err).replace("curation.code.isolation", "task.scorer.code.isolation")
            raise SandboxUnavailable(message) from None

    @classmethod
    def from_config(cls, config: ScorerConfig, context: ScoringContext) -> CodeScorer:
        c = config.code
        return cls(SandboxLimits(wall_s=c.timeout_s, cpu_s=c.cpu_s, memory_mb=c.memory_mb), c.workers, c.isolation)

    def score(self, outputs: Sequence[str], items: Sequence[TaskItem]) -> list[Score]:
        pairs = list(zip(outputs, items, strict=True))
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(lambda pair: self.score_one(*pair), pairs))

    def score_one(self, output: str, item: TaskItem) -> Score:
        code = code_of(output)
        if not code.strip():
            return Score(0.0, None, "no code in the answer")
        if len(code) > MAX_CODE_CHARS:
            return Score(0.0, None, f"code over {MAX_CODE_CHARS} characters is not run")
        if not item.tests:
            return Score(0.0, code, "the item has no tests")
        result = run_tests(code, item.tests, self.limits, self.isolation)
        if result.ok:
            return Score(1.0, code, f"tests passed in {result.seconds:.2f}s")
        return Score(0.0, code, failure(result.reason or "error", result.stderr, item.tests))

    def check_reference(self, item: TaskItem) -> str | None:
        if not (item.tests or "").strip():
            return "the code scorer needs 'tests' (Python asserts or test functions run on the answer) on every row"
        return None
