"""Curation at scale on one machine: peak RSS and rows/s of `synthloop curate` as the input grows.

Each size is a Parquet file of synthetic solution rows (a twentieth exact duplicates, a tenth with a
wrong answer, short reasoning) curated with verification, PII redaction, the quality rules and exact
dedup, in its own process; its peak RSS is read from the kernel. Streaming works when the peak stays
flat as the rows grow (issue 14's goal: within 20% from 1M to 4M rows).

Run: .venv/bin/python bench/scale.py [ROWS ...]   (default 100000 300000; the issue asks 100k, 1M, 4M)"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from common import emit

RECIPE = "curation:\n  verify: true\n  pii: {action: redact}\n  quality: {preset: reasoning}\n  decontaminate: null\n  dedup: true\n"  # noqa: E501
MEASURE = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)
BATCH = 100_000


def write_rows(path: Path, n: int) -> None:
    """`n` rows written 100,000 at a time (the writer itself never holds them all)."""
    writer = None
    for start in range(0, n, BATCH):
        batch = []
        for i in range(start, min(n, start + BATCH)):
            k = i - i % 20 if i % 20 == 19 else i  # every twentieth row repeats the one before it
            a, b = k % 9973, k // 9973
            right = str(a + b)
            answer = str(a + b + 1) if k % 10 == 3 else right
            reasoning = f"Add {a} and {b}: {a} + {b} = {answer}."
            batch.append({"question": f"What is {a} + {b}? (item {k})", "reasoning": reasoning, "answer": answer,
                          "reference_answer": right})  # fmt: skip
        table = pa.Table.from_pylist(batch)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    if writer:
        writer.close()


def curate(rows: Path, work: Path, name: str) -> dict:
    command = [sys.executable, "-m", "synthloop.cli.main", "curate", str(rows), "--recipe", str(work / "r.yaml"),
               "--out", str(work / name)]  # fmt: skip
    start = time.perf_counter()
    kib = int(subprocess.run([sys.executable, "-c", MEASURE, *command], check=True, capture_output=True,
                             text=True).stdout)  # fmt: skip
    seconds = time.perf_counter() - start
    summary = json.loads((work / name / "summary.json").read_text())
    return {"peak_rss_mb": round(kib / 1024, 1), "seconds": round(seconds, 1), "kept": summary["kept"],
            "rejected": summary["rejected"]}  # fmt: skip


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [100_000, 300_000]
    figures: dict[str, object] = {"bench": "scale", "stages": "verify, pii, quality, dedup"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "r.yaml").write_text(RECIPE)
        for n in sizes:
            path = work / f"rows-{n}.parquet"
            write_rows(path, n)
            result = curate(path, work, f"out-{n}")
            result["rows_per_s"] = round(n / result["seconds"], 1)
            figures[str(n)] = result
            path.unlink()
    emit(figures)


if __name__ == "__main__":
    main()
