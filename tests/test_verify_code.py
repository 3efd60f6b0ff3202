"""A code-verification pass must come from a channel the code under test cannot forge. Each attack
below made wrong code "pass" when the tests ran in the code's own process; now each is a failure.
The separate-process design holds at every layer; only the namespace layers keep the code from
reaching the testing process through /proc, so that attack runs there."""

import os

import pytest

from synthloop.curation.sandbox import SandboxLimits, available_isolation
from synthloop.curation.verify_code import VerifyCode, run_tests
from synthloop.records import Record

LEVELS = available_isolation()
ROOT = os.geteuid() == 0
LIMITS = SandboxLimits(wall_s=5.0, cpu_s=2, memory_mb=256)
TESTS = "assert add(1, 2) == 3\nassert add(2, 2) == 4\n"

FORGERIES = {
    "os._exit(0) on import": "import os\nos._exit(0)\n",
    "SystemExit(0) on import": "raise SystemExit(0)\n",
    "exit(0) inside the call": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "atexit ends cleanly": "import atexit, os\natexit.register(lambda: os._exit(0))\ndef add(a, b):\n    return 0\n",
    "prints what a pass looks like": "print('PASS')\nprint('tests passed')\ndef add(a, b):\n    return 0\n",
    "an object equal to everything": (
        "class Anything:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
        "def add(a, b):\n    return Anything()\n"
    ),
    "an int subclass equal to everything": (
        "class E(int):\n    def __eq__(s, o):\n        return True\ndef add(a, b):\n    return E(0)\n"
    ),
    "tracing skips the test lines": "import sys\nsys.settrace(lambda *a: None)\ndef add(a, b):\n    return 0\n",
    "patches assert's exception": (
        "import builtins\nbuiltins.AssertionError = type('X', (Exception,), {})\ndef add(a, b):\n    return 0\n"
    ),
    "writes PASS into every descriptor": (
        "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'PASS\\n')\n"
        "    except OSError:\n        pass\n"
        "def add(a, b):\n    return 0\n"
    ),
    "raises SystemExit(0) inside the call": "def add(a, b):\n    raise SystemExit(0)\n",
    "StopIteration ends the tests' own loop": "def add(a, b):\n    raise StopIteration\n",
}
MAP_TESTS = "cases = [((1, 2), 3), ((2, 2), 4)]\nassert all(map(lambda case: add(*case[0]) == case[1], cases))\n"


@pytest.fixture(params=LEVELS)
def level(request):
    return request.param


@pytest.mark.parametrize("attack", FORGERIES)
def test_forged_passes_are_failures(attack, level):
    for tests in (TESTS, MAP_TESTS):
        result = run_tests(FORGERIES[attack], tests, LIMITS, level)
        assert not result.ok, (attack, result)


PARSE_TESTS = "assert parse('a') == 1\ntry:\n    parse('')\n    raise AssertionError('none')\nexcept {}:\n    pass\n"
BROKEN_REPLIES = {
    "a line that is not JSON reads as a ValueError": ("b'{not json\\n'", "ValueError"),
    "JSON nested too deep reads as a RecursionError": ("b'[' * 100_000 + b'\\n'", "Exception"),
}


@pytest.mark.parametrize("attack", BROKEN_REPLIES)
def test_a_broken_reply_is_never_the_exception_a_test_waits_for(attack, level):
    """Wrong code that writes its own bad line onto the reply pipe (its number is in argv) used to make
    the tests' `except ValueError` catch the JSON error and pass."""
    line, caught = BROKEN_REPLIES[attack]
    reply_fd = "int(sys.argv[-1])"  # the serving process's reply pipe
    code = f"import os, sys\ndef parse(text):\n    if not text:\n        os.write({reply_fd}, {line})\n    return 1\n"
    assert not run_tests(code, PARSE_TESTS.format(caught), LIMITS, level).ok
    right = "def parse(text):\n    if not text:\n        raise ValueError('empty')\n    return 1\n"
    assert run_tests(right, PARSE_TESTS.format(caught), LIMITS, level).ok


SHADOWING = {
    "abs": ("def abs(x):\n    return 0\ndef dist(a, b):\n    return 0\n", "assert abs(dist(1, 4) - 3) < 1e-9\n"),
    "sorted in a function": (
        "def sorted(x):\n    return [1, 2]\ndef my_sort(x):\n    return [1, 2]\n",
        "def check(x):\n    assert my_sort(x) == sorted(x)\ncheck([2, 0])\n",
    ),
}


@pytest.mark.parametrize("attack", SHADOWING)
def test_a_solution_that_redefines_a_builtin_the_tests_use_fails(attack, level):
    """Bound to the solution, the tests' own `abs` or `sorted` would check the solution against itself."""
    code, tests = SHADOWING[attack]
    result = run_tests(code, tests, LIMITS, level)
    assert not result.ok and result.reason == "shadows_builtin" and "redefines built-in" in result.stderr


def test_a_builtin_name_the_tests_do_not_use_is_fine(level):
    code = "def max(xs):\n    return 0\ndef add(a, b):\n    return a + b\n"
    assert run_tests(code, TESTS, LIMITS, level).ok


@pytest.mark.parametrize("level", [level for level in LEVELS if level != "none"] or ["none"])
def test_the_code_cannot_reach_the_testing_process_through_proc(level):
    if level == "none":
        pytest.skip("no namespace layer here: the code shares /proc with the testing process")
    code = """
import os
for pid in os.listdir('/proc'):
    if pid.isdigit():
        for fd in range(64):
            try:
                with open(f'/proc/{pid}/fd/{fd}', 'wb', buffering=0) as f:
                    f.write(b'PASS\\n')
            except OSError:
                pass
def add(a, b):
    return 0
"""
    assert not run_tests(code, TESTS, LIMITS, level).ok


def test_the_code_cannot_read_the_tests_to_hard_code_their_answers(level):
    """The tests were a file in a folder anyone could pass through: wrong code read the expected values
    from it (at every layer but bubblewrap's, which hides the host's /tmp) and passed."""
    if level == "none" and not ROOT:
        pytest.skip("without namespaces, as our own user, the code may read the testing process's descriptors")
    code = """
import glob, os, re, stat
table = {}
places = glob.glob('/tmp/synthloop-sandbox-*/prog/*')  # where the tests were (a folder one may pass through)
places += glob.glob('/dev/shm/*')
places += [f'/proc/{p}/fd/{fd}' for p in os.listdir('/proc') if p.isdigit() for fd in range(32)]
for path in places:
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a pipe would block
            continue
        with open(path, errors='replace') as f:
            text = f.read(1_000_000)
    except (OSError, ValueError):
        continue
    for a, b, want in re.findall(r'add\\((\\d+), (\\d+)\\) == (\\d+)', text):
        table[(int(a), int(b))] = int(want)
def add(a, b):
    return table.get((a, b), 0)
"""
    assert not run_tests(code, "assert add(17, 25) == 42\nassert add(2, 2) == 4\n", LIMITS, level).ok


def test_correct_code_passes_with_the_tests_users_write(level):
    code = """
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y
    def __eq__(self, other):
        return (self.x, self.y) == (other.x, other.y)
    def __add__(self, other):
        return Point(self.x + other.x, self.y + other.y)

class EmptyError(ValueError):
    pass

def sort_in_place(items):
    items.sort()

def squares(n):
    yield from (i * i for i in range(n))

def parse(text):
    if not text:
        raise EmptyError("empty")
    return {"words": tuple(text.split()), "chars": len(text), "ratio": 0.5, "raw": text.encode()}

LIMIT = 10
"""
    tests = """
assert Point(1, 2) + Point(3, 4) == Point(4, 6)
assert Point(1, 2).x == 1 and Point(1, 2) != Point(2, 1)
items = [3, 1, 2]
sort_in_place(items)
assert items == [1, 2, 3]
assert list(squares(4)) == [0, 1, 4, 9] and sum(squares(3)) == 5
assert parse("a b") == {"words": ("a", "b"), "chars": 3, "ratio": 0.5, "raw": b"a b"}
try:
    parse("")
    raise AssertionError("no error")
except ValueError as error:
    assert "empty" in str(error)
from solution import LIMIT
assert LIMIT == 10
import sys
sys.exit(0)
"""
    result = run_tests(code, tests, LIMITS, level)
    assert result.ok, result.stderr


def test_correct_code_passes_the_same_tests_the_forgeries_fail(level):
    for tests in (TESTS, MAP_TESTS):
        assert run_tests("def add(a, b):\n    return a + b\n", tests, LIMITS, level).ok


def test_wrong_code_fails_with_the_failing_line(level):
    result = run_tests("def add(a, b):\n    return a - b\n", TESTS, LIMITS, level)
    assert not result.ok and result.reason == "failed" and "AssertionError" in result.stderr


def test_a_test_script_that_ends_with_an_error_status_fails(level):
    result = run_tests("def add(a, b):\n    return a + b\n", "import sys\nsys.exit(1)\n", LIMITS, level)
    assert not result.ok


def test_a_solution_that_hangs_or_floods_is_stopped(level):
    hangs = run_tests("def add(a, b):\n    while True:\n        pass\n", TESTS, LIMITS, level)
    assert not hangs.ok and hangs.reason in ("cpu_time", "timeout")
    floods = run_tests("def add(a, b):\n    return 'x' * 50_000_000\n", TESTS, LIMITS, level)
    assert not floods.ok


def test_verify_code_stage_reasons(level):
    def row(answer):
        return Record(kind="solution", skill="code", question="write add", answer=answer, reference_answer=TESTS,
                      source="synthetic", round=1)  # fmt: skip

    rows = [row("def add(a, b):\n    return a + b\n"), row("import os\nos._exit(0)\n")]
    out = list(VerifyCode(LIMITS, workers=2, isolation=level).run(rows))
    assert [r.reject_reason for r in out] == [None, "tests_error"]


def test_a_weaker_isolation_is_said_in_the_manifest_and_the_report_of_every_run(tmp_path):
    import yaml

    from synthloop.config import default_recipe_text, load_recipe
    from synthloop.reports.html import write_report
    from synthloop.storage.atomic import read_json
    from synthloop.storage.rundir import open_run

    data = yaml.safe_load(default_recipe_text())
    data["curation"]["code"] = {"isolation": "none"}
    (tmp_path / "weak.yaml").write_text(yaml.safe_dump(data))
    recipe = load_recipe(tmp_path / "weak.yaml")
    for resume in (False, True):
        run, _ = open_run(tmp_path / "run", recipe, resume)
        write_report(run)
        assert "weaker isolation 'none'" in " ".join(read_json(run.manifest)["warnings"])
        assert "weaker isolation &#x27;none&#x27;" in run.report.read_text()
    strong = load_recipe()
    run, _ = open_run(tmp_path / "strong", strong, False)
    assert read_json(run.manifest)["warnings"] == []


def test_forged_names_on_the_pipe_cannot_change_what_the_tests_mean(level):
    """The code writes its own first message: __name__ to skip a main guard, __builtins__ to hijack
    imports. Names that are not plain identifiers are refused."""
    forge = """
import json, os, sys
out = int(sys.argv[5])
for name in ({"__name__": "nope"}, {"__builtins__": {"dict": [["x", 1]]}}):
    os.write(out, json.dumps({"ok": {"dict": [[k, v] for k, v in name.items()]}}).encode() + b"\\n")
    break
def add(a, b):
    return 0
"""
    tests = 'if __name__ == "__main__":\n    assert add(1, 2) == 3\n'
    assert not run_tests(forge, tests, LIMITS, level).ok
    assert run_tests("def add(a, b):\n    return a + b\n", tests, LIMITS, level).ok


def test_unittest_main_runs_the_tests(level):
    tests = "import unittest\nclass T(unittest.TestCase):\n    def test_add(self):\n"
    tests += "        self.assertEqual(add(1, 2), 3)\nunittest.main()\n"
    assert run_tests("def add(a, b):\n    return a + b\n", tests, LIMITS, level).ok
    assert not run_tests("def add(a, b):\n    return 0\n", tests, LIMITS, level).ok


def test_curate_refuses_in_one_line_before_writing_anything_where_bubblewrap_is_missing(tmp_path):
    """Fail closed: the default isolation needs bubblewrap; without it (not on PATH here) the preflight
    says what to install or how to opt into a weaker layer, and nothing is written."""
    import subprocess
    import sys

    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"question": "q", "answer": "def f():\\n    return 1", "reference_answer": "assert f() == 1"}\n')
    (tmp_path / "r.yaml").write_text("curation:\n  code: {}\n")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "synthloop.cli.main", "curate", str(rows), "--recipe", str(tmp_path / "r.yaml")]
    done = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, env={"PATH": str(tmp_path)})
    assert done.returncode == 2 and not out.exists(), done.stderr
    assert done.stderr.count("\n") == 1 and "apt-get install bubblewrap" in done.stderr
    assert "curation.code.isolation" in done.stderr


def test_pytest_style_test_functions_are_run(level):
    tests = "def test_add():\n    assert add(1, 2) == 3\n\ndef test_zero():\n    assert add(0, 0) == 0\n"
    assert run_tests("def add(a, b):\n    return a + b\n", tests, LIMITS, level).ok
    assert not run_tests("def add(a, b):\n    return 0\n", tests, LIMITS, level).ok


def test_a_huge_integer_answer_crosses(level):
    code = "import math\ndef f(n):\n    return math.factorial(n)\n"
    assert run_tests(code, "import math\nassert f(2000) == math.factorial(2000)\n", LIMITS, level).ok
