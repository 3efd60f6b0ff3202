"""Can the student be built and trained on this machine? Asked before anything is generated or paid for.

A base model must be a local folder or a Hugging Face id already in the local cache, with its config,
tokenizer and weights there: nothing is downloaded, and no weight is read (the parameters are counted on
PyTorch's meta device). Training runs here in fp32 with AdamW, so it needs about 16 bytes a parameter
(weights, gradients, two moments) plus activations; that is compared with the memory available now
(the smaller of /proc/meminfo's MemAvailable and the cgroup's limit less its usage)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthloop.config import Recipe, RecipeError

BYTES_PER_PARAMETER = 16  # fp32 weights + gradients + AdamW's two moments
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
CGROUP_FILES = (  # (limit, usage): cgroup v2, then v1
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
)


@dataclass(frozen=True)
class Shape:
    """What the memory estimate needs to know of a model."""

    parameters: int
    hidden_size: int
    layers: int
    heads: int
    intermediate_size: int


@dataclass(frozen=True)
class StudentNeeds:
    parameters: int
    train_bytes: int
    available_bytes: int | None

    def line(self) -> str:
        have = size(self.available_bytes) if self.available_bytes is not None else "an unknown amount"
        return (
            f"student: {self.parameters:,} parameters, about {size(self.train_bytes)} to train; "
            f"this machine has {have} available"
        )


def size(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"


def check_student(recipe: Recipe) -> StudentNeeds:
    """The student's needs, or a one-line `RecipeError` saying what to fix."""
    needs = student_needs(recipe)
    if needs.available_bytes is not None and needs.train_bytes > needs.available_bytes:
        raise RecipeError(
            f"the student ({needs.parameters:,} parameters) needs about {size(needs.train_bytes)} to train and this "
            f"machine has {size(needs.available_bytes)} available; make student.architecture (or student.base) "
            "smaller, or lower student.train.batch_size or max_len"
        )
    return needs


def student_needs(recipe: Recipe) -> StudentNeeds:
    shape = scratch_shape(recipe) if recipe.student.base == "scratch" else base_shape(recipe.student.base)
    return StudentNeeds(shape.parameters, training_bytes(shape, recipe), available_memory_bytes())


def scratch_shape(recipe: Recipe) -> Shape:
    """Tied embeddings, positions, and per layer attention (4 h^2) and a gated MLP (3 h i, an upper bound)."""
    a, vocab = recipe.student.architecture, recipe.student.vocab_size
    per_layer = 4 * a.hidden_size**2 + 3 * a.hidden_size * a.intermediate_size
    parameters = vocab * a.hidden_size + a.max_positions * a.hidden_size + a.layers * per_layer
    return Shape(parameters, a.hidden_size, a.layers, a.heads, a.intermediate_size)


def training_bytes(shape: Shape, recipe: Recipe) -> int:
    """Optimizer state plus fp32 activations kept for the backward pass, attention scores included."""
    t = recipe.student.train
    per_token = shape.layers * (6 * shape.hidden_size + 2 * shape.intermediate_size)
    activations = 4 * t.batch_size * t.max_len * per_token
    attention = 4 * t.batch_size * shape.heads * t.max_len**2 * shape.layers
    return BYTES_PER_PARAMETER * shape.parameters + activations + attention


def base_shape(base: str) -> Shape:
    """The shape of a local or cached base model, read from its config; its tokenizer and weights must be there."""
    from transformers import AutoConfig, AutoTokenizer

    config = load_locally(AutoConfig, base, "config")
    load_locally(AutoTokenizer, base, "tokenizer")
    if not has_weights(base):
        raise RecipeError(
            f"student.base {base!r} has a config but no weights ({', '.join(WEIGHT_FILES[::2])}) in the folder or "
            "the local Hugging Face cache; download the whole model first"
        )
    hidden = first_int(config, "hidden_size", "n_embd", "d_model")
    intermediate = first_int(config, "intermediate_size", "n_inner", "ffn_dim") or 4 * hidden
    return Shape(
        count_parameters(config),
        hidden,
        first_int(config, "num_hidden_layers", "n_layer", "num_layers"),
        first_int(config, "num_attention_heads", "n_head") or 1,
        intermediate,
    )


def load_locally(auto: Any, base: str, what: str) -> Any:
    try:
        return auto.from_pretrained(base, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise RecipeError(
            f"student.base {base!r}: no usable {what} in a local folder or the local Hugging Face cache ({reason}); "
            "download the model first (huggingface-cli download ...) or give the path of a saved model folder"
        ) from None


def has_weights(base: str) -> bool:
    if Path(base).is_dir():
        return any((Path(base) / name).is_file() for name in WEIGHT_FILES)
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(base, name), str) for name in WEIGHT_FILES)


def first_int(config: Any, *names: str) -> int:
    return next((value for name in names if isinstance(value := getattr(config, name, None), int)), 0)


def count_parameters(config: Any) -> int:
    """Exact, without allocating: the model is built on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except (ValueError, TypeError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise RecipeError(f"student.base: {type(config).__name__} is not a causal language model ({reason})") from None
    return sum(p.numel() for p in model.parameters())


def available_memory_bytes() -> int | None:
    """Memory this process can still use: MemAvailable, or less where a cgroup limits the container."""
    candidates = [value for value in (mem_available(), cgroup_room()) if value is not None]
    if not candidates:
        try:
            return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    return min(candidates)


def mem_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def cgroup_room() -> int | None:
    for limit_file, usage_file in CGROUP_FILES:
        try:
            limit, usage = Path(limit_file).read_text().strip(), Path(usage_file).read_text().strip()
        except OSError:
            continue
        if limit.isdigit() and usage.isdigit() and int(limit) < 2**60:  # "max" or a huge v1 value: no limit
            return max(0, int(limit) - int(usage))
    return None
