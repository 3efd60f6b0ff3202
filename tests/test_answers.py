from fractions import Fraction

import pytest

from synthloop.skills.answers import extract_final_answer, parse_number, score_number, score_number_list, score_text
from synthloop.skills.units import score_quantity


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


@pytest.mark.parametrize(("text", "value"), [("1,234", 1234), ("-3", -3), ("1 1/2", Fraction(3, 2)), ("$5", 5)])
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["abc", "", "3/0", "1.2.3"])
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
