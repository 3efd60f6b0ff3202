"""Tokenize (prompt, completion) pairs into length-grouped batches, one example per row.

One example per row (rather than several packed together) matches evaluation, where the student
sees a single question in its context. Rows of similar length share a batch, so padding stays
small; padding goes on the right, where causal attention never looks back at it, so no attention
mask is needed. Loss is on completion tokens only."""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

IGNORE = -100
Batch = tuple[torch.Tensor, torch.Tensor]  # (input_ids, labels), both [rows, length]


def tokenize_pairs(
    tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]], max_len: int
) -> list[tuple[list[int], list[int]]]:
    """Each pair as (input ids, labels) with BOS/EOS added, prompt tokens masked, cut at `max_len`."""
    prompts = tokenizer([p for p, _ in pairs], add_special_tokens=False)["input_ids"]
    completions = tokenizer([c for _, c in pairs], add_special_tokens=False)["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    out = []
    for prompt, completion in zip(prompts, completions, strict=True):
        ids = [bos, *prompt, *completion, eos][:max_len]
        labels = ([IGNORE] * (1 + len(prompt)) + [*completion, eos])[:max_len]
        out.append((ids, labels))
    return out


def length_grouped_batches(
    examples: list[tuple[list[int], list[int]]], batch_size: int, pad_id: int, seed: int
) -> list[Batch]:
    """Batches of similar-length examples, in a seeded random order."""
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)  # ties in length are broken randomly, so batches mix skills
    order.sort(key=lambda i: len(examples[i][0]))
    batches = []
    for start in range(0, len(order), batch_size):
        rows = [examples[i] for i in order[start : start + batch_size]]
        width = max(len(ids) for ids, _ in rows)
        ids = torch.full((len(rows), width), pad_id)
        labels = torch.full((len(rows), width), IGNORE)
        for r, (row_ids, row_labels) in enumerate(rows):
            ids[r, : len(row_ids)] = torch.tensor(row_ids)
            labels[r, : len(row_labels)] = torch.tensor(row_labels)
        batches.append((ids, labels))
    rng.shuffle(batches)
    return batches
