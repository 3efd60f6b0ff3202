"""Training rows as tokens: (input ids, labels) per example, prompt tokens masked, then grouped into
length-sorted batches, or packed several to a row.

One example per row by default: it matches evaluation, where the student sees a single question in
its context. Rows of similar length share a batch, so padding stays small; padding goes on the right,
where causal attention never looks back at it, so no attention mask is needed.

Packing (`train.packing`) fills each `max_len` row with several examples. Each example's position ids
start again at 0, and the model is called without an attention mask and without a cache, so
transformers builds a block-diagonal causal mask from the position ids: no example attends to another
(`packing_isolates` checks that on the model itself before training). No loss crosses a boundary either:
the first token of every example is part of its prompt, so its label is masked."""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from synthloop.training.format import Format, completion_ids, prompt_ids

IGNORE = -100
Batch = tuple[torch.Tensor, ...]  # (input_ids, labels) or (input_ids, labels, position_ids), each [rows, length]
Example = tuple[list[int], ...]  # the same, for one row, as lists


def tokenize_pairs(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]], max_len: int) -> list[Example]:
    """Each plain-text pair as (input ids, labels) with BOS/EOS added, prompt tokens masked, cut at `max_len`."""
    prompts = tokenizer([p for p, _ in pairs], add_special_tokens=False)["input_ids"]
    completions = tokenizer([c for _, c in pairs], add_special_tokens=False)["input_ids"]
    bos = [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]
    return [
        example(bos + prompt, [*completion, tokenizer.eos_token_id], max_len)
        for prompt, completion in zip(prompts, completions, strict=True)
    ]


def encode_rows(
    tokenizer: PreTrainedTokenizerBase, fmt: Format, rows: Sequence[tuple[str, ...]], max_len: int
) -> list[Example]:
    """(question, reasoning, answer[, kind]) rows in the student's format (format.py), the completion alone
    labelled."""
    return [
        example(prompt_ids(tokenizer, fmt, q), completion_ids(tokenizer, fmt, q, *rest), max_len) for q, *rest in rows
    ]


def example(prompt: list[int], completion: list[int], max_len: int) -> Example:
    return [*prompt, *completion][:max_len], ([IGNORE] * len(prompt) + completion)[:max_len]


def pack(examples: Sequence[Example], max_len: int) -> list[Example]:
    """First-fit decreasing into rows of at most `max_len` tokens; positions restart with each example."""
    rows: list[list[Example]] = []
    room: list[int] = []
    for ids, labels in sorted(examples, key=lambda e: -len(e[0])):
        slot = next((r for r, free in enumerate(room) if free >= len(ids)), None)
        if slot is None:
            rows.append([])
            room.append(max_len)
            slot = len(rows) - 1
        rows[slot].append((ids, labels))
        room[slot] -= len(ids)
    return [
        (
            [t for ids, _ in row for t in ids],
            [t for _, labels in row for t in labels],
            [p for ids, _ in row for p in range(len(ids))],
        )
        for row in rows
    ]


def step_batches(
    examples: Sequence[Example], batch_size: int, accumulation: int, pad_id: int, seed: int
) -> list[list[Batch]]:
    """Optimizer steps, each `accumulation` micro-batches of `batch_size` rows. The rows of a step are chosen
    as one batch of batch_size x accumulation would be, so accumulating is the same step as one big batch."""
    steps = []
    for big in length_grouped_batches(examples, batch_size * accumulation, pad_id, seed):
        micro = [tuple(t[i : i + batch_size] for t in big) for i in range(0, big[0].shape[0], batch_size)]
        steps.append(micro)
    return steps


def length_grouped_batches(examples: Sequence[Example], batch_size: int, pad_id: int, seed: int) -> list[Batch]:
    """Batches of similar-length examples, in a seeded random order."""
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)  # ties in length are broken randomly, so batches mix skills
    order.sort(key=lambda i: len(examples[i][0]))
    starts = range(0, len(order), batch_size)
    batches = [collate([examples[i] for i in order[s : s + batch_size]], pad_id) for s in starts]
    rng.shuffle(batches)
    return batches


def collate(rows: Sequence[Example], pad_id: int) -> Batch:
    width = max(len(row[0]) for row in rows)
    ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), IGNORE)
    positions = torch.arange(width).repeat(len(rows), 1)
    for r, row in enumerate(rows):
        ids[r, : len(row[0])] = torch.tensor(row[0])
        labels[r, : len(row[1])] = torch.tensor(row[1])
        if len(row) > 2:  # packed: each example's positions, then padding continuing the last one
            last = row[2][-1] + 1 if row[2] else 0
            positions[r] = torch.tensor([*row[2], *range(last, last + width - len(row[2]))])
    return (ids, labels, positions) if len(rows[0]) > 2 else (ids, labels)


@torch.no_grad()
def packing_isolates(model: torch.nn.Module, device: torch.device) -> bool:
    """Whether this model keeps packed examples apart: the second example's logits packed after a first one
    equal its logits alone (transformers derives the block mask from restarting position ids)."""
    first, second = [5, 6, 7, 8, 9], [10, 11, 12]
    vocab = model.get_input_embeddings().num_embeddings
    first, second = [t % vocab for t in first], [t % vocab for t in second]
    packed = torch.tensor([first + second], device=device)
    positions = torch.tensor([[*range(len(first)), *range(len(second))]], device=device)
    was_training = model.training
    model.eval()
    together = model(input_ids=packed, position_ids=positions, use_cache=False).logits[0, len(first) :]
    alone = model(input_ids=torch.tensor([second], device=device), use_cache=False).logits[0]
    model.train(was_training)
    return torch.allclose(together.float(), alone.float(), atol=1e-3, rtol=1e-3)
