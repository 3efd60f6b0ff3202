"""Which tiny student family learns the skills faster on this CPU: GPT-2 or Llama, same size,
same data, same steps. This is the measurement behind the embedded default's `family: gpt2`.

Both train on comparison + addition at difficulty 1 (the skills whose answers must be copied and
computed digit by digit out of the question), batch 16, and are scored on 40 held-out probes per
skill after each third of the steps.

    python bench/student_family.py [--steps 1200] [--lr 3e-3]
"""

from __future__ import annotations

import argparse
import time

from common import emit, tokenizer_for

from synthloop.evaluation.generate import greedy_answers
from synthloop.registry import SKILLS
from synthloop.training.format import student_completion, student_prompt
from synthloop.training.model import build_scratch_model, count_parameters
from synthloop.training.packing import length_grouped_batches, tokenize_pairs
from synthloop.training.trainer import TrainSettings, train

SKILL_NAMES = ("comparison", "addition")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args()
    pairs = [
        (student_prompt(p.question), student_completion("\n".join(p.steps), p.answer))
        for name in SKILL_NAMES
        for p in (SKILLS.get(name).generate(1, i, 1) for i in range(10000))
    ]
    tokenizer = tokenizer_for(pairs)
    batches = length_grouped_batches(tokenize_pairs(tokenizer, pairs, 256), 16, tokenizer.pad_token_id, 0)
    probes = [SKILLS.get(name).generate(12345, i, 1) for name in SKILL_NAMES for i in range(40)]
    results = {}
    for family in ("gpt2", "llama"):
        model = build_scratch_model(tokenizer, family, 128, 4, 4, 512, 512, seed=0)
        curve, start = [], time.perf_counter()
        for third in range(3):
            settings = TrainSettings(args.steps // 3, 16, args.lr, 10 if third == 0 else 0, 0.1, 1.0, third)
            train(model, batches, settings)
            outputs = greedy_answers(model, tokenizer, [student_prompt(p.question) for p in probes], 96)
            scores = {name: 0.0 for name in SKILL_NAMES}
            for problem, output in zip(probes, outputs, strict=True):
                scores[problem.skill] += SKILLS.get(problem.skill).score(output, problem.answer) / 40
            curve.append({"steps": (third + 1) * (args.steps // 3), **{k: round(v, 3) for k, v in scores.items()}})
        results[family] = {
            "parameters": count_parameters(model),
            "seconds": round(time.perf_counter() - start),
            "curve": curve,
        }
    emit({"bench": "student_family", "skills": SKILL_NAMES, "batch_size": 16, "learning_rate": args.lr, **results})


if __name__ == "__main__":
    main()
