"""`student.trainer: trl`: TRL's SFTTrainer on the same rows and settings as the builtin loop.

TRL gets the rows already tokenized, by the same code as the builtin trainer and evaluation
(format.py): `input_ids` and `completion_mask` columns (a processed dataset, which SFTTrainer takes as
it is), with `completion_only_loss`. Handing TRL prompt-completion text instead would let it
re-tokenize prompt and completion together and add special tokens its own way, which can differ from
the tokens the student is evaluated on. Steps, batch, accumulation, learning rate and warm-up, weight
decay, clipping, AdamW's betas and the cosine schedule down to a tenth of the peak match the builtin
loop. Batches are drawn at random, not grouped by length as the builtin loop groups them: TRL's
length-grouped sampler does not resume to the same order after a kill (measured: the final loss
differs), and its random sampler does. `save_steps` writes resumable checkpoints into `work/trl/`; a
rerun made from the same inputs passes `resume_from_checkpoint`."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from synthloop.training.packing import IGNORE, Example
from synthloop.training.trainer import CURVE_POINTS, TrainResult, TrainSettings

INPUTS = "inputs.txt"


def train_trl(
    model: torch.nn.Module,
    tokenizer: Any,
    examples: list[Example],
    settings: TrainSettings,
    max_len: int,
    packing: bool,
    work: Path,
    inputs: str,
) -> TrainResult:
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    disable_progress_bar()
    out = Path(work) / "trl"
    resume = same_inputs(out, inputs) and any(out.glob("checkpoint-*"))
    if not resume:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        (out / INPUTS).write_text(inputs)
    resumed_at = max((int(p.name.rsplit("-", 1)[1]) for p in out.glob("checkpoint-*")), default=0)
    data = Dataset.from_list(
        [{"input_ids": ids, "completion_mask": [int(t != IGNORE) for t in labels]} for ids, labels, *_ in examples]
    )
    every = settings.checkpoint_every
    config = SFTConfig(
        output_dir=str(out),
        max_steps=settings.steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accumulation,
        learning_rate=settings.learning_rate,
        warmup_steps=settings.warmup_steps,
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.grad_clip,
        adam_beta2=0.95,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": 0.1},
        seed=settings.seed,
        data_seed=settings.seed,
        bf16=settings.autocast == "bfloat16",
        fp16=settings.autocast == "float16",
        **checkpointing_args(SFTConfig, settings.gradient_checkpointing),
        max_length=max_len,
        packing=packing,  # bfd packing: position ids restart per example, like the builtin packing
        completion_only_loss=True,
        save_strategy="steps" if every else "no",
        save_steps=every or 500,
        save_total_limit=1,
        logging_steps=1,
        report_to="none",
        include_num_input_tokens_seen="all",
        use_cpu=settings.device == "cpu",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    clock = Clock(out, resumed_at)
    trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer, callbacks=[clock])
    trainer.remove_callback(PrinterCallback)  # the loop logs the round's figures; not every step's
    trainer.train(resume_from_checkpoint=True if resume else None)
    seconds = clock.seconds()
    model.eval()
    logged = [(int(entry["step"]), float(entry["loss"])) for entry in trainer.state.log_history if "loss" in entry]
    losses = [loss for _, loss in logged]
    every = max(1, len(logged) // CURVE_POINTS)
    last = len(logged) - 1
    curve = tuple((step, round(loss, 4)) for i, (step, loss) in enumerate(logged) if i % every == 0 or i == last)
    return TrainResult(
        settings.steps,
        int(trainer.state.num_input_tokens_seen),
        seconds,
        losses[0] if losses else float("nan"),
        losses[-1] if losses else float("nan"),
        resumed_at,
        curve,
    )


class Clock(TrainerCallback):
    """Training seconds across a resume: each checkpoint keeps the seconds spent up to it."""

    FILE = "synthloop_seconds.txt"

    def __init__(self, out: Path, resumed_at: int) -> None:
        self.out, self.start = out, time.perf_counter()
        try:
            self.before = float((out / f"checkpoint-{resumed_at}" / self.FILE).read_text())
        except (OSError, ValueError):
            self.before = 0.0

    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.start

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = self.out / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            (folder / self.FILE).write_text(f"{self.seconds():.6f}")


def checkpointing_args(config_class: Any, on: bool) -> dict[str, Any]:
    """transformers 5 renamed gradient_checkpointing to activation_checkpointing (the old name warns)."""
    fields = {f.name for f in dataclasses.fields(config_class)}
    name = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    return {name: on, f"{name}_kwargs": {"use_reentrant": False}}


def same_inputs(out: Path, inputs: str) -> bool:
    try:
        return (out / INPUTS).read_text() == inputs
    except OSError:
        return False
