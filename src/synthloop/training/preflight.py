"""Can the student be built and trained on this machine? Asked before anything is generated or paid for.

A base model must be a local folder or a Hugging Face id already in the local cache, with its config,
tokenizer and weights there, and be a causal language model: nothing is downloaded, and no weight is
read (the model is built on PyTorch's meta device, which also lists the layers LoRA can target). The
trainer must be usable (TRL installed; the command's program on PATH), and so must the evaluation
engine and the device.

Memory: full training keeps float32 weights, gradients and AdamW's two moments, 16 bytes a parameter
(bf16 runs as mixed precision over them); LoRA keeps the frozen base in the run's dtype and 16 bytes a
parameter for the adapters only. Activations kept for the backward pass (in the dtype; one layer's
worth plus each layer's input under gradient checkpointing) and the logits come on top. That is
compared with the GPU's free memory on CUDA, else with the memory available now (the smaller of
/proc/meminfo's MemAvailable and the cgroup's limit less its usage)."""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthloop.config import Recipe, RecipeError, error_line

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
SHELL_WORDS = {"cd", "env", "exec", "export", "set", "source", ".", "time", "nice", "nohup", "(", "{"}


@dataclass(frozen=True)
class Shape:
    """What the memory estimate needs to know of a model."""

    parameters: int
    hidden_size: int
    layers: int
    heads: int
    intermediate_size: int
    vocab: int = 0
    lora_parameters: int = 0  # the adapters' size, under student.lora


@dataclass(frozen=True)
class StudentNeeds:
    parameters: int
    train_bytes: int
    available_bytes: int | None
    device: str = "cpu"

    def line(self) -> str:
        have = size(self.available_bytes) if self.available_bytes is not None else "an unknown amount"
        where = "this machine has" if self.device == "cpu" else f"{self.device} has"
        needs = f"about {size(self.train_bytes)} to train"
        return f"student: {self.parameters:,} parameters, {needs}; {where} {have} available"


def size(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"


def check_student(recipe: Recipe) -> StudentNeeds:
    """The student's needs, or a one-line `RecipeError` saying what to fix."""
    check_trainer(recipe)
    check_device(recipe)
    needs = student_needs(recipe)
    if needs.available_bytes is not None and needs.train_bytes > needs.available_bytes:
        raise RecipeError(
            f"the student ({needs.parameters:,} parameters) needs about {size(needs.train_bytes)} to train and "
            f"{'this machine' if needs.device == 'cpu' else needs.device} has {size(needs.available_bytes)} "
            "available; make student.architecture (or student.base) smaller, use student.lora, or lower "
            "student.train.batch_size or max_len (grad_accumulation keeps the effective batch)"
        )
    return needs


def student_needs(recipe: Recipe) -> StudentNeeds:
    from synthloop.training.device import resolve_device, resolve_dtype

    device = resolve_device(recipe.student.device)
    shape = scratch_shape(recipe) if recipe.student.base == "scratch" else base_shape(recipe.student.base, recipe)
    half = resolve_dtype(recipe.student.dtype, device).itemsize < 4
    return StudentNeeds(shape.parameters, training_bytes(shape, recipe, half), available_bytes(device), device.type)


def scratch_shape(recipe: Recipe) -> Shape:
    """Tied embeddings, positions, and per layer attention (4 h^2) and a gated MLP (3 h i, an upper bound)."""
    a, vocab = recipe.student.architecture, recipe.student.vocab_size
    per_layer = 4 * a.hidden_size**2 + 3 * a.hidden_size * a.intermediate_size
    parameters = vocab * a.hidden_size + a.max_positions * a.hidden_size + a.layers * per_layer
    lora = recipe.student.lora
    adapters = lora_parameters(scratch_meta_model(recipe), lora) if lora is not None else 0
    return Shape(parameters, a.hidden_size, a.layers, a.heads, a.intermediate_size, vocab, adapters)


class VocabularyOnly:
    """Enough of a tokenizer to build the scratch model's shape (its size and special ids)."""

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


def scratch_meta_model(recipe: Recipe) -> Any:
    import torch

    from synthloop.training.model import build_scratch_model

    a = recipe.student.architecture
    with torch.device("meta"):
        return build_scratch_model(
            VocabularyOnly(recipe.student.vocab_size), a.family, a.hidden_size, a.layers, a.heads,
            a.intermediate_size, a.max_positions, 0,
        )  # fmt: skip


def training_bytes(shape: Shape, recipe: Recipe, half: bool = False) -> int:
    """Weights and optimizer state, activations kept for the backward pass (attention scores included), logits."""
    t, per_value = recipe.student.train, 2 if half else 4
    if recipe.student.lora is not None:
        state = shape.parameters * per_value + BYTES_PER_PARAMETER * shape.lora_parameters
    else:
        state = BYTES_PER_PARAMETER * shape.parameters
    tokens = t.batch_size * t.max_len
    per_layer = tokens * (6 * shape.hidden_size + 2 * shape.intermediate_size)
    per_layer += t.batch_size * shape.heads * t.max_len**2
    if t.gradient_checkpointing:  # each layer's input kept, one layer's activations at a time
        activations = shape.layers * tokens * shape.hidden_size + per_layer
    else:
        activations = shape.layers * per_layer
    logits = tokens * shape.vocab * (per_value + 4)  # and a float32 copy for the loss
    return state + activations * per_value + logits


def base_shape(base: str, recipe: Recipe | None = None) -> Shape:
    """The shape of a local or cached base model, read from its config; its tokenizer and weights must be there."""
    from transformers import AutoConfig, AutoTokenizer

    config = load_locally(AutoConfig, base, "config")
    load_locally(AutoTokenizer, base, "tokenizer")
    if not has_weights(base):
        raise RecipeError(
            f"student.base {base!r} has a config but no weights ({', '.join(WEIGHT_FILES[::2])}) in the folder or "
            "the local Hugging Face cache; download the whole model first"
        )
    check_causal(base, config)
    model = meta_model(config)
    lora = recipe.student.lora if recipe is not None else None
    hidden = first_int(config, "hidden_size", "n_embd", "d_model")
    return Shape(
        sum(p.numel() for p in model.parameters()),
        hidden,
        first_int(config, "num_hidden_layers", "n_layer", "num_layers"),
        first_int(config, "num_attention_heads", "n_head") or 1,
        first_int(config, "intermediate_size", "n_inner", "ffn_dim") or 4 * hidden,
        first_int(config, "vocab_size"),
        lora_parameters(model, lora) if lora is not None else 0,
    )


def check_causal(base: str, config: Any) -> None:
    """A config that names its architectures must name a causal LM one (not BertForMaskedLM, T5, CLIP, ...)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    causal = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    architectures = getattr(config, "architectures", None) or []
    if architectures and not any(a in causal or a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        raise RecipeError(
            f"student.base {base!r} is a {', '.join(architectures)}, not a causal language model (a model that "
            "continues text, such as ...ForCausalLM); choose a decoder model"
        )


def lora_parameters(model: Any, lora: Any) -> int:
    """The adapters' size: r x (inputs + outputs) per targeted layer; unknown target names are refused here."""
    from synthloop.training.lora import LINEAR_TYPES, linear_names, missing_targets

    missing = missing_targets(model, lora)
    if missing:
        raise RecipeError(
            f"student.lora.target_modules: {', '.join(missing)} not in this model; its linear layers are "
            f"{', '.join(linear_names(model))} (or use all-linear)"
        )
    targets = set(linear_names(model)) if lora.target_modules == "all-linear" else set(lora.target_modules)
    total = 0
    for name, module in model.named_modules():
        if type(module).__name__ in LINEAR_TYPES and name.rsplit(".", 1)[-1] in targets:
            rows, cols = module.weight.shape
            total += lora.r * (rows + cols)
    return total


def load_locally(auto: Any, base: str, what: str) -> Any:
    try:
        return auto.from_pretrained(base, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        reason = error_line(err)
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


def meta_model(config: Any) -> Any:
    """The model without its weights (PyTorch's meta device): exact shapes, no memory."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config)
    except (ValueError, TypeError) as err:
        reason = error_line(err)
        raise RecipeError(f"student.base: {type(config).__name__} is not a causal language model ({reason})") from None


def count_parameters(config: Any) -> int:
    """Exact, without allocating: the model is built on the meta device."""
    return sum(p.numel() for p in meta_model(config).parameters())


def check_trainer(recipe: Recipe) -> None:
    s = recipe.student
    if s.trainer == "trl" and importlib.util.find_spec("trl") is None:
        raise RecipeError("student.trainer: trl needs TRL, which is not installed; pip install 'synthloop[trl]'")
    if s.trainer == "command" and s.command:
        program = command_program(s.command)
        if program is not None and not runnable(program):
            raise RecipeError(
                f"student.command: {program!r} is not on PATH (or not executable); install it, or give its full path"
            )


def command_program(command: str) -> str | None:
    """The program a shell command runs first, or None where the shell decides (builtins, syntax)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    for word in words:
        if "=" in word.split("/")[0]:  # VAR=value before the program
            continue
        return None if word in SHELL_WORDS or word.startswith("{") else word
    return None


def runnable(program: str) -> bool:
    if "/" in program:
        return os.access(program, os.X_OK) and Path(program).is_file()
    return shutil.which(program) is not None


def check_device(recipe: Recipe) -> None:
    import torch

    from synthloop.training.device import resolve_device

    setting = recipe.student.device
    try:
        device = resolve_device(setting)
    except RuntimeError:
        raise RecipeError(f"student.device {setting!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RecipeError(f"student.device {setting}: no CUDA GPU is usable here; use device: auto (or cpu)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise RecipeError(f"student.device {setting}: this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RecipeError(f"student.device {setting}: Apple's MPS is not available here; use device: auto (or cpu)")
    if recipe.student.dtype == "float16" and device.type == "cpu":
        raise RecipeError("student.dtype float16 needs a GPU; on the CPU use float32 (or bfloat16)")
    if recipe.evaluation.engine == "vllm":
        from synthloop.evaluation.generate import vllm_available

        if not vllm_available():
            raise RecipeError(
                "evaluation.engine: vllm needs vLLM installed (pip install vllm) and a CUDA GPU; use engine: auto "
                "(vLLM where it can run, HF generate otherwise)"
            )


def available_bytes(device: Any) -> int | None:
    if device.type == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0]
    return available_memory_bytes()


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
