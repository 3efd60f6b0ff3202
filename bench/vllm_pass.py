"""The client side of `teacher.backend: vllm` on this machine: what the driver and Ray Data LLM's
processor cost per call when the engine costs nothing.

A generate job of N textbook calls (default 20,000) on a local Ray with 2 CPUs, through Ray Data LLM's
real processor (chat template, tokenizer and detokenizer stages on a small local model), its vLLM
engine stage played by the stand-in (`synthloop.testing.vllm_stand_in`) answering at once with 32-word
replies. The
pass through the processor (answers committed to the response cache) and the writing of the step from
the cache are timed apart; the driver's own CPU seconds (user + system) are counted over the whole
job. A real vLLM takes far longer per call: these figures bound what synthloop adds to it.

Run: .venv/bin/python bench/vllm_pass.py [CALLS]   (default 20000)"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from common import emit

import synthloop.runners.ray_vllm as ray_vllm
from synthloop.cli.main import main
from synthloop.storage.shards import rows_in
from synthloop.testing.tiny_model import build_tiny_chat_model
from synthloop.testing.vllm_stand_in import StandInEngines


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(calls: int) -> dict:
    from synthloop.runners.ray_setup import connect

    connect(None, num_cpus=2)
    passes: list[float] = []
    timed_pass = ray_vllm.vllm_pass

    def vllm_pass(*args, **kwargs):
        start = time.perf_counter()
        try:
            return timed_pass(*args, **kwargs)
        finally:
            passes.append(time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as tmp:
        model = str(build_tiny_chat_model(Path(tmp) / "model"))  # Ray's tokenizer stages read its tokenizer
        ray_vllm.ENGINES = lambda cfg: StandInEngines(cfg, None)
        ray_vllm.vllm_pass = vllm_pass
        job = {"name": "bench", "shard_size": 5000,
               "teacher": {"backend": "vllm", "model": model, "batch_size": 256, "replicas": 2},
               "steps": [{"name": "book", "task": "textbook", "max_tokens": 128,
                          "inputs": [f"topic number {i}" for i in range(calls)]}]}  # fmt: skip
        path = Path(tmp) / "job.yaml"
        path.write_text(yaml.safe_dump(job))
        cpu, start = cpu_seconds(), time.perf_counter()
        status = main(["generate", str(path), "--run-dir", str(Path(tmp) / "run"), "--engine", "ray"])
        total, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        assert status == 0, status
        rows = rows_in(sorted((Path(tmp) / "run" / "steps" / "book").glob("part-*.parquet")))
        assert rows == calls, rows
    first = passes[0]
    return {
        "bench": "vllm_pass",
        "calls": calls,
        "engine": "stand-in (answers at once), 2 replicas, batch 256, local Ray with 2 CPUs",
        "pass_s": round(first, 1),
        "pass_calls_per_s": round(calls / first),
        "write_from_cache_s": round(total - first, 1),
        "total_s": round(total, 1),
        "driver_cpu_ms_per_call": round(1000 * cpu / calls, 3),
    }


if __name__ == "__main__":
    emit(run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
