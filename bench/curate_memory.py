"""Peak RSS of `synthloop curate` on 100k normal rows, and on the same rows plus 50 rows with a 5 MB
field each: a field over the 1 MiB cap is never held whole, so the two peaks should be within 10%.
Both as JSONL and as Parquet (read in batches, cells measured in Arrow). Each curate runs in its own
process, its peak read from the kernel. Prints one JSON line."""

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


def rows(oversize: int) -> list[dict[str, str]]:
    out = []
    for i in range(ROWS):
        out.append({"question": f"What is {i} plus {i % 97}?", "answer": str(i + i % 97),
                    "reference_answer": str(i + i % 97)})  # fmt: skip
        if oversize and i % (ROWS // oversize) == 0:
            out.append({"question": "huge", "answer": "x" * 5_000_000, "reference_answer": "1"})
    return out


def write_rows(path: Path, oversize: int) -> None:
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows(oversize)), path)
        return
    with open(path, "w") as out:
        out.writelines(json.dumps(row) + "\n" for row in rows(oversize))


def peak_rss_mb(rows: Path, work: Path, name: str) -> tuple[float, float]:
    command = [sys.executable, "-m", "synthloop.cli.main", "curate", str(rows), "--recipe", str(work / "r.yaml"),
               "--out", str(work / name)]  # fmt: skip
    start = time.perf_counter()
    kib = int(subprocess.run([sys.executable, "-c", MEASURE, *command], check=True, capture_output=True,
                             text=True).stdout)  # fmt: skip
    return round(kib / 1024, 1), round(time.perf_counter() - start, 1)


def main() -> None:
    figures: dict[str, object] = {"rows": ROWS, "oversize_rows": OVERSIZE, "oversize_field_mb": 5}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "r.yaml").write_text(RECIPE)
        for kind in ("jsonl", "parquet"):
            write_rows(work / f"normal.{kind}", 0)
            write_rows(work / f"with_oversize.{kind}", OVERSIZE)
            normal, normal_s = peak_rss_mb(work / f"normal.{kind}", work, f"{kind}-a")
            hostile, hostile_s = peak_rss_mb(work / f"with_oversize.{kind}", work, f"{kind}-b")
            rejected = json.loads((work / f"{kind}-b" / "summary.json").read_text())["rejected"]
            figures[kind] = {"normal_peak_rss_mb": normal, "with_oversize_peak_rss_mb": hostile,
                             "ratio": round(hostile / normal, 3), "normal_s": normal_s,
                             "with_oversize_s": hostile_s, "rejected": rejected}  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
