import pytest

from synthloop.curation.self_consistency import SelfConsistency
from synthloop.curation.verify import VerifyAnswers
from synthloop.curation.verify_code import VerifyCode
from synthloop.curation.verify_math import symbolically_equal
from synthloop.records import Record


def row(question: str, answer: str | None, reference: str | None = None, skill: str = "user_math") -> Record:
    return Record(
        kind="solution", skill=skill, question=question, answer=answer, reference_answer=reference,
        source="synthetic", round=1,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("answer", "reference", "equal"),
    [
        ("0.5", "1/2", True),
        ("\\frac{1}{2}", "0.5", True),
        ("(x+1)^2", "x^2 + 2x + 1", True),
        ("2\\sqrt{2}", "\\sqrt{8}", True),
        ("3", "4", False),
        ("x^2 - 1", "(x-1)^2", False),
        ("", "4", None),
        ("the answer is unknowable", "4", False),
    ],
)
def test_symbolic_equivalence(answer, reference, equal):
    result = symbolically_equal(answer, reference)
    assert result is equal or (equal is False and result is None)


def test_rows_of_no_registered_skill_are_verified_symbolically():
    rows = [row("q1", "\\frac{3}{4}", "0.75"), row("q2", "0.7", "3/4"), row("q3", "@@", "3/4")]
    out = list(VerifyAnswers().run(rows))
    assert [r.reject_reason for r in out][:2] == [None, "wrong_answer"]


def test_code_is_verified_against_its_tests_in_the_sandbox():
    tests = "assert add(2, 3) == 5\nassert add(-1, 1) == 0"
    good = row("write add", "def add(a, b):\n    return a + b", tests, skill="code")
    wrong = row("write add 2", "def add(a, b):\n    return a - b", tests, skill="code")
    hangs = row("write add 3", "def add(a, b):\n    while True:\n        pass", tests, skill="code")
    escapes = row("write add 4", "open('/etc/passwd', 'a').write('x')\ndef add(a, b): return a + b", tests, "code")
    untested = row("write add 5", "def add(a, b): return a + b", None, skill="code")
    from synthloop.curation.sandbox import SandboxLimits, available_isolation

    verify = VerifyCode(SandboxLimits(wall_s=15, cpu_s=1), isolation=available_isolation()[0])  # CPU limit first
    out = list(verify.run([good, wrong, hangs, escapes, untested]))
    assert [r.reject_reason for r in out] == [None, "tests_failed", "tests_cpu_time", "tests_denied", None]
    assert "AssertionError" in out[1].verdicts[-1].detail
    assert out[4].verdicts[-1].detail == "no tests: abstained"


def test_self_consistency_votes_with_equivalent_answers_together():
    samples = [row("What is 1/2 of 1?", a) for a in ["0.5", "1/2", "0.50", "2"]]
    out = list(SelfConsistency(min_agreement=0.5).run(samples))
    assert [r.kept for r in out] == [True, True, True, False]
    assert out[3].reject_reason == "disagrees_with_majority" and out[0].verdicts[-1].score == 0.75


def test_self_consistency_counts_latex_fractions_and_option_forms_as_one_answer():
    fractions = [row("Half of 1?", a) for a in ["-\\frac{1}{2}", "-\\dfrac{1}{2}", "-1/2", "1/2"]]
    options = [row("Capital of France?", a) for a in ["B", "(B)", "B)", "Option B", "C"]]
    names = [row("Who?", a) for a in ["A. Lincoln", "A. Einstein", "A. Lincoln"]]  # initials are no options
    out = list(SelfConsistency(min_agreement=0.6).run(fractions + options + names))
    kept = [r.kept for r in out]
    assert kept[:4] == [True, True, True, False] and kept[4:9] == [True, True, True, True, False]
    assert kept[9:] == [True, False, True]


def test_self_consistency_rejects_an_unsure_question_and_passes_a_single_sample():
    unsure = [row("hard", a) for a in ["1", "2", "3", "4"]]
    single = row("easy", "7")
    out = list(SelfConsistency(min_agreement=0.5).run([*unsure, single]))
    assert [r.reject_reason for r in out] == ["low_agreement"] * 4 + [None]


@pytest.mark.parametrize(
    ("answer", "reference"),
    [("12", "12"), ("12", "13"), ("-3", "-3"), ("0.5", "1/2"), ("2", "2.0"), ("10", "010"), ("1e3", "1000"),
     ("3/4", "0.75"), ("0.333", "1/3"), (" 7 ", "7"), ("1,000", "1000"), ("x+1", "1+x"), ("", "4"), ("1/0", "1")],
)  # fmt: skip
def test_the_plain_number_fast_path_agrees_with_math_verify(answer, reference):
    from math_verify import parse, verify

    from synthloop.curation.verify_math import _as_math, plainly_equal

    fast = plainly_equal(answer, reference)
    if fast is None:
        return  # math-verify decides these itself
    gold, given = parse(_as_math(reference)), parse(_as_math(answer))
    assert fast == bool(gold and given and verify(gold, given))
