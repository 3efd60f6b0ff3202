"""A tiny Hugging Face student saved as a folder, to stand in for a Hub model (`student.base: <folder>`)
in tests and benchmarks: the project's tokenizer, optionally a chat template, a 2-layer model, no download."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from synthloop.training.model import build_scratch_model
from synthloop.training.tokenizer import BOS, EOS, train_tokenizer

CHAT_TEMPLATE = (
    "{% for m in messages %}" + BOS + "{{ m['role'] }}\n{{ m['content'] }}" + EOS + "\n{% endfor %}"
    "{% if add_generation_prompt %}" + BOS + "assistant\n{% endif %}"
)


def build_tiny_student(
    path: Path,
    texts: Iterable[str],
    chat_template: bool = True,
    family: str = "llama",
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 2,
    intermediate_size: int | None = None,
    vocab_size: int = 400,
    seed: int = 0,
) -> Path:
    """Train a tokenizer on `texts` (and the template's role names), build the model, save both at `path`."""
    tokenizer = train_tokenizer([*texts, "user\nassistant\n"], vocab_size)
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    intermediate = intermediate_size or 2 * hidden_size
    model = build_scratch_model(tokenizer, family, hidden_size, layers, heads, intermediate, 512, seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)
