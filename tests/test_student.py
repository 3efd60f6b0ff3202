"""The student pieces: tokenizer, both model families, batched generation, formats, and the training loop
(accumulation, gradient checkpointing, packing, resuming)."""

import copy
import itertools

import pytest
import torch

from synthloop.config import load_recipe
from synthloop.evaluation.generate import greedy_answers
from synthloop.registry import SKILLS
from synthloop.training.format import conversation, format_of, student_completion, student_format, student_prompt
from synthloop.training.model import build_scratch_model
from synthloop.training.packing import (
    IGNORE,
    encode_rows,
    length_grouped_batches,
    pack,
    packing_isolates,
    step_batches,
    tokenize_pairs,
)
from synthloop.training.tiny import CHAT_TEMPLATE
from synthloop.training.tokenizer import train_tokenizer
from synthloop.training.trainer import TrainSettings, train


@pytest.fixture(scope="module")
def tokenizer():
    texts = [SKILLS.get(s).generate(0, i, 1).solution for s in SKILLS.names() for i in range(30)]
    return train_tokenizer(texts, 400)


def test_tokenizer_splits_digits_and_round_trips(tokenizer):
    ids = tokenizer("12345 + 678", add_special_tokens=False)["input_ids"]
    pieces = [tokenizer.decode([i]) for i in ids]
    assert [p for p in pieces if p.strip().isdigit()] == list("12345678")
    assert tokenizer.decode(ids) == "12345 + 678"


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_batched_generation_equals_one_at_a_time(tokenizer, family):
    """Left padding must not change any answer (position ids come from the attention mask)."""
    model = build_scratch_model(tokenizer, family, 32, 2, 2, 64, 256, seed=0)
    prompts = [
        student_prompt(SKILLS.get(s).generate(1, i, 2).question) for s in ("addition", "logic") for i in range(4)
    ]
    one_by_one = greedy_answers(model, tokenizer, prompts, 12, batch_size=1)
    assert greedy_answers(model, tokenizer, prompts, 12, batch_size=8) == one_by_one


def test_batches_mask_prompt_and_padding(tokenizer):
    pairs = [
        (student_prompt("What is 2 + 2?"), student_completion("2 + 2 = 4", "4")),
        (student_prompt("Hi?"), " #### a"),
    ]
    examples = tokenize_pairs(tokenizer, pairs, 256)
    (ids, labels), *_ = length_grouped_batches(examples, 8, tokenizer.pad_token_id, 0)
    prompt_len = 1 + len(tokenizer(pairs[0][0], add_special_tokens=False)["input_ids"])
    row = next(r for r in range(2) if ids[r, 1:prompt_len].tolist() == examples[0][0][1:prompt_len])
    assert (labels[row, :prompt_len] == IGNORE).all() and (
        labels[row, prompt_len:][ids[row, prompt_len:] != tokenizer.pad_token_id] != IGNORE
    ).all()
    short = 1 - row
    assert (labels[short, len(examples[1][0]) :] == IGNORE).all(), "padding is never a target"


def test_training_lowers_the_loss(tokenizer):
    pairs = [
        (student_prompt(p.question), student_completion("\n".join(p.steps), p.answer))
        for p in (SKILLS.get("comparison").generate(0, i, 1) for i in range(200))
    ]
    batches = length_grouped_batches(tokenize_pairs(tokenizer, pairs, 256), 16, tokenizer.pad_token_id, 0)
    model = build_scratch_model(tokenizer, "gpt2", 32, 2, 2, 64, 256, seed=0)
    result = train(model, batches, TrainSettings(60, 16, 3e-3, 5, 0.0, 1.0, 0))
    assert result.final_loss < result.first_loss * 0.5
    passes, rest = divmod(60, len(batches))
    smallest = min(b[0].numel() for b in batches)
    assert result.steps == 60 and result.tokens >= passes * sum(b[0].numel() for b in batches) + rest * smallest
    assert not model.training and all(torch.isfinite(p).all() for p in model.parameters())


# The real student's pieces: formats, accumulation, packing, checkpointing (tests/test_training_real.py
# trains whole rounds through train_round).


def comparison_pairs(n):
    problems = [SKILLS.get("comparison").generate(0, i, 1) for i in range(n)]
    return [(p.question, "\n".join(p.steps), p.answer) for p in problems]


def test_conversation_is_the_students_view_of_a_row():
    assert conversation("What is 2 + 2?", "2 + 2 = 4", "4") == [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "2 + 2 = 4\n#### 4"},
    ]
    assert conversation("Q?", "", "a")[1]["content"] == "#### a"


def test_format_follows_the_tokenizer_and_the_recipe(tokenizer):
    assert student_format(tokenizer) == "plain"
    chat = copy.deepcopy(tokenizer)
    chat.chat_template = CHAT_TEMPLATE
    assert student_format(chat) == "chat_template"
    assert format_of(chat, "plain") == "plain"
    assert student_format(load_recipe()) == "plain"  # the scratch student has the run's own tokenizer


def test_plain_rows_encode_as_before(tokenizer):
    """encode_rows in the plain format gives the tokens tokenize_pairs always gave (the loop's old path)."""
    rows = comparison_pairs(5)
    old = tokenize_pairs(tokenizer, [(student_prompt(q), student_completion(r, a)) for q, r, a in rows], 256)
    assert encode_rows(tokenizer, "plain", rows, 256) == old


def step_batches_for(tokenizer, batch_size, accumulation):
    examples = encode_rows(tokenizer, "plain", comparison_pairs(48), 256)
    return step_batches(examples, batch_size, accumulation, tokenizer.pad_token_id, seed=0)


def test_accumulating_two_micro_batches_of_4_is_one_batch_of_8(tokenizer):
    big, small = step_batches_for(tokenizer, 8, 1), step_batches_for(tokenizer, 4, 2)
    assert [len(s) for s in small] == [2] * 6
    assert all(torch.equal(b[0][0], torch.cat([s[0][0], s[1][0]])) for b, s in zip(big, small, strict=True))
    models = [build_scratch_model(tokenizer, "llama", 32, 2, 2, 64, 256, seed=0) for _ in range(2)]
    one = train(models[0], big, TrainSettings(6, 8, 3e-3, 0, 0.0, 1.0, 0))
    two = train(models[1], small, TrainSettings(6, 4, 3e-3, 0, 0.0, 1.0, 0, grad_accumulation=2))
    assert one.final_loss == pytest.approx(two.final_loss, rel=1e-5)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_gradient_checkpointing_changes_memory_not_the_result(tokenizer):
    steps = step_batches_for(tokenizer, 8, 1)
    models = [build_scratch_model(tokenizer, "llama", 32, 2, 2, 64, 256, seed=0) for _ in range(2)]
    plain = train(models[0], steps, TrainSettings(3, 8, 3e-3, 0, 0.0, 1.0, 0))
    checkpointed = train(models[1], steps, TrainSettings(3, 8, 3e-3, 0, 0.0, 1.0, 0, gradient_checkpointing=True))
    assert plain.final_loss == pytest.approx(checkpointed.final_loss, rel=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_packed_examples_never_see_each_other(tokenizer, family):
    """Each example's logits inside a packed row equal its logits alone, and the same tokens are labelled."""
    model = build_scratch_model(tokenizer, family, 32, 2, 2, 64, 256, seed=0).eval()
    examples = encode_rows(tokenizer, "plain", comparison_pairs(6), 256)
    packed = pack(examples, 256)
    assert len(packed) < len(examples) and packing_isolates(model, torch.device("cpu"))
    labelled = sum(t != IGNORE for e in examples for t in e[1])
    assert sum(t != IGNORE for row in packed for t in row[1]) == labelled
    ids, labels, positions = packed[0]
    starts = [i for i, p in enumerate(positions) if p == 0] + [len(ids)]
    with torch.no_grad():
        together = model(input_ids=torch.tensor([ids]), position_ids=torch.tensor([positions]), use_cache=False)
        for start, end in itertools.pairwise(starts):
            alone = model(input_ids=torch.tensor([ids[start:end]])).logits[0]
            torch.testing.assert_close(together.logits[0, start:end], alone, atol=1e-4, rtol=1e-4)
            assert labels[start] == IGNORE  # no loss crosses into the next example


def test_packed_training_learns(tokenizer):
    examples = pack(encode_rows(tokenizer, "plain", comparison_pairs(200), 256), 256)
    steps = step_batches(examples, 4, 1, tokenizer.pad_token_id, 0)
    model = build_scratch_model(tokenizer, "gpt2", 32, 2, 2, 64, 256, seed=0)
    result = train(model, steps, TrainSettings(40, 4, 3e-3, 5, 0.0, 1.0, 0))
    assert result.final_loss < result.first_loss * 0.6


class MemoryCheckpoints:
    def __init__(self, stop_after=None):
        self.saved, self.stop_after = [], stop_after

    def load(self):
        return copy.deepcopy(self.saved[-1]) if self.saved else None

    def save(self, state):
        self.saved.append(copy.deepcopy(state))
        if len(self.saved) == self.stop_after:
            raise KeyboardInterrupt  # an injected stop right after a checkpoint


def test_a_stopped_loop_resumes_to_the_same_weights(tokenizer):
    steps = step_batches_for(tokenizer, 4, 2)
    settings = TrainSettings(12, 4, 3e-3, 2, 0.1, 1.0, 0, grad_accumulation=2, checkpoint_every=4)
    whole = build_scratch_model(tokenizer, "llama", 32, 2, 2, 64, 256, seed=0)
    expected = train(whole, steps, settings, MemoryCheckpoints())
    checkpoints = MemoryCheckpoints(stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        train(build_scratch_model(tokenizer, "llama", 32, 2, 2, 64, 256, seed=0), steps, settings, checkpoints)
    checkpoints.stop_after = None
    resumed_model = build_scratch_model(tokenizer, "llama", 32, 2, 2, 64, 256, seed=1)  # other weights: all restored
    resumed = train(resumed_model, steps, settings, checkpoints)
    assert resumed.resumed_at == 8 and resumed.tokens == expected.tokens
    assert (resumed.first_loss, resumed.final_loss) == (expected.first_loss, expected.final_loss)
    for a, b in zip(whole.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_prose_rows_train_on_their_text_and_answer_rows_on_a_marked_final_answer():
    from synthloop.records import Record
    from synthloop.training.format import row_conversation

    def row(kind, reasoning, answer):
        return Record(
            kind=kind, skill="s", question="q?", source="synthetic", round=1, reasoning=reasoning, answer=answer
        )

    assert row_conversation(row("refusal", "", "I can't help with that."))[1]["content"] == "I can't help with that."
    assert row_conversation(row("textbook", "", "Sections of text."))[1]["content"] == "Sections of text."
    assert row_conversation(row("exercise", "2 + 2 = 4", "4"))[1]["content"] == "2 + 2 = 4\n#### 4"
    assert row_conversation(row("solution", "", "4"))[1]["content"] == "#### 4"
    tokenizer = train_tokenizer(["I can't help with that. #### 4"], 300)
    (_, labels), *_ = encode_rows(tokenizer, "plain", [("q?", "", "I can't help with that.", "refusal")], 64)
    assert "####" not in tokenizer.decode([t for t in labels if t != IGNORE])
