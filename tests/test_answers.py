import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthloop.registry import SKILLS
from synthloop.skills.answers import extract_final_answer, parse_number, score_number, score_number_list, score_text
from synthloop.skills.final_answer import FinalAnswer, find_final_answer
from synthloop.skills.units import score_quantity
from synthloop.teachers.oracle import corrupt


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("step one\n#### 42", "42"),
        ("#### 1\nthen again\n#### 7", "7"),
        ("So the answer is 42.", "42"),
        ("The answer: 3/4", "3/4"),
        ("we get \\boxed{12}", "12"),
        ("I think it is 42", None),
    ],
)
def test_extract_final_answer(text, answer):
    assert extract_final_answer(text) == answer


@pytest.mark.parametrize("text", ["3/4", "6/8", "0.75", " 0.750 ", ".75"])
def test_fraction_equivalence(text):
    assert score_number(f"#### {text}", "3/4") == 1.0


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1,234", 1234),
        ("-3", -3),
        ("1 1/2", Fraction(3, 2)),
        ("$5", 5),
        ("-$5", -5),
        ("3 / 4", Fraction(3, 4)),
        ("9,660", 9660),
        ("1,234,567.5", Fraction(2469135, 2)),
        ("5.", 5),
    ],
)
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["abc", "", "3/0", "1.2.3", "9 66", "96 6", "9,66", "96,6", "1,23,456"])
def test_parse_number_rejects(text):
    assert parse_number(text) is None


def test_wrong_or_missing_answer_scores_zero():
    assert score_number("#### 41", "42") == 0.0
    assert score_number("forty-two", "42") == 0.0


@pytest.mark.parametrize("text", ["3000", "3000 m", "3000 meters", "3 km", "300000 cm", "  3000m "])
def test_units_equivalence(text):
    assert score_quantity(f"#### {text}", "3000 m") == 1.0


@pytest.mark.parametrize("text", ["3000 g", "30 m", "3000 parsecs"])
def test_units_mismatch(text):
    assert score_quantity(f"#### {text}", "3000 m") == 0.0


def test_text_and_lists():
    assert score_text("####   Yes. ", "yes") == 1.0
    assert score_text("#### no", "yes") == 0.0
    assert score_number_list("#### 1, 2,3", "1, 2, 3") == 1.0
    assert score_number_list("#### 2, 1, 3", "1, 2, 3") == 0.0


# --- final answers as real models write them ---

MARKED_966 = [
    "#### 966",
    "Adding the columns:\n6 + 0 = 6\n#### 966",
    "The answer is 966",
    "So the answer is 966.",
    "The final answer is: 966",
    "Final answer: 966",
    "Final Answer:\n\n966",
    "Answer: 966",
    "**Answer:** 966",
    "**Final Answer**: 966",
    "\\boxed{966}",
    "Therefore the sum is $\\boxed{966}$.",
    "The answer is $\\boxed{966}$.",
    "**966**",
    "So the total is **966**.",
    "966",
    "966.",
    " 966 \n",
    "$966$",
    "Work:\n900 + 66\n966",
    "The answer is 966. Let me check: 900 + 66 = 966",
    "The answer is 12 or 13, let me redo it.\n#### 966",
    "The answer is 966, not 12",
    "The answer is 966, which is even.",
    "The answer is 966 because 900 + 66 = 966.",
    "It is not hard: the answer is 966.",
    "I was not sure at first, but the answer is 966.",
    "966 is the answer.",
    "So, 966 is the final answer.",
    "#### 966\n",
    "So the total is 966.",
    "The result is 966.",
    "Final: 966",
    "I got 966",
    "Adding up, we get 966.",
]


@pytest.mark.parametrize("text", MARKED_966)
def test_a_final_answer_is_found_however_it_is_marked(text):
    found = find_final_answer(text)
    assert (found.value, found.problem) == ("966", None)
    assert score_number(text, "966") == 1.0


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("The final answer is $\\boxed{\\frac{\\sqrt{2}}{2}}$.", "\\frac{\\sqrt{2}}{2}"),
        ("$5", "$5"),
        ("It costs\n$5", "$5"),
        ("3000 m", "3000 m"),
        ("(1, 2, 3)", "(1, 2, 3)"),
        ("1, 2, 3", "1, 2, 3"),
        ("Paris", "Paris"),
        ("x^2+2x+1", "x^2+2x+1"),
        ("The answer is (B).", "(B)"),
        ("yes", "yes"),
        ("50%", "50%"),
        ("Final Answer: The final answer is $\\boxed{42}$. I hope it is correct.", "42"),  # Minerva's format
        ("Answer: \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("The answer is: #### 12", "12"),
    ],
)
def test_values_of_every_kind_are_found(text, answer):
    assert extract_final_answer(text) == answer


def test_a_marker_inside_a_marker_keeps_its_doubt():
    assert extract_final_answer("Final answer: The answer is 7 or 8") is None
    assert extract_final_answer("Final answer: I don't think the answer is 5") is None


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("966 or 12", "hedged between 966 and 12"),
        ("either 966 or 12", "hedged between 966 and 12"),
        ("The answer is either 966 or 12.", "hedged between 966 and 12"),
        ("966 or maybe 12", "hedged between 966 and 12"),
        ("#### 966 or 12", "hedged between 966 and 12"),
        ("The answer is between 900 and 1000", "hedged between 900 and 1000"),
        ("between 900 and 1000", "hedged between 900 and 1000"),
        ("966/12?", "hedged between 966 and 12"),
        ("I think 966, or 12", "hedged between 966 and 12"),
        ("**966** or **12**", "hedged between 966 and 12"),
        ("\\boxed{966} or \\boxed{12}", "hedged between 966 and 12"),
        ("Answer: 966?", "hedged: the answer ends in a question mark"),
        ("So the total is 966 or 12.", "hedged between 966 and 12"),
    ],
)
def test_a_hedge_states_no_answer(text, detail):
    found = find_final_answer(text)
    assert (found.value, found.problem) == (None, detail)
    assert score_number(text, "966") == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "not 966",
        "the answer is not 966",
        "The answer isn't 966.",
        "isn't 966",
        "966 is wrong",
        "#### 966 is wrong",
        "It is not 966.",
        "I don't think the answer is 966.",
        "The answer is **not** 966",
        "966 is not the answer.",
        "The total is not 966.",
    ],
)
def test_a_negation_states_no_answer(text):
    found = find_final_answer(text)
    assert (found.value, found.problem) == (None, "negated")
    assert score_number(text, "966") == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n ",
        "3 + 4 = 7",  # working, not an answer
        "Let me add the columns.\n900 + 66 = 966",
        "I think it is 42",
        "The capital is Paris.",
        "**Step 1:**",
        "no answer here",
        "The result is that we must redo it.",
        "So the total is 3 + 4 = 7",
        "I got 966 wrong",  # in words, only a plain value is an answer
        "I got 966 but not sure",
        "The total is 966 so far",
        "The sum is 12, the product is 35",
        "The value is unknown",
        "The total is never 966",
    ],
)
def test_working_and_prose_are_no_answer(text):
    assert find_final_answer(text) == FinalAnswer(None, "no final answer stated")


def test_a_huge_or_hostile_reply_is_read_in_bounded_time():
    import time

    long_list = ", ".join(str(2 * i) for i in range(40)) + ", ..."  # a list regex once took minutes on this
    spaces = [f"The answer is 5{' ' * 20_000}x", f"work\n966{' ' * 20_000}x", f"The answer is ${' ' * 20_000}5"]
    nested = "\\boxed{" * 1428 + "}" * 1428
    for reply in ("\\boxed{" * 20_000, "answer: " * 20_000, "####" * 30_000, "a " * 100_000 + "\n966", long_list,
                  *spaces, nested):  # fmt: skip
        start = time.perf_counter()
        find_final_answer(reply)
        assert time.perf_counter() - start < 10, reply[:20]  # a hang guard, not a speed figure: quadratic is minutes
    assert extract_final_answer("x" * 500_000 + "\n#### 966") == "966"


def test_an_explicit_marker_wins_over_a_bare_last_line():
    """The last line of the working is never taken when the answer was marked before it."""
    assert extract_final_answer("The answer is 5.\n3 + 4 = 7") == "5"
    assert extract_final_answer("#### 5\n7") == "5"
    assert score_number("The answer is 5.\nCheck:\n7", "7") == 0.0


def test_a_reference_that_reads_like_a_hedge_is_taken_as_written():
    assert find_final_answer("#### not applicable").problem == "negated"
    assert extract_final_answer("#### not applicable", exempt=["Not applicable"]) == "not applicable"
    assert score_text("#### not applicable", "not applicable") == 1.0
    assert score_text("#### rock or roll", "rock or roll") == 1.0


def old_extract(text: str) -> str | None:
    """The extraction of the previous version, for the demo's `reasoning\\n#### answer` replies."""
    import re

    for pattern in (
        re.compile(r"####\s*(.+)"),
        re.compile(r"answer\s*(?:is|:)\s*:?\s*(.+?)\s*(?:\.\s*$|$)", re.IGNORECASE | re.MULTILINE),
        re.compile(r"\\boxed\{([^{}]*)\}"),
    ):
        found = pattern.findall(text)
        if found:
            return found[-1].strip()
    return None


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SKILLS.names()), st.integers(0, 10**6), st.integers(1, 5), st.booleans())
def test_the_demo_students_replies_score_exactly_as_before(name, idx, difficulty, wrong):
    """Reasoning, then `#### answer` (right or corrupted): the same extraction and score as before."""
    skill = SKILLS.get(name)
    problem = skill.generate(0, idx, difficulty)
    answer = corrupt(problem.answer, random.Random(idx)) if wrong else problem.answer
    reply = "\n".join((*problem.steps, f"#### {answer}"))
    assert extract_final_answer(reply) == old_extract(reply)
    assert skill.score(reply, problem.answer) == float(not wrong or answer == problem.answer)
