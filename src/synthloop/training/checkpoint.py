"""Students on disk: what a round starts from, what it saves, what evaluation loads.

A round folder is a full HF checkpoint (config.json, weights, tokenizer) or, with LoRA, the adapters
and the tokenizer (the base stays at `student.base`), plus `merged/` full weights with `lora.merge`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from synthloop.config import Recipe
from synthloop.training.lora import add_adapters, is_adapter, load_adapters, save_merged
from synthloop.training.model import build_scratch_model

MERGED = "merged"


def trainable_student(
    recipe: Recipe, previous: Path | None, tokenizer_dir: Path, device: torch.device, dtype: torch.dtype
) -> tuple[torch.nn.Module, Any]:
    """The model a round trains, on `device`: full weights in float32 (mixed precision runs over them), or a
    base in `dtype` under LoRA adapters (a new set in round 1, the previous round's afterwards)."""
    s = recipe.student
    lora_base = s.lora is not None or (previous is not None and is_adapter(previous))
    weights_dtype = dtype if lora_base else torch.float32
    if previous is not None and is_adapter(previous):
        tokenizer = load_tokenizer(previous)
        model = load_adapters(base_weights(recipe, tokenizer, weights_dtype), previous, trainable=True)
    elif previous is not None:
        model, tokenizer = load_weights(previous, weights_dtype), load_tokenizer(previous)
    else:
        tokenizer = load_tokenizer(tokenizer_dir if s.base == "scratch" else s.base)
        model = base_weights(recipe, tokenizer, weights_dtype)
    if s.lora is not None and not hasattr(model, "peft_config"):
        torch.manual_seed(recipe.seed)  # the adapters' initial weights: the same run gives the same student
        model = add_adapters(model, s.lora)
    return model.to(device), tokenizer


def base_weights(recipe: Recipe, tokenizer: Any, dtype: torch.dtype) -> torch.nn.Module:
    """The recipe's base: loaded, or the scratch model, which the run's tokenizer and seed rebuild exactly
    (so a scratch student's LoRA adapters find the same base in every round)."""
    s = recipe.student
    if s.base != "scratch":
        return load_weights(s.base, dtype)
    a = s.architecture
    model = build_scratch_model(
        tokenizer, a.family, a.hidden_size, a.layers, a.heads, a.intermediate_size, a.max_positions, recipe.seed
    )
    return model.to(dtype)


def eval_student(checkpoint: Path, recipe: Recipe, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    """A round's student ready to generate: full weights, or the base with the adapters merged in memory."""
    checkpoint = Path(checkpoint)
    if (checkpoint / MERGED / "config.json").is_file():
        model = load_weights(checkpoint / MERGED, dtype)
    elif is_adapter(checkpoint):
        base = base_weights(recipe, load_tokenizer(checkpoint), dtype)
        model = load_adapters(base, checkpoint, trainable=False).merge_and_unload()
    else:
        model = load_weights(checkpoint, dtype)
    model.eval()
    return model.to(device), load_tokenizer(checkpoint)


def save_student_folder(model: Any, tokenizer: Any, out: Path, dtype: torch.dtype, merge: bool) -> None:
    """Adapters (and `merged/` when asked) for a LoRA student; full weights in the run's dtype otherwise."""
    out.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "peft_config"):
        model.save_pretrained(out)
        if merge:
            save_merged(model.merge_and_unload(), tokenizer, out / MERGED)
    else:
        model.to(dtype).save_pretrained(out)
    tokenizer.save_pretrained(out)


def load_weights(path: str | Path, dtype: torch.dtype) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, local_files_only=True)


def load_tokenizer(path: str | Path) -> Any:
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def has_checkpoint(folder: Path) -> bool:
    """config.json and weights (single or sharded safetensors / PyTorch bin) in `folder`."""
    from synthloop.training.preflight import WEIGHT_FILES

    return (folder / "config.json").is_file() and any((folder / name).is_file() for name in WEIGHT_FILES)
