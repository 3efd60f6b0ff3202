"""`--engine ray` against `--engine local` on this machine, side by side in one run.

1. Curation-only (verify, PII, the quality rules, exact dedup) of the same generated Parquet rows
   (bench/scale.py's), local and on a local Ray with 1 and 2 CPUs, each in its own process; the
   seconds count from reading the rows to the summary written (Ray's start-up is reported apart).
   Every run must keep the same rows.
2. The training mix of the rows the local curation kept, with a golden share of 0.1, local and on a
   local Ray with 2 CPUs, each in its own process: seconds from reading the curated shards to the
   training shards written, and whether both wrote the same rows in the same order.
3. Teacher calls through 1, 2 and 4 Ray actors against the simulated OpenAI-compatible server (each
   call 0.25 s, no server limit), 8 calls in flight per actor: calls/s, and the share of linear scaling
   (rate with n actors / (n x rate with 1)).

Run: .venv/bin/python bench/ray_scale.py [ROWS]   (default 200000)"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import emit
from scale import write_rows

RECIPE = "curation:\n  verify: true\n  pii: {action: redact}\n  quality: {preset: reasoning}\n  decontaminate: null\n  dedup: true\n"  # noqa: E501
CALLS_PER_ACTOR = 640  # at 32 calls/s an actor: 20 s of calls


def curate_once(rows: str, out: str, engine: str, cpus: int) -> None:
    """One curation in this process (run by the parent as a subprocess); prints its figures."""
    from synthloop.config import load_curation
    from synthloop.curation.pipeline import Context, curate_rows
    from synthloop.runners.ray_setup import connect
    from synthloop.storage.shards import row_ids

    ray_start = time.perf_counter()
    if engine == "ray":
        connect(None, num_cpus=cpus)
    ray_seconds = time.perf_counter() - ray_start
    from synthloop.cli.main import CurateInput

    start = time.perf_counter()
    summary = curate_rows(load_curation(str(Path(out).parent / "r.yaml")), CurateInput(Path(rows)), Path(out),
                          Context(), engine=engine)  # fmt: skip
    seconds = time.perf_counter() - start
    from synthloop.storage.shards import digest

    kept = digest(row_ids(Path(out) / "curated"))
    print(json.dumps({"seconds": round(seconds, 1), "ray_start_s": round(ray_seconds, 1), "kept": summary["kept"],
                      "kept_digest": kept}))  # fmt: skip


def mix_once(curated_round: str, out: str, engine: str) -> None:
    """One training mix in this process (run by the parent as a subprocess); prints its figures."""
    from synthloop.grounding.mix import mix_tables
    from synthloop.records import Record
    from synthloop.review.apply import ReviewedRound, ReviewedRows
    from synthloop.runners.ray_setup import connect
    from synthloop.storage.shards import TableShardWriter, digest, row_ids, shard_rows
    from synthloop.training.format import sft_ready

    if engine == "ray":
        connect(None, num_cpus=2)
    golden = [sft_ready(Record("solution", "golden", f"What is {i} + 1?", "golden", 0, answer=str(i + 1)))
              for i in range(500)]  # fmt: skip
    start = time.perf_counter()
    rows = ReviewedRows([ReviewedRound(Path(curated_round), {}, True)], "golden", sft_ready)
    most = shard_rows(Path(curated_round) / "curated")  # as the loop sizes its buckets
    tables, counts = mix_tables(rows, golden, 0.1, 7, most, Path(out), engine)
    writer = TableShardWriter(Path(out) / "train", 20_000)
    for table in tables:
        writer.append(table)
    written = writer.close()
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": round(seconds, 1), "rows": written, "golden": counts["golden"],
                      "order_digest": digest(row_ids(Path(out) / "train"))}))  # fmt: skip


def generate_once(actors: int) -> None:
    """Teacher calls through `actors` actors against a simulated server in a process of its own."""
    from synthloop.config import OpenAITeacherConfig
    from synthloop.runners.ray_generate import RayTeachers, answer_on_ray
    from synthloop.runners.ray_setup import connect
    from synthloop.tasks.prompted import TextbookTask
    from synthloop.teachers.base import SamplingParams
    from synthloop.testing import free_port

    port = free_port()
    serve = ["--port", str(port), "--max-concurrent", "0", "--seconds-per-token", "0.025", "--output-tokens", "10"]
    server = subprocess.Popen([sys.executable, "-m", "synthloop.testing.simulated_server", *serve])
    try:
        connect(None, num_cpus=2)
        wait_for(port)
        task = TextbookTask()
        cfg = OpenAITeacherConfig(backend="openai", model="simulated", base_url=f"http://127.0.0.1:{port}/v1",
                                  concurrency=8 * actors)  # fmt: skip
        requests = [task.build_request(f"topic {i}", SamplingParams()) for i in range(CALLS_PER_ACTOR * actors)]
        teachers = RayTeachers(cfg, 0, actors, None, "bench")
        list(answer_on_ray(teachers, task, requests[: 8 * actors]))  # actors started and warm
        start = time.perf_counter()
        answered = sum(len(batch) for batch, _ in answer_on_ray(teachers, task, requests))
        seconds = time.perf_counter() - start
    finally:
        server.terminate()
    print(json.dumps({"calls": answered, "seconds": round(seconds, 2), "calls_per_s": round(answered / seconds, 1)}))


def wait_for(port: int) -> None:
    import socket

    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the simulated server did not start on port {port}")


def child(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    figures: dict[str, object] = {"bench": "ray_scale", "rows": rows, "stages": "verify, pii, quality, dedup"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "r.yaml").write_text(RECIPE)
        path = work / "rows.parquet"
        write_rows(path, rows)
        local = child("--curate", str(path), str(work / "local"), "local", "0")
        runs = {f"ray_{cpus}cpu": child("--curate", str(path), str(work / f"ray{cpus}"), "ray", str(cpus))
                for cpus in (1, 2)}  # fmt: skip
        figures["curate_local_s"] = local["seconds"]
        for name, run in runs.items():
            figures[f"curate_{name}_s"] = run["seconds"]
            figures[f"curate_{name}_ray_start_s"] = run["ray_start_s"]
            figures[f"curate_{name}_vs_local"] = round(run["seconds"] / local["seconds"], 2)
            figures[f"curate_{name}_same_kept"] = run["kept_digest"] == local["kept_digest"]
        figures["curate_ray_2cpu_speedup_over_1cpu"] = round(
            runs["ray_1cpu"]["seconds"] / runs["ray_2cpu"]["seconds"], 2
        )
        mixes = {engine: child("--mix", str(work / "local"), str(work / f"mix-{engine}"), engine)
                 for engine in ("local", "ray")}  # fmt: skip
        figures["mix_rows"] = mixes["local"]["rows"]
        figures["mix_local_s"] = mixes["local"]["seconds"]
        figures["mix_ray_2cpu_s"] = mixes["ray"]["seconds"]
        figures["mix_ray_2cpu_vs_local"] = round(mixes["ray"]["seconds"] / mixes["local"]["seconds"], 2)
        figures["mix_same_rows_same_order"] = mixes["ray"]["order_digest"] == mixes["local"]["order_digest"]
    rates = {actors: child("--generate", str(actors))["calls_per_s"] for actors in (1, 2, 4)}
    figures["generation_calls_per_s"] = rates
    figures["generation_share_of_linear"] = {n: round(rate / (n * rates[1]), 3) for n, rate in rates.items()}
    emit(figures)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--curate"]:
        curate_once(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif sys.argv[1:2] == ["--mix"]:
        mix_once(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1:2] == ["--generate"]:
        generate_once(int(sys.argv[2]))
    else:
        main()
