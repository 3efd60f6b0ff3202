"""LoRA adapters through PEFT: wrap a base model, continue a previous round's adapters, merge them.

A LoRA student's round folder holds the adapters (adapter_config.json, adapter_model.safetensors) and
the tokenizer; the base model stays where the recipe's `student.base` names it. The next round loads
the base and continues training the same adapters. `merge_adapters` writes full weights that any HF
tool (or vLLM) loads without PEFT."""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from synthloop.config import LoraConfig
from synthloop.storage.atomic import replace_dir
from synthloop.storage.input_files import InputFileError

ADAPTER_CONFIG = "adapter_config.json"
LINEAR_TYPES = ("Linear", "Conv1D")  # torch.nn.Linear, and GPT-2's transformers Conv1D


def is_adapter(folder: Path) -> bool:
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def linear_names(model: torch.nn.Module) -> list[str]:
    """The short names LoRA can target (each linear layer's last name: q_proj, c_attn, ...), lm_head excluded."""
    names = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if type(m).__name__ in LINEAR_TYPES}
    return sorted(names - {"lm_head"})


def missing_targets(model: torch.nn.Module, cfg: LoraConfig) -> list[str]:
    if cfg.target_modules == "all-linear":
        return []
    linear = set(linear_names(model))
    return [t for t in cfg.target_modules if t not in linear]


def add_adapters(model: torch.nn.Module, cfg: LoraConfig) -> torch.nn.Module:
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    conv1d = any(type(m).__name__ == "Conv1D" for m in model.modules())
    peft_config = PeftLoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=cfg.target_modules,
        fan_in_fan_out=conv1d,  # GPT-2 stores its linear weights transposed
        task_type="CAUSAL_LM",
    )
    with quiet_peft():
        return get_peft_model(model, peft_config)


def load_adapters(base: torch.nn.Module, folder: Path, trainable: bool) -> torch.nn.Module:
    from peft import PeftModel

    with quiet_peft():
        return PeftModel.from_pretrained(base, str(folder), is_trainable=trainable)


@contextlib.contextmanager
def quiet_peft() -> Iterator[None]:
    """PEFT asks transformers 5 a deprecated question (is_gradient_checkpointing); the warning is not ours to fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def merge_adapters(adapter_dir: Path, out: Path, base: str | None = None, dtype: torch.dtype | None = None) -> Path:
    """Adapters merged into their base, saved as a full HF checkpoint (with the tokenizer) in `out`.
    `base` defaults to the base the adapters were trained on (adapter_config.json's base_model_name_or_path)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter_dir = Path(adapter_dir)
    base = base or adapter_base(adapter_dir)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype or "auto", local_files_only=True)
    merged = load_adapters(model, adapter_dir, trainable=False).merge_and_unload()
    save_merged(merged, AutoTokenizer.from_pretrained(str(adapter_dir), local_files_only=True), Path(out))
    return Path(out)


def save_merged(model: Any, tokenizer: Any, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def adapter_base(adapter_dir: Path) -> str:
    base = json.loads((Path(adapter_dir) / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    if not base:
        raise InputFileError(f"{adapter_dir}: {ADAPTER_CONFIG} names no base model; pass the base (--base)")
    return str(base)


def merge_round(adapters: Path, out: Path, base: str | None = None) -> Path:
    """`synthloop student merge`: a LoRA round's folder merged into its base, written whole or not at all."""
    adapters, out = Path(adapters), Path(out)
    if not is_adapter(adapters):
        raise InputFileError(
            f"{adapters} holds no LoRA adapters ({ADAPTER_CONFIG} is missing): give a LoRA round's folder, "
            "RUN/rounds/NN/student"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputFileError(f"--out {out} exists and is not an empty folder; give a new one")
    base = base or adapter_base(adapters)
    if base.startswith(("/", ".")) and not Path(base).is_dir():
        raise InputFileError(
            f"the base these adapters were trained on, {base}, is gone (a scratch student's base lives only "
            "during its round: set student.lora.merge: true to keep merged weights); pass --base"
        )
    try:
        replace_dir(out, lambda tmp: merge_adapters(adapters, tmp, base))
    except OSError as err:
        message = f"cannot load the base model {base} ({err}); pass --base a local folder or cached id"
        raise InputFileError(message) from None
    return out
