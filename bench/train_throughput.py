"""Student training throughput: the builtin trainer vs TRL's SFTTrainer, full weights vs LoRA, each a
whole round through `train_round` (what the loop runs), side by side in one process on the CPU.

The student is the embedded default's shape (GPT-2, 128 wide, 4 layers, 0.9M parameters) saved as a
Hugging Face folder with the project's tokenizer and a chat template, used as `student.base`, so the
rows are rendered with the chat template and LoRA (r 16, all linear layers) has a base to adapt. Every
contender makes whole passes over the same rows (the default recipe's skills), so all process the same
real tokens; tokens/s counts those (non-padding) over the training loop's seconds (loading and saving
excluded; they are reported apart as the round's wall time). Each contender runs `--repeats` times,
interleaved, and the median is reported.

    python bench/train_throughput.py [--rows-per-skill 400] [--passes 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import emit

from synthloop.config import load_recipe, validate_recipe
from synthloop.records import Record
from synthloop.registry import SKILLS
from synthloop.training import student
from synthloop.training.checkpoint import load_tokenizer
from synthloop.training.packing import encode_rows
from synthloop.training.tiny import build_tiny_student

CONTENDERS = {
    "builtin_full": {"trainer": "builtin"},
    "builtin_lora": {"trainer": "builtin", "lora": {"r": 16, "alpha": 32}},
    "trl_full": {"trainer": "trl"},
    "trl_lora": {"trainer": "trl", "lora": {"r": 16, "alpha": 32}},
}


def skill_rows(per_skill: int) -> list[Record]:
    rows = []
    for name, spec in load_recipe().skills.items():
        for i in range(per_skill):
            p = SKILLS.get(name).generate(1, i, spec.difficulty)
            rows.append(
                Record(kind="solution", skill=name, question=p.question, source="synthetic", round=1,
                       reasoning="\n".join(p.steps), answer=p.answer)
            )  # fmt: skip
    return rows


def tiny_default_student(folder: Path, rows: list[Record]) -> Path:
    a, vocab = load_recipe().student.architecture, load_recipe().student.vocab_size
    texts = [f"{r.question}\n{r.reasoning}\n#### {r.answer}" for r in rows[::3]]
    return build_tiny_student(
        folder, texts, True, a.family, a.hidden_size, a.layers, a.heads, a.intermediate_size, vocab, seed=0
    )


def recipe_for(base: Path, steps: int, **student_keys):
    train = load_recipe().student.train.model_dump()
    train.update(steps_per_round=steps, warmup_steps=10)
    return validate_recipe(
        {
            "name": "bench",
            "skills": {"comparison": {"difficulty": 1}},
            "student": {"base": str(base), "train": train, "device": "cpu", **student_keys},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows-per-skill", type=int, default=400)
    parser.add_argument("--passes", type=int, default=1, help="passes over the rows per contender")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = skill_rows(args.rows_per_skill)
    batch = load_recipe().student.train.batch_size
    steps = args.passes * len(rows) // batch  # whole passes (rows is a multiple of the batch)
    with tempfile.TemporaryDirectory() as tmp:
        base = tiny_default_student(Path(tmp) / "base", rows)
        tokenizer = load_tokenizer(base)
        examples = encode_rows(tokenizer, "chat_template", [(r.question, r.reasoning, r.answer) for r in rows], 256)
        real_tokens = args.passes * sum(len(ids) for ids, _ in examples)
        figures: dict[str, dict[str, list[float]]] = {name: {"tps": [], "wall": []} for name in CONTENDERS}
        stats: dict[str, dict] = {}
        for repeat in range(args.repeats):
            for name, keys in CONTENDERS.items():
                out = Path(tmp) / f"{name}-{repeat}"
                start = time.perf_counter()
                stats[name] = student.train_round(
                    recipe_for(base, steps, **keys), rows, None, Path(tmp), out.with_suffix(".work"), out, 0
                )
                figures[name]["wall"].append(time.perf_counter() - start)
                figures[name]["tps"].append(real_tokens / stats[name]["seconds"])
    medians = {name: round(statistics.median(f["tps"])) for name, f in figures.items()}
    emit(
        {
            "bench": "train_throughput",
            "student": "gpt2 128x4 (default shape) as an HF folder with a chat template",
            "rows": len(rows),
            "passes": args.passes,
            "steps_per_contender": steps,
            "batch_size": batch,
            "repeats": args.repeats,
            "torch_threads": torch.get_num_threads(),
            "real_tokens_per_contender": real_tokens,
            "tokens_per_s": medians,
            "trl_over_builtin": {
                kind: round(medians[f"trl_{kind}"] / medians[f"builtin_{kind}"], 3) for kind in ("full", "lora")
            },
            "lora_over_full": {t: round(medians[f"{t}_lora"] / medians[f"{t}_full"], 3) for t in ("builtin", "trl")},
            "round_wall_s": {name: round(statistics.median(f["wall"]), 2) for name, f in figures.items()},
            "trainable_parameters": {name: s["trainable_parameters"] for name, s in stats.items()},
            "final_loss": {name: s["final_loss"] for name, s in stats.items()},
        }
    )


if __name__ == "__main__":
    main()
