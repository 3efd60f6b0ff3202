"""The student's training loop: plain PyTorch over a Hugging Face model.

Measured here against TRL's SFTTrainer and a bare loop (bench/train_throughput.py): on a 2-core CPU
with a ~1M-parameter model, per-step framework overhead is a large share of each step, so the plain
loop is what the loop uses. It is still an ordinary HF model: `save_pretrained` per round, loadable
by any HF tool, and a real deployment can swap in TRL through the recipe in a later version."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from synthloop.training.packing import IGNORE, Batch


@dataclass(frozen=True)
class TrainSettings:
    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    weight_decay: float
    grad_clip: float
    seed: int


@dataclass(frozen=True)
class TrainResult:
    steps: int
    tokens: int  # tokens fed through the model, padding included
    seconds: float
    first_loss: float
    final_loss: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def lr_at(step: int, settings: TrainSettings) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < settings.warmup_steps:
        return settings.learning_rate * (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    return settings.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train(model: torch.nn.Module, batches: list[Batch], settings: TrainSettings) -> TrainResult:
    """Train for `settings.steps` steps, cycling through `batches` (reshuffled each pass)."""
    generator = torch.Generator().manual_seed(settings.seed)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.learning_rate,
        betas=(0.9, 0.95),
    )
    model.train()
    order: list[int] = []
    tokens, first_loss, loss_value, start = 0, float("nan"), float("nan"), time.perf_counter()
    for step in range(settings.steps):
        if not order:
            order = torch.randperm(len(batches), generator=generator).tolist()
        input_ids, labels = batches[order.pop()]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, settings)
        loss = causal_lm_loss(model, input_ids, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        tokens += input_ids.numel()
        if step == 0 or step == settings.steps - 1:  # .item() syncs; only read the loss we report
            loss_value = loss.item()
            first_loss = loss_value if step == 0 else first_loss
    seconds = time.perf_counter() - start
    model.eval()
    return TrainResult(settings.steps, tokens, seconds, first_loss, loss_value)


def causal_lm_loss(model: torch.nn.Module, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy on the labelled positions (computed here, so no logits copy is kept)."""
    logits = model(input_ids=input_ids).logits
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE
    )
