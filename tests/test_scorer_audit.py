"""`synthloop audit --scorer NAME`: a task scorer measured on labelled replies (a file, or --embedded
replies built from the skills), with its settings from --recipe."""

import json

import pytest

from synthloop.cli.main import main
from synthloop.testing import serve_in_thread
from synthloop.testing.judges import grading_judge
from synthloop.testing.simulated_server import SimulatedServer

ROWS = [
    {"question": "2 + 2?", "answer": "4", "output": "#### 4", "label": "keep"},
    {"question": "2 + 3?", "answer": "5", "output": "So the answer is **5**.", "correct": True},
    {"question": "2 + 4?", "answer": "6", "output": "6 or 7", "correct": False},
    {"question": "2 + 5?", "answer": "7", "output": "The answer is not 7.", "label": "drop"},
    {"question": "2 + 6?", "answer": "8", "output": "#### 9", "correct": False},
    {"question": "2 + 7?", "answer": "9", "output": "9 apples, I think", "correct": True},  # marked wrong: FP
    {"question": "2 + 8?", "answer": "10", "output": "#### 10", "correct": False},  # a bad label: FN
]


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_scorer_audit_counts_and_lists_its_mistakes(tmp_path, capsys):
    sample = write_rows(tmp_path / "labelled.jsonl", ROWS)
    assert main(["audit", "--scorer", "numeric", str(sample), "--out", str(tmp_path / "a.json")]) == 0
    out = capsys.readouterr().out
    assert "audit of scorer numeric on 7 labelled replies" in out
    assert "scorer numeric         4        7     3     1     1     2     0.750   0.750     0.714" in out, out
    assert "scorer numeric false positive: '2 + 7?' -> '9 apples, I think'" in out
    assert "scorer numeric false negative: '2 + 8?' -> '#### 10'" in out
    report = json.loads((tmp_path / "a.json").read_text())
    [stage] = report["stages"]
    assert (stage["tp"], stage["fp"], stage["fn"], stage["tn"]) == (3, 1, 1, 2)
    assert stage["false_positives"][0]["detail"] == "no final answer stated"
    assert stage["false_negatives"][0]["reference"] == "10" and report["scorer"]["name"] == "numeric"


def test_settings_come_from_a_scorer_file(tmp_path, capsys):
    rows = [{"question": "pi?", "answer": "3.14159", "output": "#### 3.14", "correct": True}]
    sample = write_rows(tmp_path / "labelled.jsonl", rows)
    (tmp_path / "loose.yaml").write_text("scorer: {name: numeric, tolerance: 0.01}\n")
    assert main(["audit", "--scorer", "numeric", str(sample)]) == 0
    assert "scorer numeric         1        1     0     1" in capsys.readouterr().out
    assert main(["audit", "--scorer", "numeric", str(sample), "--recipe", str(tmp_path / "loose.yaml")]) == 0
    assert "scorer numeric         0        1     0     0     0     1" in capsys.readouterr().out
    assert main(["audit", "--scorer", "math", str(sample), "--recipe", str(tmp_path / "loose.yaml")]) == 2
    assert "its scorer is numeric, not math" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"question": "q", "answer": "x", "output": "#### 1", "correct": True}, "line 1: the reference 'x' is not a"),
        ({"question": "q", "answer": "1", "correct": True}, "line 1: 'output' (the model's reply, text) is missing"),
        ({"question": "q", "answer": "1", "output": "1"}, "line 1: no 'label'"),
        ({"question": "q", "answer": "1", "output": "1", "label": "maybe"}, "line 1: label 'maybe' is not one of"),
    ],
)
def test_a_bad_row_is_one_line_naming_it(tmp_path, capsys, row, message):
    sample = write_rows(tmp_path / "labelled.jsonl", [row])
    assert main(["audit", "--scorer", "numeric", str(sample)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_a_judge_scorer_is_audited_against_a_real_server(tmp_path, capsys):
    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0, responder=grading_judge())
    sample = write_rows(tmp_path / "labelled.jsonl", ROWS)
    assert main(["audit", "--scorer", "judge", str(sample)]) == 2
    assert "--scorer judge needs a judge model" in capsys.readouterr().err
    with serve_in_thread(server.app()) as url:
        judge = f"{{teacher: {{backend: openai, base_url: {url}/v1, model: simulated}}}}"
        (tmp_path / "judge.yaml").write_text(f"scorer: {{name: judge, judge: {judge}}}\n")
        assert main(["audit", "--scorer", "judge", str(sample), "--recipe", str(tmp_path / "judge.yaml")]) == 0
    out = capsys.readouterr().out
    assert "scorer judge           4        7     3     1     1     2" in out, out
    assert sum(server.completed.values()) == len(ROWS)


@pytest.mark.parametrize("name", ["exact", "numeric", "math", "choice"])
def test_embedded_replies_written_every_way_are_scored_right(name, capsys):
    assert main(["audit", "--scorer", name, "--embedded", "--rows-per-skill", "4"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith(f"scorer {name}"))
    fp, fn = (int(x) for x in line.split()[5:7])
    assert (fp, fn) == (0, 0) and line.split()[-1] == "1.000", out


def test_embedded_replies_are_only_for_the_scorers_the_skills_suit(capsys):
    assert main(["audit", "--scorer", "regex", "--embedded"]) == 2
    assert "give a labelled file for regex" in capsys.readouterr().err


def test_a_code_scorer_is_audited_with_each_rows_tests(tmp_path, capsys):
    from synthloop.curation.sandbox import probe_isolation

    if probe_isolation()["bwrap"] is not None:
        pytest.skip(f"bubblewrap does not work here ({probe_isolation()['bwrap']}): apt-get install bubblewrap")
    tests = "assert add(2, 3) == 5\n"
    rows = [
        {"question": "add", "answer": "-", "tests": tests, "output": "```python\ndef add(a, b):\n    return a + b\n```",
         "correct": True},
        {"question": "add", "answer": "-", "tests": tests, "output": "def add(a, b):\n    return a * b\n",
         "correct": False},
    ]  # fmt: skip
    sample = write_rows(tmp_path / "labelled.jsonl", rows)
    assert main(["audit", "--scorer", "code", str(sample)]) == 0
    assert (
        "scorer code            1        2     1     0     0     1     1.000   1.000     1.000"
        in capsys.readouterr().out
    )
    no_tests = write_rows(tmp_path / "no_tests.jsonl", [{**rows[0], "tests": None}])
    assert main(["audit", "--scorer", "code", str(no_tests)]) == 2
    assert "line 1: the code scorer needs 'tests'" in capsys.readouterr().err
