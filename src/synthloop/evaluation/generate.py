"""Greedy, batched answers from the student: HF `generate`, or vLLM's offline engine where it can run.

Both take the prompts as token ids (training/format.py makes them), so the student is asked in
exactly the tokens it was trained on, and both return the decoded continuations in the prompts' order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase


def greedy_answers(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int = 128,
) -> list[str]:
    """The student's continuation of each plain-text prompt, BOS first."""
    bos = [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]
    ids = [bos + tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    return generate_ids(model, tokenizer, ids, max_new_tokens, batch_size)


@torch.inference_mode()
def generate_ids(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[list[int]],
    max_new_tokens: int,
    batch_size: int = 128,
) -> list[str]:
    """Prompts are sorted by length so a batch pads little, and padded on the left so every row continues
    from its own last token (position ids come from the attention mask)."""
    model.eval()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(prompts[i]) for i in rows)
        ids = torch.tensor([[pad] * (width - len(prompts[i])) + prompts[i] for i in rows], device=device)
        mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in rows], device=device)
        generated = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=stop_ids(model, tokenizer),
        )
        continuations = tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
        for i, text in zip(rows, continuations, strict=True):
            out[i] = text
    return out


def stop_ids(model: Any, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokenizer's EOS and the model's own end-of-turn tokens (generation_config.eos_token_id)."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured]
    return sorted({i for i in [tokenizer.eos_token_id, *ids] if i is not None})


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def vllm_answers(
    model_dir: str,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[list[int]],
    max_new_tokens: int,
    adapter_dir: str | None = None,
    lora_rank: int = 16,
) -> list[str]:
    """The same greedy answers from vLLM's offline engine (a GPU only; not run by the test suite).
    `adapter_dir`: LoRA adapters served over `model_dir` as the base."""
    import gc

    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(
        model=model_dir,
        tokenizer=model_dir,
        dtype="auto",
        seed=0,
        enable_lora=adapter_dir is not None,
        max_lora_rank=max(16, lora_rank),
    )
    params = SamplingParams(
        temperature=0.0,
        max_tokens=max_new_tokens,
        stop_token_ids=[tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else None,
        skip_special_tokens=True,
    )
    request = None
    if adapter_dir is not None:
        from vllm.lora.request import LoRARequest

        request = LoRARequest("student", 1, adapter_dir)
    results = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, lora_request=request)
    texts = [r.outputs[0].text for r in results]
    del llm  # give the GPU back before the next round trains
    gc.collect()
    torch.cuda.empty_cache()
    return texts
