"""The student model: a Hugging Face causal LM, either built tiny from scratch or loaded from a
checkpoint (an earlier round's, or any HF model id or path).

Two scratch families: `gpt2` (learned absolute positions; the embedded default) and `llama` (RoPE,
RMSNorm, SwiGLU). Measured here (bench/student_family.py): at lr 3e-3 the tiny Llama barely learns
while GPT-2 does; at lr 1e-3 Llama starts slower and then overtakes GPT-2. Both save with
`save_pretrained` and load with `AutoModelForCausalLM`."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

FAMILIES = ("gpt2", "llama")


def build_scratch_model(
    tokenizer,
    family: str,
    hidden_size: int,
    layers: int,
    heads: int,
    intermediate_size: int,
    max_positions: int,
    seed: int,
) -> torch.nn.Module:
    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if family == "gpt2":
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=max_positions,
            n_embd=hidden_size,
            n_layer=layers,
            n_head=heads,
            n_inner=intermediate_size,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,  # dropout 0: faster, learns more
            initializer_range=0.02,
            **special,
        )
        model_class = GPT2LMHeadModel
    elif family == "llama":
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden_size,
            intermediate_size=intermediate_size,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=max_positions,
            initializer_range=0.02,
            tie_word_embeddings=True,
            **special,
        )
        model_class = LlamaForCausalLM
    else:
        raise ValueError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    torch.manual_seed(seed)
    return model_class(config)


def load_model(path: str | Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, local_files_only=True)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
