"""Where the student trains and in which precision: `device: auto` is CUDA, then Apple's MPS, then the
CPU; `dtype: auto` is bfloat16 on a GPU that supports it, float32 everywhere else."""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(setting: str) -> torch.device:
    if setting != "auto":
        return torch.device(setting)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(setting: str, device: torch.device) -> torch.dtype:
    if setting != "auto":
        return DTYPES[setting]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
