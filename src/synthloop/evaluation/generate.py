"""Greedy, batched answers from the student for a list of prompts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerFast


@torch.inference_mode()
def greedy_answers(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerFast,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int = 128,
) -> list[str]:
    """The student's continuation of each prompt. Prompts are sorted by length so a batch pads
    little, and padded on the left so every row continues from its own last token."""
    model.eval()
    tokenizer.padding_side = "left"
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        texts = [tokenizer.bos_token + prompts[i] for i in rows]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        generated = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        continuations = tokenizer.batch_decode(generated[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        for i, text in zip(rows, continuations, strict=True):
            out[i] = text
    return out
