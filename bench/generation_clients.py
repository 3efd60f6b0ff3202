"""One client of the generation benchmark, run in its own process so its CPU time is its own:

    python bench/generation_clients.py synthloop|curator|distilabel URL CALLS CONCURRENCY OUTPUT_TOKENS

Sends CALLS distinct chat requests to the OpenAI-compatible server at URL with CONCURRENCY in flight
and prints one JSON line: calls answered, wall seconds, CPU seconds of this process. Each client is
used the way its documentation shows for an OpenAI-compatible server; `curator` and `distilabel` run
from the benchmark's separate virtualenv."""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time


def prompts(calls: int) -> list[str]:
    return [f"Write a short note about item {i}." for i in range(calls)]


def run_synthloop(url: str, calls: int, concurrency: int, tokens: int) -> int:
    import asyncio

    from synthloop.records import Message
    from synthloop.teachers.base import SamplingParams, TeacherRequest
    from synthloop.teachers.engine import Engine, EngineSettings
    from synthloop.teachers.openai_http import OpenAITeacher

    requests = [TeacherRequest((Message("user", p),), SamplingParams(max_tokens=tokens)) for p in prompts(calls)]

    async def go():
        teacher = OpenAITeacher("simulated", f"{url}/v1", concurrency=concurrency)
        try:
            return await Engine(teacher, EngineSettings(concurrency=concurrency, timeout_s=600)).run(requests)
        finally:
            await teacher.aclose()

    out, _ = asyncio.run(go())
    return sum(r is not None and r.text is not None for r in out)


def run_curator(url: str, calls: int, concurrency: int, tokens: int) -> int:
    os.environ.setdefault("CURATOR_CACHE_DIR", tempfile.mkdtemp(prefix="curator-"))
    os.environ.setdefault("CURATOR_DISABLE_RICH_DISPLAY", "1")
    import tiktoken

    # curator counts tokens with tiktoken's cl100k_base, whose file it downloads on first use; with no
    # network here it gets a byte-level tiktoken encoding instead (token estimates only, for its limits).
    offline = tiktoken.Encoding(
        name="bytes", pat_str=r"\S+|\s+", mergeable_ranks={bytes([i]): i for i in range(256)}, special_tokens={}
    )
    tiktoken.get_encoding = lambda name: offline
    from bespokelabs import curator

    llm = curator.LLM(
        model_name="simulated",
        backend="openai",
        generation_params={"max_tokens": tokens},
        backend_params={
            "base_url": f"{url}/v1",
            "api_key": "unused",
            "max_concurrent_requests": concurrency,
            "max_requests_per_minute": 10_000_000,
            "max_tokens_per_minute": 10_000_000_000,
            "require_all_responses": False,
            "request_timeout": 600,
        },
    )
    result = llm(prompts(calls))
    dataset = getattr(result, "dataset", result)
    return sum(1 for row in dataset if row.get("response"))


def run_distilabel(url: str, calls: int, concurrency: int, tokens: int) -> int:
    from distilabel.models.llms import OpenAILLM

    llm = OpenAILLM(model="simulated", base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)
    llm.load()
    inputs = [[{"role": "user", "content": p}] for p in prompts(calls)]
    answered = 0
    for start in range(0, calls, concurrency):  # generate() gathers one batch at a time
        outputs = llm.generate(inputs=inputs[start : start + concurrency], num_generations=1, max_new_tokens=tokens)
        answered += sum(1 for o in outputs if o["generations"] and o["generations"][0])
    return answered


CLIENTS = {"synthloop": run_synthloop, "curator": run_curator, "distilabel": run_distilabel}


def main() -> None:
    name, url, calls, concurrency, tokens = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    start = time.perf_counter()
    answered = CLIENTS[name](url, calls, concurrency, tokens)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"answered": answered, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime}))


if __name__ == "__main__":
    main()
