import json

import pytest

from synthloop.curation.decontaminate import Decontaminate, NgramIndex, load_eval_set
from synthloop.records import Record
from synthloop.storage.input_files import InputFileError

LONG_ITEM = (
    "Tariq has 22 marbles. Tariq splits the marbles equally among 2 jars and keeps one jar. "
    "Tariq finds 12 more marbles. How many marbles does Tariq have now?"
)


def row(question: str, answer: str = "") -> Record:
    return Record(kind="solution", skill="s", question=question, answer=answer, source="synthetic", round=1)


def index(*items: str, n: int = 8) -> NgramIndex:
    built = NgramIndex(n)
    built.add("eval", items)
    return built


def test_short_items_are_found_whole_through_case_spacing_and_punctuation():
    found = index("What is 23 + 45?")
    assert found.find("what   is 23+45") is not None
    assert found.find("Question: WHAT IS 23 + 45? Show your work.") is not None
    assert found.find("What is 23 - 45?") is None, "a different operator is a different problem"
    assert found.find("What is 23 + 456?") is None


def test_a_short_items_core_is_found_in_a_reworded_question():
    found = index("What is 40 + 62?", "Which is larger: 84 or 80?", "Name the capital of France.")
    for reworded in ("Compute 40 + 62.", "what's 40 + 62", "Please calculate 40+62 exactly", "Find 40 + 62"):
        assert found.find(reworded, reworded) is not None, reworded
    assert found.find("Which's larger: 84 or 80?", "Which's larger: 84 or 80?") is not None
    assert found.find("Compute 40 + 62 = ?", "Compute 40 + 62 = ?") is not None
    others = ["Compute 41 + 62.", "Which is smaller: 84 or 80?", "Which is larger: 80 or 84?"]
    others += ["Compute 7/40 + 62/9.", "Compute (40 + 62) * 3.", "Compute 40 + 62 + 5."]  # longer expressions
    for other in others:
        assert found.find(other, other) is None, other
    # The core is looked for in the question only: a worked solution repeating the sum is not a copy.
    assert found.find("What is 140 + 2?\nones: 40 + 62 = 102", "What is 140 + 2?") is None
    assert found.find("Compute 40 + 62.") is None  # no question given: whole items only


def test_long_items_are_found_through_light_edits_but_not_changed_numbers():
    found = index(LONG_ITEM)
    assert found.find(LONG_ITEM).coverage == 1.0
    light = LONG_ITEM.upper().replace("keeps one jar", "keeps a jar").replace(".", " ;")
    assert found.find(light) is not None
    assert found.find("Homework, please solve: " + LONG_ITEM + " Thanks!") is not None
    assert found.find(LONG_ITEM.replace("12 more", "13 more")) is None, "a changed number makes a new problem"
    first_word = LONG_ITEM.replace("Tariq has", "Tariq owns", 1)  # an edit near the start, next to a number
    assert found.find(first_word) is not None


def test_swapped_numbers_are_a_different_problem():
    found = index("What is 5/9 + 1/9? Give the answer in lowest terms.")
    assert found.find("What is 1/9 + 5/9? Give the answer in lowest terms.") is None
    assert found.find("what is 5/9+1/9 ... give the answer in lowest terms!") is not None


def test_template_siblings_are_not_contamination():
    item = "East is +x, north is +y, up is +z. A blue ball is at (5, 6, 2). The blue ball moves 2 east. Where is it?"
    sibling = item.replace("(5, 6, 2)", "(1, 3, 4)")
    assert index(item).find(sibling) is None
    assert index(item).find(item) is not None


@pytest.mark.parametrize("n", [8, 13])
def test_n_is_configurable_within_8_to_13(n):
    assert index(LONG_ITEM, n=n).find(LONG_ITEM) is not None


@pytest.mark.parametrize("n", [7, 14])
def test_n_outside_8_to_13_is_refused(n):
    with pytest.raises(ValueError, match="8 to 13"):
        NgramIndex(n)


def test_stage_rejects_with_the_item_named_and_checks_the_answer_too():
    stage = Decontaminate({"gsm": ["unrelated item", LONG_ITEM]})
    out = list(stage.run([row("fresh question"), row("Solve this.", answer=LONG_ITEM), row("")]))
    assert [r.reject_reason for r in out] == [None, "contaminated", None]
    assert out[1].verdicts[-1].detail.startswith("100% of gsm[1]")


def test_eval_sets_load_from_jsonl_with_clear_errors(tmp_path):
    good = tmp_path / "eval.jsonl"
    good.write_text(json.dumps({"problem": "What is 2 + 2?"}) + "\n\n" + json.dumps({"question": "Q2"}) + "\n")
    assert load_eval_set(good) == ["What is 2 + 2?", "Q2"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "ok"}) + "\n" + json.dumps({"answer": "no question"}) + "\n")
    with pytest.raises(InputFileError, match=r"bad.jsonl line 2: needs one of 'question'"):
        load_eval_set(bad)
    with pytest.raises(InputFileError, match="evaluation set not found"):
        load_eval_set(tmp_path / "missing.jsonl")
