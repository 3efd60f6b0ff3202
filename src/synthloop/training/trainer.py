"""The builtin training loop: plain PyTorch over a Hugging Face model (full weights or LoRA adapters).

Measured against TRL's SFTTrainer and a bare loop (bench/train_throughput.py): on a small CPU model,
per-step framework overhead is a large share of each step, so the default is this plain loop; TRL is
one recipe key away (`student.trainer: trl`, training/trl_trainer.py).

A step is `grad_accumulation` micro-batches. Their loss is summed over tokens and divided by the
step's labelled tokens, so 2 x 4 rows give the same gradient as one batch of 8 (a mean per
micro-batch would weigh a short micro-batch's tokens more). Every `checkpoint_every` steps the
trainable weights, the optimizer, the data order and the random state go to `checkpoints`, and a
resumed loop continues from there to the same final weights as one that was never stopped."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

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
    grad_accumulation: int = 1
    gradient_checkpointing: bool = False
    checkpoint_every: int = 0  # 0: no mid-round checkpoint
    device: str = "cpu"
    autocast: str | None = None  # "bfloat16" or "float16": mixed precision over float32 master weights


@dataclass(frozen=True)
class TrainResult:
    steps: int
    tokens: int  # tokens fed through the model, padding included
    seconds: float
    first_loss: float
    final_loss: float
    resumed_at: int = 0  # the step a resumed round continued from (0: it ran from the start)
    loss_curve: tuple[tuple[int, float], ...] = ()  # (step, loss) at about CURVE_POINTS steps, for the report

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


class Checkpoints(Protocol):
    def load(self) -> dict[str, Any] | None: ...
    def save(self, state: dict[str, Any]) -> None: ...


CURVE_POINTS = 50  # losses read per round for the curve (each read syncs a GPU; 50 cost nothing)


def cosine_lr(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to a tenth of `peak` at `steps`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def lr_at(step: int, settings: TrainSettings) -> float:
    return cosine_lr(step, settings.steps, settings.learning_rate, settings.warmup_steps)


def train(
    model: torch.nn.Module,
    batches: list[Batch] | list[list[Batch]],
    settings: TrainSettings,
    checkpoints: Checkpoints | None = None,
) -> TrainResult:
    """Train for `settings.steps` steps, cycling through the steps in `batches` (reshuffled each pass).
    An element of `batches` is one step's micro-batches, or a single batch (a step of one)."""
    steps = [b if isinstance(b, list) else [b] for b in batches]
    device = torch.device(settings.device)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for _, p in trainable if p.dim() >= 2], "weight_decay": settings.weight_decay},
            {"params": [p for _, p in trainable if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=settings.learning_rate,
        betas=(0.9, 0.95),
    )
    scaler = torch.amp.GradScaler(device.type, enabled=settings.autocast == "float16")
    if settings.gradient_checkpointing:
        checkpointing(model, True)
    state = LoopState(torch.Generator().manual_seed(settings.seed))
    torch.manual_seed(settings.seed)  # dropout (LoRA's) draws from the global generator
    saved = checkpoints.load() if checkpoints else None
    if saved is not None:
        state.restore(saved, model, optimizer, scaler)
    resumed_at = state.step
    model.train()
    start = time.perf_counter() - state.seconds
    while state.step < settings.steps:
        if not state.order:
            state.order = torch.randperm(len(steps), generator=state.generator).tolist()
        micro = steps[state.order.pop()]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(state.step, settings)
        loss = accumulate(model, micro, settings, scaler)
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_([p for _, p in trainable], settings.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        state.tokens += sum(b[0].numel() for b in micro)
        last, every_point = settings.steps - 1, max(1, settings.steps // CURVE_POINTS)
        if state.step in (0, last) or state.step % every_point == 0:  # .item() syncs: only the losses reported
            value = loss.item()
            state.curve.append((state.step + 1, round(value, 4)))
            if state.step in (0, last):
                state.last_loss = value
                state.first_loss = value if state.step == 0 else state.first_loss
        state.step += 1
        every = settings.checkpoint_every
        if checkpoints and every and state.step % every == 0 and state.step < settings.steps:
            state.seconds = time.perf_counter() - start
            checkpoints.save(state.snapshot(model, optimizer, scaler))
    seconds = time.perf_counter() - start
    if settings.gradient_checkpointing:
        checkpointing(model, False)
    model.eval()
    curve = tuple(state.curve)
    return TrainResult(settings.steps, state.tokens, seconds, state.first_loss, state.last_loss, resumed_at, curve)


def checkpointing(model: Any, on: bool) -> None:
    """Activation (gradient) checkpointing on or off; transformers 5 renamed the methods."""
    new = hasattr(model, "activation_checkpointing_enable")
    if on:
        kwargs = {"use_reentrant": False}  # no need for inputs that require grad (LoRA's frozen embeddings)
        if new:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        (model.activation_checkpointing_disable if new else model.gradient_checkpointing_disable)()


def accumulate(model: torch.nn.Module, micro: list[Batch], settings: TrainSettings, scaler: Any) -> torch.Tensor:
    """Forward and backward over one step's micro-batches; the loss is the mean over the step's labelled tokens."""
    device = torch.device(settings.device)
    total = sum(int((b[1][:, 1:] != IGNORE).sum()) for b in micro)
    step_loss = torch.zeros((), device=device)
    for batch in micro:
        with autocast(device, settings.autocast):
            loss = token_loss_sum(model, [t.to(device) for t in batch]) / max(1, total)
        scaler.scale(loss).backward()
        step_loss += loss.detach().float()
    return step_loss


def autocast(device: torch.device, dtype: str | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=getattr(torch, dtype))


def token_loss_sum(model: torch.nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
    """Summed next-token cross-entropy on the labelled positions (computed here, so no logits copy is kept).
    A packed batch carries position ids: with no attention mask and no cache, transformers keeps its
    examples apart."""
    input_ids, labels, *rest = batch
    logits = model(input_ids=input_ids, position_ids=rest[0] if rest else None, use_cache=False).logits
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
        labels[:, 1:].reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )


def causal_lm_loss(model: torch.nn.Module, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy on the labelled positions of one batch."""
    return token_loss_sum(model, [input_ids, labels]) / max(1, int((labels[:, 1:] != IGNORE).sum()))


@dataclass
class LoopState:
    """What a stopped loop needs besides the weights and the optimizer to go on exactly where it was."""

    generator: torch.Generator
    step: int = 0
    tokens: int = 0
    seconds: float = 0.0
    first_loss: float = float("nan")
    last_loss: float = float("nan")
    order: list[int] | None = None
    curve: list[tuple[int, float]] | None = None

    def __post_init__(self) -> None:
        self.order = self.order or []
        self.curve = self.curve or []

    def snapshot(self, model: torch.nn.Module, optimizer: Any, scaler: Any) -> dict[str, Any]:
        return {
            "step": self.step,
            "tokens": self.tokens,
            "seconds": self.seconds,
            "first_loss": self.first_loss,
            "last_loss": self.last_loss,
            "order": list(self.order),
            "curve": list(self.curve),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "weights": {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad},
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
        }

    def restore(self, saved: dict[str, Any], model: torch.nn.Module, optimizer: Any, scaler: Any) -> None:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in saved["weights"].items():
                params[name].copy_(value)
        optimizer.load_state_dict(saved["optimizer"])
        if saved["scaler"]:
            scaler.load_state_dict(saved["scaler"])
        self.generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        if saved["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        self.step, self.tokens, self.seconds = saved["step"], saved["tokens"], saved["seconds"]
        self.first_loss, self.last_loss, self.order = saved["first_loss"], saved["last_loss"], list(saved["order"])
        self.curve = [tuple(point) for point in saved.get("curve", [])]  # a checkpoint from before curves has none
