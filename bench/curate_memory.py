"""Peak RSS of `synthloop curate` on 100k normal rows, and on the same rows plus 50 rows with a 5 MB
field each: a field over the 1 MiB cap is never held whole, so the two peaks should be within 10%.
Each curate runs in its own process, its peak read from the kernel. Prints one JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS = 100_000
OVERSIZE = 50
RECIPE = "curation:\n  verify: true\n  pii: false\n  quality: false\n  decontaminate: false\n  dedup: true\n"
MEASURE = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def write_rows(path: Path, oversize: int) -> None:
    with open(path, "w") as out:
        for i in range(ROWS):
            out.write(json.dumps({"question": f"What is {i} plus {i % 97}?", "answer": str(i + i % 97),
                                  "reference_answer": str(i + i % 97)}) + "\n")  # fmt: skip
            if oversize and i % (ROWS // oversize) == 0:
                out.write(json.dumps({"question": "huge", "answer": "x" * 5_000_000}) + "\n")


def peak_rss_mb(rows: Path, work: Path, name: str) -> tuple[float, float]:
    command = [sys.executable, "-m", "synthloop.cli.main", "curate", str(rows), "--recipe", str(work / "r.yaml"),
               "--out", str(work / name)]  # fmt: skip
    start = time.perf_counter()
    kib = int(subprocess.run([sys.executable, "-c", MEASURE, *command], check=True, capture_output=True,
                             text=True).stdout)  # fmt: skip
    return round(kib / 1024, 1), round(time.perf_counter() - start, 1)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "r.yaml").write_text(RECIPE)
        write_rows(work / "normal.jsonl", 0)
        write_rows(work / "with_oversize.jsonl", OVERSIZE)
        normal, normal_s = peak_rss_mb(work / "normal.jsonl", work, "a")
        hostile, hostile_s = peak_rss_mb(work / "with_oversize.jsonl", work, "b")
        rejected = json.loads((work / "b" / "summary.json").read_text())["rejected"]
    print(json.dumps({"rows": ROWS, "oversize_rows": OVERSIZE, "oversize_field_mb": 5, "normal_peak_rss_mb": normal,
                      "with_oversize_peak_rss_mb": hostile, "ratio": round(hostile / normal, 3),
                      "normal_s": normal_s, "with_oversize_s": hostile_s, "rejected": rejected}))  # fmt: skip


if __name__ == "__main__":
    main()
