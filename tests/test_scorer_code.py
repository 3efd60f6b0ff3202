"""The code scorer: the student's code from its reply, run against the item's tests in the sandbox.
Where bubblewrap is missing, the tests that run code are skipped, saying what to install."""

import subprocess
import sys
from pathlib import Path

import pytest

import synthloop
from synthloop.config import ScorerConfig
from synthloop.curation.sandbox import probe_isolation
from synthloop.scoring.code import code_of
from synthloop.scoring.item import TaskItem
from synthloop.scoring.scorers import make_scorer

needs_bwrap = pytest.mark.skipif(
    probe_isolation()["bwrap"] is not None,
    reason=f"bubblewrap does not work here ({probe_isolation()['bwrap']}): apt-get install bubblewrap",
)
TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
ITEM = TaskItem("i", "Write add(a, b).", "def add(a, b): return a + b", "code", tests=TESTS)
RIGHT = "def add(a, b):\n    return a + b\n"


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (f"Here it is:\n```python\n{RIGHT}```\nDone.", RIGHT),
        (f"```py\n{RIGHT}```", RIGHT),
        (f"```Python3\n{RIGHT}```", RIGHT),
        (f"```\n{RIGHT}```", RIGHT),
        (f"```python\ndef add(a, b):\n    return 0\n```\nFixed:\n```python\n{RIGHT}```\n", RIGHT),
        (f"```python\n{RIGHT}```\nUsage:\n```bash\npython add.py\n```", RIGHT),
        (f"```python\n{RIGHT}", RIGHT),  # a reply cut off before its closing fence
        (RIGHT, RIGHT),
    ],
)
def test_the_code_is_the_last_python_block_or_the_whole_reply(reply, code):
    assert code_of(reply) == code


def scorer(**code):
    return make_scorer(ScorerConfig.model_validate({"name": "code", "code": {"timeout_s": 5, "cpu_s": 2, **code}}))


@needs_bwrap
def test_right_code_passes_and_wrong_code_fails_with_the_failing_line():
    replies = [
        f"```python\n{RIGHT}```",
        RIGHT,
        "```python\ndef add(a, b):\n    return a - b\n```",
        "```python\ndef add(a, b)\n    return a + b\n```",  # a syntax error
        "```python\ndef subtract(a, b):\n    return a - b\n```",
        "I cannot write this.",
        "",
    ]
    scores = scorer().score(replies, [ITEM] * len(replies))
    assert [s.value for s in scores] == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0], scores
    assert scores[0].detail.startswith("tests passed") and scores[0].extracted == RIGHT
    assert scores[2].detail == "tests failed at line 1: assert add(2, 3) == 5 (AssertionError)"
    assert "SyntaxError" in scores[3].detail and "NameError" in scores[4].detail
    assert scores[6].detail == "no code in the answer"


@needs_bwrap
def test_code_that_hangs_is_stopped_and_scores_zero():
    [score] = scorer(timeout_s=2).score(["def add(a, b):\n    while True:\n        pass\n"], [ITEM])
    assert score.value == 0.0 and ("timeout" in score.detail or "cpu_time" in score.detail), score


@needs_bwrap
def test_code_cannot_read_the_tests_to_pass_them():
    cheat = "import os\nSEEN = [open(f'/proc/self/fd/{n}').read() for n in os.listdir('/proc/self/fd')]\n"
    cheat += "def add(a, b):\n    return {(2, 3): 5, (-1, 1): 0}.get((a, b), 0) if 'add(2, 3)' in str(SEEN) else 0\n"
    assert scorer().score([cheat], [ITEM])[0].value == 0.0


def test_a_row_without_tests_is_refused_at_load():
    built = make_scorer(ScorerConfig(name="code", code={"isolation": "none"}))
    assert "needs 'tests'" in built.check_reference(TaskItem("i", "q", "a", "code"))
    assert built.check_reference(ITEM) is None


def test_scoring_fails_closed_in_one_line_where_bubblewrap_is_missing(tmp_path):
    """Not on PATH here: building the scorer says what to install, or which key accepts a weaker sandbox."""
    program = (
        "from synthloop.config import ScorerConfig\nfrom synthloop.scoring.scorers import make_scorer\n"
        "make_scorer(ScorerConfig(name='code'))\n"
    )
    env = {"PATH": str(tmp_path), "PYTHONPATH": str(Path(synthloop.__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("synthloop.curation.sandbox.SandboxUnavailable: code verification needs bubblewrap")
    assert "apt-get install bubblewrap" in last and "task.scorer.code.isolation" in last
