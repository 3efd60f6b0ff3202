"""Quality heuristics (each rule counted) and the reward-model scorer on a real tiny checkpoint."""

import pytest
import torch

from synthloop.curation.quality import RULE_NAMES, QualityFilter, broken_rules, thresholds
from synthloop.curation.reward import RewardModel, RewardModelError
from synthloop.records import Record
from synthloop.registry import SKILLS
from synthloop.testing.tiny_model import build_tiny_chat_model, build_tiny_reward_model

PROSE = (
    "The water cycle moves water between the sea, the air and the land. Heat from the sun makes water "
    "evaporate from the surface of the sea, and the vapour rises with the warm air.\n\n"
    "As the air cools, the vapour condenses into droplets that form clouds. When the droplets grow heavy "
    "enough they fall as rain or snow, and rivers carry the water back to the sea."
)


def row(question, reasoning="", answer="", skill="addition"):
    return Record(
        kind="solution", skill=skill, question=question, source="synthetic", round=1, reasoning=reasoning, answer=answer
    )


def reference_rows():
    rows = []
    for name in SKILLS.names():
        for difficulty in (1, 3, 5):
            for i in range(40):
                p = SKILLS.get(name).generate(0, i, difficulty)
                rows.append(row(p.question, "\n".join(p.steps), p.answer, name))
    return rows


def test_the_reasoning_preset_keeps_every_reference_solution_and_catches_loops():
    stage = QualityFilter("reasoning")
    out = list(stage.run(reference_rows()))
    assert all(r.kept for r in out), [r.verdicts[-1].detail for r in out if not r.kept][:3]
    looping = row("What is 3 + 4?", "We add 3 and 4 to get 7, so the answer is 7. " * 12, "7")
    stuck = row(
        "What is 3 + 4?", "First, three plus four is seven, counting up from three.\n" + "the answer is 7\n" * 8, "7"
    )
    out = list(stage.run([looping, stuck]))
    assert [r.reject_reason for r in out] == ["quality_duplicate_10gram_char_share", "quality_duplicate_line_share"]
    assert "duplicate_10gram_char_share 0.891 > 0.6" in out[0].verdicts[-1].detail
    assert stage.counts["duplicate_10gram_char_share"] == 1 and stage.counts["duplicate_line_share"] == 1


def test_the_prose_preset_keeps_prose_and_counts_every_broken_rule():
    stage = QualityFilter("prose", field="answer")
    rows = [
        row("q", answer=PROSE),
        row("q", answer="12 + 7 = 19"),  # short, numeric, no stop words
        row("q", answer=""),  # empty: min_words
        row("q", answer="# # # ### ... … " * 20),
        row("q", answer="\n".join(f"- item {i} of the list with the words" for i in range(60))),
    ]
    out = list(stage.run(rows))
    assert out[0].kept, out[0].verdicts
    assert [r.kept for r in out] == [True, False, False, False, False]
    assert out[2].reject_reason == "quality_min_words"
    assert {"min_words", "stop_words", "alphabetic_word_share"} <= set(stage.counts)
    assert stage.counts["min_words"] == 2 and stage.counts["bullet_line_share"] == 1
    assert stage.counts["symbol_word_ratio"] == 1
    # One row broke several rules: each is counted, and the detail lists them all.
    assert out[1].verdicts[-1].score == len(out[1].verdicts[-1].detail.split("; ")) >= 3


def test_rules_can_be_switched_off_or_changed_and_unknown_names_are_refused():
    bounds = thresholds("prose", {"min_words": 3, "stop_words": None})
    assert bounds["min_words"] == 3 and "stop_words" not in bounds
    assert next(b.rule for b in broken_rules("one two", bounds)) == "min_words"
    with pytest.raises(ValueError, match=r"unknown quality rule.*stopwords.*the rules are: min_words"):
        thresholds("prose", {"stopwords": 1})
    assert len(RULE_NAMES) == len(set(RULE_NAMES))


def test_bad_input_gets_a_verdict_not_a_crash():
    rows = [row(""), row("x" * 10_000_000), row("caf\udce9 ok", "bad \udcff bytes", "1")]
    out = list(QualityFilter("reasoning").run(rows))
    assert out[0].reject_reason == "quality_min_words"
    assert out[1].kept and out[2].kept  # one enormous word; broken bytes made valid by the record


@pytest.fixture(scope="module")
def reward_path(tmp_path_factory):
    return build_tiny_reward_model(tmp_path_factory.mktemp("reward"))


def test_reward_model_scores_match_the_model_and_split_on_the_threshold(reward_path):
    scorer = RewardModel(reward_path, threshold=0.0, batch_size=3)
    rows = [row(f"Is {i} even?", "Check it.", "yes" if i % 2 else "no") for i in range(8)]
    out = list(scorer.run(rows))
    assert [r.kept for r in out] == [bool(i % 2) for i in range(8)]
    assert all(r.verdicts[-1].reason == (None if r.kept else "low_reward") for r in out)
    # The scores are the model's own logit for each pair, whatever the batch and its padding.
    alone = RewardModel(reward_path, batch_size=1)
    pairs = [(r.question, "Check it.\nFinal answer: " + r.answer) for r in rows]
    assert alone.scores(pairs) == pytest.approx([r.verdicts[-1].score for r in out], abs=1e-4)
    batch = alone.tokenizer(pairs[0][0], pairs[0][1], return_tensors="pt")
    with torch.no_grad():
        assert alone.model(**batch).logits[0, 0].item() == pytest.approx(out[0].verdicts[-1].score, abs=1e-4)


def test_reward_model_survives_empty_and_enormous_rows(reward_path):
    scorer = RewardModel(reward_path, threshold=-100.0, max_length=64)
    out = list(scorer.run([row("", "", ""), row("Is 2 even?", "y " * 5_000_000, "no")]))
    assert all(r.kept and r.verdicts[-1].score is not None for r in out)


def test_reward_model_with_a_chat_template_and_bad_paths(tmp_path):
    chat = build_tiny_chat_model(tmp_path / "chat")
    with pytest.raises(RewardModelError, match=r"no config\.json"):
        RewardModel(tmp_path / "missing")
    # A causal LM checkpoint loads with a fresh classification head: it scores (with the chat template).
    scorer = RewardModel(chat)
    assert scorer.tokenizer.chat_template and len(scorer.scores([("What is 1 + 1?", "2")])) == 1
