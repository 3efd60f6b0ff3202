"""The collapse lab's language-model experiments on their defaults (5 generations, 1 seed, replace,
accumulate and verify+accumulate), and the whole lab's wall time (`synthloop collapse --experiment all`):

- skills: accuracy on held-out probes and the distinct word pairs of sampled answers, generation 0 vs 5;
- text: perplexity on held-out human text, distinct word pairs and rare-pair mass of samples.

    python bench/collapse_lm.py [--out bench/.out/lab]
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from common import emit

from synthloop.collapse.lab import run_lab


def figures(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    """metric -> strategy -> {generation 0, last, last / first}."""
    rows = list(csv.DictReader(path.open()))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        out.setdefault(row["metric"], {}).setdefault(row["strategy"], {})[row["generation"]] = float(row["mean"])
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for metric, per in out.items():
        for strategy, by_generation in per.items():
            last = max(by_generation, key=int)
            first, end = by_generation["0"], by_generation[last]
            summary.setdefault(metric, {})[strategy] = {
                "generation_0": round(first, 4),
                f"generation_{last}": round(end, 4),
                "ratio": round(end / first, 3) if first else None,
            }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / ".out" / "lab")
    args = parser.parse_args()
    start = time.perf_counter()
    run_lab("all", None, None, None, args.out)
    seconds = time.perf_counter() - start
    emit(
        {
            "bench": "collapse_lm",
            "skills": figures(args.out / "skills" / "results.csv"),
            "text": figures(args.out / "text" / "results.csv"),
            "whole_lab_seconds": round(seconds, 1),
        }
    )


if __name__ == "__main__":
    main()
