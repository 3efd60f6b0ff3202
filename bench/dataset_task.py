"""The `dataset` task path on the exported built-in skills: a scripted teacher over HTTP that is wrong
on a set share of its answers, 3 rounds, several seeds. Two arms at an equal budget:

- failures: the budget follows the weakness report and new problems are written like the train items
  the student got wrong (failure-driven variations);
- uniform: the budget is spread evenly and the examples are drawn evenly from the train split.

Round 1 is the same in both (no student answers yet), so the uniform arm starts from a copy of the
failures arm's round 1. Figures per seed and on average: the gain of the category weakest after round 1,
the weakest category and macro accuracy at the end, and the share of wrong answers (against the
teacher's hidden truth) among the synthetic rows that reached training.

    python bench/dataset_task.py [--seeds 0 1 2] [--steps 1500] [--budget 4000] [--difficulty 1]
        [--student llama|gpt2] [--jobs 3 --threads 1]

`--jobs` runs seeds side by side in processes of their own, each student on `--threads` torch threads
(on a shared 2-core machine, single-threaded jobs lose less to each other than two-thread students do).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from common import emit

from synthloop.config import Recipe, parse_recipe
from synthloop.loop import run_loop
from synthloop.skills.export import EXPORTED_FIELDS, export_rows
from synthloop.storage.rundir import open_run, set_round_status
from synthloop.storage.shards import read_records
from synthloop.testing import serve_in_thread
from synthloop.testing.scripted_teacher import ScriptedTeacher

SKILLS = ["addition", "subtraction", "comparison", "fractions", "spatial_3d"]


# The default student's shape; learning rates as README "How the embedded demo was budgeted" gives them.
LEARNING_RATE = {"llama": 0.001, "gpt2": 0.003}


def recipe(data: Path, url: str, seed: int, arm: str, args: argparse.Namespace) -> Recipe:
    allocation = "proportional_to_error" if arm == "failures" else "uniform"
    steps, budget, threads, family = args.steps, args.budget, args.threads, args.student
    lr = LEARNING_RATE[family]
    return parse_recipe(
        f"""
name: dataset-{arm}
seed: {seed}
rounds: 3
task: {{type: dataset, train: {data / "train.jsonl"}, eval: {data / "eval.jsonl"}, train_probe_per_category: 64}}
teacher: {{backend: openai, base_url: {url}/v1, model: scripted}}
generation: {{budget_per_round: {budget}, samples: 5, temperature: 0.8, strategy: {arm}, shard_size: 1000}}
curation: {{self_consistency: {{min_agreement: 0.8}}}}
grounding: {{ratio: 0.2, strategy: replace}}
student:
  architecture: {{family: {family}, hidden_size: 128, layers: 4, heads: 4, intermediate_size: 512}}
  train: {{steps_per_round: {steps}, batch_size: 16, learning_rate: {lr}, warmup_steps: 50, threads: {threads}}}
evaluation: {{max_new_tokens: 128}}
allocation: {{policy: {allocation}, floor: 0.05, sharpness: 2}}
# error rate of the scripted teacher: {args.error_rate}
""",
        f"bench {arm}",
    )


def wrong_in_training(teacher: ScriptedTeacher, root: Path) -> tuple[int, int]:
    wrong = checked = 0
    for rdir in sorted((root / "rounds").iterdir()):
        rows = [
            row for row in read_records(rdir / "train") if row.source == "synthetic" and row.round == int(rdir.name)
        ]
        w, c = teacher.wrong_share(rows)
        wrong, checked = wrong + w, checked + c
    return wrong, checked


def run_seed(data: Path, difficulty_of: dict[str, int], seed: int, args: argparse.Namespace) -> dict:
    teacher = ScriptedTeacher(error_rate=args.error_rate, difficulty_of=difficulty_of, seed=seed)
    roots = {arm: args.out / f"seed{seed}-{arm}" for arm in ("failures", "uniform")}
    for root in roots.values():
        shutil.rmtree(root, ignore_errors=True)
    with serve_in_thread(teacher.app()) as url:
        make = {arm: recipe(data, url, seed, arm, args) for arm in roots}
        run_loop(make["failures"], roots["failures"], log=lambda line: None)
        run, manifest = open_run(roots["uniform"], make["uniform"], resume=False)
        shutil.copytree(roots["failures"] / "rounds" / "01", roots["uniform"] / "rounds" / "01")
        shutil.copytree(roots["failures"] / "tokenizer", roots["uniform"] / "tokenizer")
        set_round_status(run, manifest, 1, "done")
        run_loop(make["uniform"], roots["uniform"], resume=True, log=lambda line: None)
    metrics = {arm: json.loads((root / "metrics.json").read_text())["rounds"] for arm, root in roots.items()}
    first = metrics["failures"][0]["eval"]["per_skill"]
    weakest = min(first, key=lambda s: (first[s], s))
    result = {"seed": seed, "weakest_after_round_1": weakest, "its_round_1_accuracy": round(first[weakest], 3)}
    for arm, rounds in metrics.items():
        last = rounds[-1]["eval"]
        wrong, checked = wrong_in_training(teacher, roots[arm])
        result[arm] = {
            "weakest_after_round_1": round(last["per_skill"][weakest], 3),
            "gain_of_weakest": round(last["per_skill"][weakest] - first[weakest], 3),
            "weakest_at_end": round(min(last["per_skill"].values()), 3),
            "macro": round(last["macro"], 3),
            "wrong_share_in_training": round(wrong / checked, 4) if checked else None,
            "synthetic_rows_checked": checked,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1500, help="training steps per round")
    parser.add_argument("--budget", type=int, default=4000, help="new problems per round")
    parser.add_argument("--error-rate", type=float, default=0.2, help="share of the teacher's answers that are wrong")
    parser.add_argument("--difficulty", type=int, nargs="+", default=[1], help="the exported items' difficulties")
    parser.add_argument("--out", type=Path, default=Path("bench/.out/dataset_task"))
    parser.add_argument("--jobs", type=int, default=1, help="seeds run side by side, each in its own process")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per student (0: every core)")
    parser.add_argument("--student", choices=sorted(LEARNING_RATE), default="llama", help="scratch student's family")
    args = parser.parse_args()
    start = time.perf_counter()
    data = args.out / "data"
    splits = export_rows(SKILLS, train_per_skill=400, eval_per_skill=60, difficulties=args.difficulty, seed=0)
    data.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        text = "".join(json.dumps({k: row[k] for k in EXPORTED_FIELDS}) + "\n" for row in rows)
        (data / f"{split}.jsonl").write_text(text)
    difficulty_of = {row["question"]: row["difficulty"] for row in splits["train"]}
    results = []
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_seed, data, difficulty_of, seed, args) for seed in args.seeds]
        for future in as_completed(futures):
            results.append(future.result())
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)  # each seed as it finishes
    results.sort(key=lambda r: r["seed"])

    def mean(arm: str, key: str) -> float:
        return round(statistics.mean(r[arm][key] for r in results), 4)

    keys = ("gain_of_weakest", "weakest_after_round_1", "weakest_at_end", "macro", "wrong_share_in_training")
    emit(
        {
            "bench": "dataset_task",
            "teacher_error_rate": args.error_rate,
            "rounds": 3,
            "steps_per_round": args.steps,
            "budget_per_round": args.budget,
            "jobs": args.jobs,
            "threads_per_student": args.threads,
            "student": f"{args.student} 128x4, lr {LEARNING_RATE[args.student]}",
            "mean": {arm: {key: mean(arm, key) for key in keys} for arm in ("failures", "uniform")},
            "min_gain_of_weakest_failures": min(r["failures"]["gain_of_weakest"] for r in results),
            "max_wrong_share_in_training": max(
                r[arm]["wrong_share_in_training"] for r in results for arm in ("failures", "uniform")
            ),
            "per_seed": results,
            "seconds": round(time.perf_counter() - start, 1),
        }
    )


if __name__ == "__main__":
    main()
