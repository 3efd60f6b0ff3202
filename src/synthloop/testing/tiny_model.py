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


def build_tiny_reward_model(path: Path, steps: int = 60, seed: int = 0) -> Path:
    """A 2-layer Llama reward model (one logit) trained for a few seconds to score answers ending in
    "Final answer: yes" above those ending in "Final answer: no", saved at `path` with its tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from synthloop.training.tokenizer import train_tokenizer

    texts = [f"Is {i} even?\nCheck it.\nFinal answer: {w}" for i in range(20) for w in ("yes", "no")]
    tokenizer = train_tokenizer(texts * 5, 300)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    labels = torch.tensor([1.0 if t.endswith("yes") else -1.0 for t in texts])
    questions, answers = zip(*(t.split("\n", 1) for t in texts), strict=True)
    batch = tokenizer(list(questions), list(answers), padding=True, return_tensors="pt")
    for _ in range(steps):
        loss = ((model(**batch).logits[:, 0] - labels) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
