"""A tiny causal LM for the collapse lab's `skills` and `text` experiments: the project's tokenizer and
scratch Llama, trained from scratch each generation on token lists (the loss on every token after the
prompt), sampled in batches, and scored by mean token loss. Small enough that a generation takes
seconds on two CPU cores."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from synthloop.training.model import build_scratch_model
from synthloop.training.packing import IGNORE
from synthloop.training.tokenizer import train_tokenizer
from synthloop.training.trainer import cosine_lr

Example = tuple[list[int], int]  # token ids, and how many leading ones are prompt (not trained on)


@dataclass(frozen=True)
class TinyShape:
    family: str = "llama"  # learns these skills far faster than a GPT-2 of its size (README, demo budget)
    hidden_size: int = 64
    layers: int = 2
    heads: int = 4
    vocab_size: int = 384
    max_len: int = 80
    steps: int = 150
    batch_size: int = 32
    learning_rate: float = 3e-3


def tokenizer_for(texts: Sequence[str], vocab_size: int) -> Any:
    return train_tokenizer(list(texts), vocab_size)


def encode(tokenizer: Any, prompt: str, completion: str, max_len: int, bos: bool = True) -> Example:
    """BOS + prompt + completion + EOS, cut at max_len; the prompt's length (BOS included) not trained on.
    `bos=False` for a prompt that a chat template already opened."""
    head = [tokenizer.bos_token_id] * bos + tokenizer(prompt, add_special_tokens=False)["input_ids"]
    tail = [*tokenizer(completion, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    return ([*head, *tail][:max_len], len(head))


def collate(rows: Sequence[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), IGNORE)
    for i, (ids, prompt) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, prompt : len(ids)] = torch.tensor(ids[prompt:])
    return input_ids, labels


def train_model(tokenizer: Any, data: Sequence[Example], shape: TinyShape, seed: int, model: Any = None) -> Any:
    """`model` (or a new one from scratch) trained on `data` for `shape.steps` steps (the same compute
    whatever the data's size, so strategies compare at equal cost)."""
    if model is None:  # twice max_len of positions: a long prompt still has room for its answer
        width = shape.hidden_size
        model = build_scratch_model(
            tokenizer, shape.family, width, shape.layers, shape.heads, 4 * width, 2 * shape.max_len, seed
        )
    optimizer = torch.optim.AdamW(model.parameters(), lr=shape.learning_rate, betas=(0.9, 0.95), weight_decay=0.0)
    rng = random.Random(seed)
    model.train()
    for step in range(shape.steps):
        lr = cosine_lr(step, shape.steps, shape.learning_rate, 0)
        for group in optimizer.param_groups:
            group["lr"] = lr
        input_ids, labels = collate([data[rng.randrange(len(data))] for _ in range(shape.batch_size)], 0)
        loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return model.eval()


@torch.inference_mode()
def sample(
    model: Any, tokenizer: Any, prompts: Sequence[str], max_len: int, temperature: float, seed: int, bos: bool = True
) -> list[str]:
    """One continuation per prompt (greedy at temperature 0), decoded without special tokens."""
    torch.manual_seed(seed)
    tokenizer.padding_side = "left"
    outputs = []
    for start in range(0, len(prompts), 256):
        chunk = [tokenizer.bos_token * bos + p for p in prompts[start : start + 256]]
        batch = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        room = max(16, max_len - batch["input_ids"].shape[1])
        settings: dict[str, Any] = {"do_sample": temperature > 0, "max_new_tokens": room}
        if temperature > 0:
            settings |= {"temperature": temperature, "top_k": 0, "top_p": 1.0}
        out = model.generate(**batch, **settings, pad_token_id=tokenizer.pad_token_id)
        width = batch["input_ids"].shape[1]
        outputs.extend(tokenizer.decode(row[width:], skip_special_tokens=True) for row in out)
    return outputs


@torch.inference_mode()
def token_losses(model: Any, data: Sequence[Example]) -> list[float]:
    """Each example's mean next-token loss on its completion."""
    losses = []
    for start in range(0, len(data), 128):
        chunk = data[start : start + 128]
        input_ids, labels = collate(chunk, 0)
        logits = model(input_ids=input_ids).logits[:, :-1].float()
        target = labels[:, 1:]
        per_token = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE, reduction="none"
        ).view(target.shape)
        counts = (target != IGNORE).sum(1).clamp(min=1)
        losses.extend((per_token.sum(1) / counts).tolist())
    return losses
