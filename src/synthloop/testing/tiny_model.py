"""A tiny chat model built in a second, for tests that need a real model file (no downloads)."""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def build_tiny_chat_model(path: Path, seed: int = 0) -> Path:
    """A randomly initialised 2-layer Llama with a BPE tokenizer and a chat template, saved at `path`."""
    from synthloop.training.model import build_scratch_model
    from synthloop.training.tokenizer import train_tokenizer

    texts = ["Solve the problem step by step. What is 12 + 7? 12 + 7 = 19 #### 19", "system: user: assistant:"] * 50
    tokenizer = train_tokenizer(texts, 300)
    tokenizer.chat_template = CHAT_TEMPLATE
    model = build_scratch_model(tokenizer, "llama", 32, 2, 2, 64, 512, seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
