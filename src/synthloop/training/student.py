"""The student across rounds: tokenizer once per run, model from scratch (round 1) or from the
previous round's checkpoint, trained on the round's mix, saved with `save_pretrained`."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from synthloop.config import Recipe
from synthloop.records import Record
from synthloop.storage.atomic import replace_dir
from synthloop.training.format import student_completion, student_prompt
from synthloop.training.model import build_scratch_model, load_model
from synthloop.training.packing import length_grouped_batches, tokenize_pairs
from synthloop.training.tokenizer import train_tokenizer
from synthloop.training.trainer import TrainResult, TrainSettings, train


def prepare_tokenizer(path: Path, recipe: Recipe, corpus: list[str]) -> None:
    """Train the run's tokenizer once (scratch students only); a resumed run reuses it."""
    if path.exists() or recipe.student.base != "scratch":
        return
    tokenizer = train_tokenizer(corpus, recipe.student.vocab_size)
    replace_dir(path, tokenizer.save_pretrained)


def load_student(
    recipe: Recipe, tokenizer_dir: Path, previous: Path | None
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    if previous is not None:
        return load_checkpoint(previous)
    if recipe.student.base != "scratch":
        return load_checkpoint(Path(recipe.student.base) if Path(recipe.student.base).exists() else recipe.student.base)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    a = recipe.student.architecture
    model = build_scratch_model(
        tokenizer, a.family, a.hidden_size, a.layers, a.heads, a.intermediate_size, a.max_positions, recipe.seed
    )
    return model, tokenizer


def load_checkpoint(path: Path | str) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """A round's checkpoint or the recipe's base, from disk or the local cache only (the preflight found it there)."""
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return load_model(path), tokenizer


def train_student(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[Record],
    recipe: Recipe,
    settings: TrainSettings,
) -> TrainResult:
    pairs = [(student_prompt(r.question), student_completion(r.reasoning, r.answer or "")) for r in rows]
    examples = tokenize_pairs(tokenizer, pairs, recipe.student.train.max_len)
    batches = length_grouped_batches(examples, settings.batch_size, tokenizer.pad_token_id, settings.seed)
    return train(model, batches, settings)


def save_student(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, result: TrainResult, out: Path) -> None:
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    stats = {
        "steps": result.steps,
        "tokens": result.tokens,
        "seconds": round(result.seconds, 3),
        "tokens_per_second": round(result.tokens_per_second, 1),
        "first_loss": round(result.first_loss, 4),
        "final_loss": round(result.final_loss, 4),
    }
    (out / "train_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
