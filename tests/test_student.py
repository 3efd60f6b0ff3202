"""The student pieces: tokenizer, both model families, batched generation, and the training loop."""

import pytest
import torch

from synthloop.evaluation.generate import greedy_answers
from synthloop.registry import SKILLS
from synthloop.training.format import student_completion, student_prompt
from synthloop.training.model import build_scratch_model
from synthloop.training.packing import IGNORE, length_grouped_batches, tokenize_pairs
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
