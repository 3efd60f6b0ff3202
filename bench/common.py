"""Shared set-up for the benchmarks: the default recipe's skills, tokenizer and student shape."""

from __future__ import annotations

import json
import os
import platform
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from synthloop.config import load_recipe
from synthloop.registry import SKILLS
from synthloop.training.format import student_completion, student_prompt
from synthloop.training.tokenizer import train_tokenizer


def skill_pairs(n_per_skill: int, seed: int = 1) -> list[tuple[str, str]]:
    recipe = load_recipe()
    pairs = []
    for name, spec in recipe.skills.items():
        for i in range(n_per_skill):
            p = SKILLS.get(name).generate(seed, i, spec.difficulty)
            pairs.append((student_prompt(p.question), student_completion("\n".join(p.steps), p.answer)))
    return pairs


def tokenizer_for(pairs: list[tuple[str, str]]):
    return train_tokenizer((p + c for p, c in pairs[::3]), load_recipe().student.vocab_size)


def emit(figures: dict) -> None:
    figures = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {os.cpu_count()} cores", **figures}
    print(json.dumps(figures), flush=True)
    sys.stdout.flush()
