"""Train the embedded classroom teacher from the project's own skill generators, nothing else.

    python -m synthloop.teachers.classroom.train --out DIR [--steps N] [--device auto]

The teacher is a small Llama with the project's tokenizer (byte-level BPE, digits one per token) and a
chat template. It learns two jobs, in the exact prompts the loop sends: `solve` (a step-by-step
solution ending in `#### answer`) and `write_problems` (a new problem like a given one, or from a
category's description, as JSON). Every training example is drawn fresh from the generators, so it
never sees the same stream twice; the evaluation set comes from a seed stream the training never
draws. It is meant to be good, not perfect: the loop's verification has real mistakes to catch.
Same seed and steps, same device: same weights."""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from synthloop.registry import SKILLS
from synthloop.skills.base import Problem
from synthloop.tasks.solve import SYSTEM as SOLVE_SYSTEM
from synthloop.tasks.write_problems import FROM_TOPIC, LIKE_EXAMPLE, described
from synthloop.tasks.write_problems import SYSTEM as WRITE_SYSTEM
from synthloop.training.model import build_scratch_model, count_parameters
from synthloop.training.packing import IGNORE
from synthloop.training.tiny import CHAT_TEMPLATE
from synthloop.training.tokenizer import train_tokenizer
from synthloop.training.trainer import cosine_lr

SKILL_NAMES = ("addition", "subtraction", "comparison", "fractions", "spatial_3d")  # the default recipe's
DIFFICULTY = 1
TRAIN_SEED_BASE = 1_000_000  # the loop draws problems from seeds 0..; the teacher's stream starts far above
EVAL_SEED = 7_777_777
KIND_WEIGHTS = {"solve": 0.88, "like_example": 0.08, "from_topic": 0.04}


@dataclass(frozen=True)
class Shape:
    family: str = "llama"  # measured here: a Llama learns the skills far faster than a GPT-2 of its size
    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    vocab_size: int = 640
    max_positions: int = 384


def solve_messages(problem: Problem) -> list[dict[str, str]]:
    return [{"role": "system", "content": SOLVE_SYSTEM}, {"role": "user", "content": problem.question}]


def solution_text(problem: Problem) -> str:
    return "\n".join((*problem.steps, f"#### {problem.answer}"))


def like_example_messages(example: Problem) -> list[dict[str, str]]:
    skill = SKILLS.get(example.skill)
    user = LIKE_EXAMPLE.format(
        category=example.skill,
        description=described(skill.description),
        question=example.question,
        answer=example.answer,
        count=1,
    )
    return [{"role": "system", "content": WRITE_SYSTEM}, {"role": "user", "content": user}]


def from_topic_messages(skill_name: str) -> list[dict[str, str]]:
    skill = SKILLS.get(skill_name)
    user = FROM_TOPIC.format(category=skill_name, description=described(skill.description), count=1)
    return [{"role": "system", "content": WRITE_SYSTEM}, {"role": "user", "content": user}]


def problems_json(question: str) -> str:
    return json.dumps({"problems": [question]}, ensure_ascii=False)


def examples(seed: int) -> Iterator[tuple[list[dict[str, str]], str]]:
    """An endless stream of (messages, assistant reply) drawn from the skill generators."""
    rng = random.Random(seed)
    kinds, weights = list(KIND_WEIGHTS), list(KIND_WEIGHTS.values())
    index = 0
    while True:
        index += 1
        skill_name = rng.choice(SKILL_NAMES)
        skill = SKILLS.get(skill_name)
        problem = skill.generate(TRAIN_SEED_BASE + seed, index, DIFFICULTY)
        kind = rng.choices(kinds, weights)[0]
        if kind == "solve":
            yield solve_messages(problem), solution_text(problem)
            continue
        fresh = skill.generate(TRAIN_SEED_BASE + seed + 1, index, DIFFICULTY)
        if kind == "like_example":
            if fresh.question == problem.question:
                continue
            yield like_example_messages(problem), problems_json(fresh.question)
        else:
            yield from_topic_messages(skill_name), problems_json(fresh.question)


def encode(tokenizer: Any, messages: list[dict[str, str]], reply: str, max_len: int) -> tuple[list[int], list[int]]:
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    reply_ids = [*tokenizer(reply, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    ids = (prompt_ids + reply_ids)[:max_len]
    labels = ([IGNORE] * len(prompt_ids) + reply_ids)[:max_len]
    return ids, labels


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), IGNORE)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(ids)] = 1
    return input_ids, labels, mask


def length_bucketed(
    tokenizer: Any, stream: Iterator[tuple[list[dict[str, str]], str]], batch_size: int, max_len: int, seed: int
) -> Iterator[list[tuple[list[int], list[int]]]]:
    """Batches of similar length: a pool of 16 batches' worth is sorted by length, cut into batches and
    shuffled, so a long `write_problems` prompt does not pad a whole batch of short solutions."""
    rng = random.Random(seed)
    while True:
        pool = sorted(
            (encode(tokenizer, *next(stream), max_len) for _ in range(16 * batch_size)), key=lambda r: len(r[0])
        )
        chunks = [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
        rng.shuffle(chunks)
        yield from chunks


def build_tokenizer(shape: Shape, seed: int) -> Any:
    stream = examples(seed + 12_345)
    texts = []
    for _ in range(6000):
        messages, reply = next(stream)
        texts.extend([m["content"] for m in messages] + [reply])
    tokenizer = train_tokenizer([*texts, "system\nuser\nassistant\n"], shape.vocab_size)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def eval_problems(per_skill: int) -> list[Problem]:
    return [SKILLS.get(name).generate(EVAL_SEED, i, DIFFICULTY) for name in SKILL_NAMES for i in range(per_skill)]


@torch.inference_mode()
def generate(model: Any, tokenizer: Any, prompts: list[list[dict[str, str]]], max_new_tokens: int) -> list[str]:
    tokenizer.padding_side = "left"
    texts = [tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in prompts]
    outputs = []
    for start in range(0, len(texts), 64):
        batch = tokenizer(texts[start : start + 64], return_tensors="pt", padding=True, add_special_tokens=False)
        batch = batch.to(model.device)
        out = model.generate(
            **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
        width = batch["input_ids"].shape[1]
        outputs.extend(tokenizer.decode(row[width:], skip_special_tokens=True) for row in out)
    return outputs


def evaluate(model: Any, tokenizer: Any, per_skill: int) -> dict[str, Any]:
    """Greedy accuracy per skill on held-out problems in the loop's own `solve` prompt, and how often a
    written problem is valid JSON, new and a question of the same kind (the same generator's template)."""
    model.eval()
    problems = eval_problems(per_skill)
    replies = generate(model, tokenizer, [solve_messages(p) for p in problems], 96)
    accuracy: dict[str, list[float]] = {name: [] for name in SKILL_NAMES}
    for problem, reply in zip(problems, replies, strict=True):
        accuracy[problem.skill].append(SKILLS.get(problem.skill).score(reply, problem.answer))
    examples_ = problems[:: max(1, per_skill // 8)]
    written = generate(model, tokenizer, [like_example_messages(p) for p in examples_], 96)
    valid = 0
    for example, text in zip(examples_, written, strict=True):
        try:
            question = json.loads(text)["problems"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        valid += isinstance(question, str) and question.strip() != example.question and bool(question.strip())
    model.train()
    return {
        "per_skill": {name: round(sum(v) / len(v), 3) for name, v in accuracy.items()},
        "macro": round(sum(sum(v) / len(v) for v in accuracy.values()) / len(accuracy), 3),
        "written_valid": round(valid / len(examples_), 3),
        "eval_items_per_skill": per_skill,
    }


def train(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    shape = Shape(args.family, args.hidden_size, args.layers, args.heads, args.vocab_size)
    tokenizer = build_tokenizer(shape, args.seed)
    model = build_scratch_model(
        tokenizer,
        shape.family,
        shape.hidden_size,
        shape.layers,
        shape.heads,
        4 * shape.hidden_size,
        shape.max_positions,
        args.seed,
    )
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, betas=(0.9, 0.95), weight_decay=0.01)
    batches = length_bucketed(tokenizer, examples(args.seed), args.batch_size, shape.max_positions, args.seed)
    start, tokens, history = time.perf_counter(), 0, []
    for step in range(args.steps):
        rows = next(batches)
        input_ids, labels, mask = (t.to(device) for t in collate(rows, tokenizer.pad_token_id))
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, args.steps, args.learning_rate, args.warmup_steps)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(mask.sum())
        done = step + 1
        if done % args.log_every == 0 or done == args.steps:
            elapsed = time.perf_counter() - start
            line = {
                "step": done,
                "loss": round(loss.item(), 4),
                "seconds": round(elapsed),
                "tokens_per_s": round(tokens / elapsed),
            }
            if done % args.eval_every == 0 or done == args.steps:
                line |= evaluate(model, tokenizer, args.eval_per_skill if done == args.steps else 20)
            history.append(line)
            print(json.dumps(line), flush=True)
    final = history[-1]
    report = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
        "parameters": count_parameters(model),
        "shape": shape.__dict__,
        "train_seconds": final["seconds"],
        "device": device.type,
        "evaluation": {k: final[k] for k in ("per_skill", "macro", "written_valid", "eval_items_per_skill")},
    }
    out = Path(args.out)
    model.to("cpu").save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "README.md").write_text(model_card(report, argv_line(args)))
    return report


def argv_line(args: argparse.Namespace) -> str:
    defaults = vars(parser().parse_args(["--out", args.out]))
    changed = [f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out" and v != defaults[k]]
    return " ".join(["python -m synthloop.teachers.classroom.train --out DIR", *changed])


def model_card(report: dict[str, Any], command: str) -> str:
    """The model card: what it is, what it was trained on, how well it does, and what it cannot do."""
    evaluation = report["evaluation"]
    rows = "\n".join(f"| {skill} | {acc:.3f} |" for skill, acc in evaluation["per_skill"].items())
    shape = report["shape"]
    return f"""---
license: apache-2.0
library_name: transformers
pipeline_tag: text-generation
tags: [synthloop, synthetic-data, teacher]
---
# classroom-teacher

The small teacher that ships inside synthloop (`teacher: {{backend: transformers, model:
builtin:classroom-teacher}}`, the default recipe's teacher). A {shape["family"]}-shaped causal LM,
{report["parameters"]:,} parameters ({shape["layers"]} layers, width {shape["hidden_size"]}, {shape["heads"]} heads, \
{shape["max_positions"]} positions), with synthloop's tokenizer (byte-level BPE, {shape["vocab_size"]} tokens, \
digits one per token) and a chat template. It loads offline:

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
from synthloop.teachers.checkpoints import resolve_model
path = resolve_model("builtin:classroom-teacher")
model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
```

## Training data
Only synthloop's own skill generators, at difficulty {DIFFICULTY}: {", ".join(SKILL_NAMES)}. Every example is
drawn fresh from a seed stream far from the ones the loop draws from (the generators' item spaces are
small at this difficulty, so some questions coincide with the loop's; the loop decontaminates its
training data against its probes whoever wrote it). Two jobs, in the prompts the loop sends:
`solve` ({KIND_WEIGHTS["solve"]:.0%} of examples: the generator's step-by-step solution ending in `#### answer`) and
`write_problems` (a new problem like a given one, or from the category's description, as JSON).
No human data, no downloaded data.

Reproduce: `{command}` ({report["steps"]} steps of {report["batch_size"]} examples, learning rate
{report["learning_rate"]}, seed {report["seed"]}; {report["train_seconds"]} s on {report["device"]}). \
Same seed, steps and device: the same weights.

## Accuracy
Greedy decoding, in the loop's `solve` prompt, on {evaluation["eval_items_per_skill"]} held-out problems per skill
(a seed stream training never draws):

| skill | accuracy |
|---|---|
{rows}
| **macro** | **{evaluation["macro"]:.3f}** |

Problems it writes when asked for one like an example: {evaluation["written_valid"]:.0%} valid JSON holding a new
question.

## Limits
It is good, not perfect, on purpose: synthloop's verification has real mistakes to catch (the run's
report counts the rejected rows per skill). It knows nothing outside these five skills at this
difficulty, writes problems only by imitating the generators' templates, and follows no other
instruction. Harder difficulties, other skills and free text are out of its reach.
"""


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write the checkpoint to")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--family", choices=("llama", "gpt2"), default=Shape.family)
    parser.add_argument("--hidden-size", type=int, default=Shape.hidden_size)
    parser.add_argument("--layers", type=int, default=Shape.layers)
    parser.add_argument("--heads", type=int, default=Shape.heads)
    parser.add_argument("--vocab-size", type=int, default=Shape.vocab_size)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda:0")
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-per-skill", type=int, default=200)
    return parser


def main(argv: list[str] | None = None) -> None:
    train(parser().parse_args(argv))


if __name__ == "__main__":
    main()
