"""The student across rounds: what the loop calls to train one round and to hear its answers.

    train_round(recipe, rows, previous, tokenizer_dir, work, out, seed) -> train_stats
    answer(checkpoint, questions, recipe) -> outputs
    completion_loss(checkpoint, rows, recipe) -> mean token loss   (drift on held-out golden rows)
    conversation(question, reasoning, answer) -> messages     (the train shards' `messages` column)
    student_format(recipe) -> "chat_template" | "plain"       (for the manifest)

A round starts from the scratch model (round 1, the run's tokenizer), the recipe's base, or the
previous round's student, trains with the recipe's trainer (builtin, trl or command), and saves an HF
checkpoint (or LoRA adapters) with `train_stats.json` into `out`. Mid-round state lives in `work`,
so a killed round resumes where it was; `work` is removed once `out` is saved."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from synthloop.config import Recipe, RecipeError
from synthloop.evaluation.generate import generate_ids, vllm_answers, vllm_available
from synthloop.records import Record
from synthloop.storage.atomic import replace_dir
from synthloop.training import checkpoint as ckpt
from synthloop.training.command import TrainerFailed, run_command, write_chat_jsonl
from synthloop.training.device import dtype_name, resolve_device, resolve_dtype
from synthloop.training.format import (
    conversation,
    format_of,
    prompt_ids,
    student_format,
)
from synthloop.training.lora import is_adapter
from synthloop.training.packing import (
    IGNORE,
    collate,
    encode_rows,
    pack,
    packing_isolates,
    step_batches,
)
from synthloop.training.resume import FolderCheckpoints, round_digest
from synthloop.training.tokenizer import train_tokenizer
from synthloop.training.trainer import TrainResult, TrainSettings, token_loss_sum, train

__all__ = [
    "TrainerFailed",
    "answer",
    "completion_loss",
    "conversation",
    "prepare_tokenizer",
    "student_format",
    "train_round",
]

Log = Callable[[str], None]


def train_round(
    recipe: Recipe,
    rows: list[Record],
    previous: Path | None,
    tokenizer_dir: Path,
    work: Path,
    out: Path,
    seed: int,
    log: Log = print,
) -> dict[str, Any]:
    """Train one round's student on `rows` and save it into `out`; returns (and writes) its train_stats."""
    if not rows:
        raise ValueError("train_round: no training rows")
    work, out = Path(work), Path(out)
    work.mkdir(parents=True, exist_ok=True)
    inputs = round_digest(recipe, rows, previous, seed)
    if recipe.student.trainer == "command":
        stats = command_round(recipe, rows, previous, tokenizer_dir, work, out, log)
    else:
        stats = torch_round(recipe, rows, previous, tokenizer_dir, work, out, seed, inputs)
    (out / "train_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)  # out is saved: the mid-round state is no longer needed
    return stats


def torch_round(
    recipe: Recipe,
    rows: list[Record],
    previous: Path | None,
    tokenizer_dir: Path,
    work: Path,
    out: Path,
    seed: int,
    inputs: str,
) -> dict[str, Any]:
    s, t = recipe.student, recipe.student.train
    device = resolve_device(s.device)
    dtype = resolve_dtype(s.dtype, device)
    model, tokenizer = ckpt.trainable_student(recipe, previous, tokenizer_dir, device, dtype)
    fmt = format_of(tokenizer, s.chat_template)
    settings = round_settings(recipe, seed % 2**31, device, dtype)
    examples = encode_rows(tokenizer, fmt, [(r.question, r.reasoning, r.answer, r.kind) for r in rows], t.max_len)
    if s.trainer == "trl":
        from synthloop.training.trl_trainer import train_trl

        result = train_trl(model, tokenizer, examples, settings, t.max_len, t.packing, work, inputs)
    else:
        if t.packing:
            if not packing_isolates(model, device):
                raise RecipeError(
                    f"student.train.packing: this model ({type(model).__name__}) lets packed examples attend to each "
                    "other; set packing: false"
                )
            examples = pack(examples, t.max_len)
        steps = step_batches(examples, t.batch_size, t.grad_accumulation, tokenizer.pad_token_id, settings.seed)
        result = train(model, steps, settings, FolderCheckpoints(work, inputs))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    ckpt.save_student_folder(model, tokenizer, out, dtype, merge=bool(s.lora and s.lora.merge))
    return {
        **result_stats(result),
        "trainer": s.trainer,
        "device": str(device),
        "dtype": dtype_name(dtype),
        "format": fmt,
        "lora": s.lora.model_dump() if s.lora else None,
        "trainable_parameters": trainable,
        "resumed_at_step": result.resumed_at,
    }


def round_settings(recipe: Recipe, seed: int, device: torch.device, dtype: torch.dtype) -> TrainSettings:
    t = recipe.student.train
    return TrainSettings(
        t.steps_per_round,
        t.batch_size,
        t.learning_rate,
        t.warmup_steps,
        t.weight_decay,
        t.grad_clip,
        seed,
        grad_accumulation=t.grad_accumulation,
        gradient_checkpointing=t.gradient_checkpointing,
        checkpoint_every=t.checkpoint_every,
        device=str(device),
        autocast=None if dtype == torch.float32 else dtype_name(dtype),
    )


def command_round(
    recipe: Recipe, rows: list[Record], previous: Path | None, tokenizer_dir: Path, work: Path, out: Path, log: Log
) -> dict[str, Any]:
    """Rows to chat JSONL, the external trainer run on them, its checkpoint checked and given a tokenizer."""
    data = work / "data.jsonl"
    write_chat_jsonl(rows, data)
    base = str(previous) if previous is not None else starting_point(recipe, tokenizer_dir, work)
    out.mkdir(parents=True, exist_ok=True)
    ran = run_command(recipe.student.command or "", data, base, out, log)  # the recipe requires a command here
    if not (out / "tokenizer_config.json").is_file():
        ckpt.load_tokenizer(base).save_pretrained(out)
    tokenizer = ckpt.load_tokenizer(out)
    return {
        "steps": None,
        "tokens": None,
        "seconds": round(ran["seconds"], 3),
        "tokens_per_second": None,
        "first_loss": None,
        "final_loss": None,
        "trainer": "command",
        "device": "external",
        "dtype": "external",
        "format": format_of(tokenizer, recipe.student.chat_template),
        "lora": None,
        "rows": len(rows),
    }


def starting_point(recipe: Recipe, tokenizer_dir: Path, work: Path) -> str:
    """{base} for round 1: the recipe's base, or the freshly built scratch model saved in `work`."""
    if recipe.student.base != "scratch":
        return recipe.student.base
    folder = work / "base"
    if not ckpt.has_checkpoint(folder):
        tokenizer = ckpt.load_tokenizer(tokenizer_dir)
        model = ckpt.base_weights(recipe, tokenizer, torch.float32)
        replace_dir(folder, lambda tmp: (model.save_pretrained(tmp), tokenizer.save_pretrained(tmp)))
    return str(folder)


def result_stats(result: TrainResult) -> dict[str, Any]:
    return {
        "steps": result.steps,
        "tokens": result.tokens,
        "seconds": round(result.seconds, 3),
        "tokens_per_second": round(result.tokens_per_second, 1),
        "first_loss": round(result.first_loss, 4),
        "final_loss": round(result.final_loss, 4),
        "loss_curve": [list(point) for point in result.loss_curve],
    }


def answer(checkpoint: Path, questions: list[str], recipe: Recipe) -> list[str]:
    """The student's greedy answers, asked in the template it was trained on, in batches."""
    s, e = recipe.student, recipe.evaluation
    device = resolve_device(s.device)
    dtype = resolve_dtype(s.dtype, device)
    checkpoint = Path(checkpoint)
    tokenizer = ckpt.load_tokenizer(checkpoint)
    fmt = format_of(tokenizer, s.chat_template)
    prompts = [prompt_ids(tokenizer, fmt, q) for q in questions]
    if e.engine != "hf" and device.type == "cuda" and vllm_available():
        merged = checkpoint / ckpt.MERGED
        if merged.is_dir() or not is_adapter(checkpoint):
            return vllm_answers(str(merged if merged.is_dir() else checkpoint), tokenizer, prompts, e.max_new_tokens)
        if s.base != "scratch":  # a scratch base exists only in memory: HF generate below
            rank = s.lora.r if s.lora else 16
            return vllm_answers(s.base, tokenizer, prompts, e.max_new_tokens, str(checkpoint), rank)
    model, _ = ckpt.eval_student(checkpoint, recipe, device, dtype)
    return generate_ids(model, tokenizer, prompts, e.max_new_tokens, e.batch_size)


@torch.inference_mode()
def completion_loss(checkpoint: Path, rows: list[Record], recipe: Recipe) -> float | None:
    """The student's mean next-token loss on the rows' reference completions, in its own format (the
    golden drift figure: it rises as the student moves away from the real data). None for no rows."""
    if not rows:
        return None
    s = recipe.student
    device = resolve_device(s.device)
    model, tokenizer = ckpt.eval_student(Path(checkpoint), recipe, device, resolve_dtype(s.dtype, device))
    fmt = format_of(tokenizer, s.chat_template)
    examples = encode_rows(tokenizer, fmt, [(r.question, r.reasoning, r.answer, r.kind) for r in rows], s.train.max_len)
    total, count = 0.0, 0
    for start in range(0, len(examples), 32):
        ids, labels = (t.to(device) for t in collate(examples[start : start + 32], tokenizer.pad_token_id))
        total += float(token_loss_sum(model, [ids, labels]))
        count += int((labels[:, 1:] != IGNORE).sum())
    return total / count if count else None


def prepare_tokenizer(path: Path, recipe: Recipe, corpus: list[str]) -> None:
    """Train the run's tokenizer once (scratch students only); a resumed run reuses it."""
    if path.exists() or recipe.student.base != "scratch":
        return
    tokenizer = train_tokenizer(corpus, recipe.student.vocab_size)
    replace_dir(path, tokenizer.save_pretrained)
