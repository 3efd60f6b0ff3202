"""The built-in classroom teacher, measured on its real outputs:

- accuracy per skill through the loop's own path (the engine, the local `transformers` backend, the
  `solve` prompt, greedy), and the verifier audit: each reply is labelled by an independent check (the
  extracted final answer against the generator's reference with math-verify for numbers and fractions,
  exact text otherwise), then the loop's verifier (the skill's scorer) decides. Wrong answers the verifier
  keeps reach training (goal 0); right answers it rejects are lost (goal 0). Kept rows whose reasoning
  differs from the reference solution are counted too (a right answer reached another way, or by luck);
- teacher throughput, completion tokens per second, through the local backend and through a real
  `transformers serve` on loopback driven by the engine over HTTP (one run each, the same problems).

    python bench/teacher.py [--per-skill 200] [--http-calls 200]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from common import emit

from synthloop.registry import SKILLS
from synthloop.skills.final_answer import find_final_answer
from synthloop.tasks.solve import SolveTask
from synthloop.teachers.base import SamplingParams
from synthloop.teachers.checkpoints import resolve_model
from synthloop.teachers.classroom.train import SKILL_NAMES
from synthloop.teachers.engine import Engine, EngineSettings
from synthloop.teachers.openai_http import OpenAITeacher
from synthloop.teachers.transformers_local import TransformersTeacher
from synthloop.testing import transformers_serve

AUDIT_SEED = 4_242  # neither the teacher's training streams nor the loop's


def independent_label(reply: str, reference: str) -> bool:
    """Right or wrong, decided without the skill's scorer."""
    from math_verify import parse, verify

    found = find_final_answer(reply, (reference,)).value
    if found is None:
        return False
    if " ".join(found.split()) == " ".join(reference.split()):
        return True
    try:
        return bool(verify(parse(f"${reference}$"), parse(f"${found}$")))
    except Exception:
        return False


def run(teacher, problems, concurrency: int, temperature: float = 0.0):
    task = SolveTask()
    sampling = SamplingParams(temperature=temperature, max_tokens=96)
    requests = [task.build_request(p, sampling) for p in problems]

    async def calls():
        try:
            return await Engine(teacher, EngineSettings(concurrency=concurrency)).run(requests)
        finally:
            await teacher.aclose()

    start = time.perf_counter()
    responses, _ = asyncio.run(calls())
    seconds = time.perf_counter() - start
    tokens = sum(r.completion_tokens or 0 for r in responses)
    return responses, seconds, tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-skill", type=int, default=200)
    parser.add_argument("--http-calls", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.0, help="the audit's sampling temperature")
    args = parser.parse_args()
    problems = [SKILLS.get(s).generate(AUDIT_SEED, i, 1) for s in SKILL_NAMES for i in range(args.per_skill)]
    local = TransformersTeacher("builtin:classroom-teacher", device="cpu", batch_size=64)
    responses, seconds, tokens = run(local, problems, 256, args.temperature)
    audit = {}
    for skill in SKILL_NAMES:
        rows = [(p, r) for p, r in zip(problems, responses, strict=True) if p.skill == skill]
        right = kept = wrong_kept = right_rejected = other_reasoning = 0
        for problem, response in rows:
            text = response.text or ""
            truth = independent_label(text, problem.answer)
            keep = SKILLS.get(skill).score(text, problem.answer) >= 1.0
            right += truth
            kept += keep
            wrong_kept += keep and not truth
            right_rejected += truth and not keep
            other_reasoning += keep and text.split("####")[0].strip() != "\n".join(problem.steps)
        audit[skill] = {
            "problems": len(rows),
            "teacher_right": round(right / len(rows), 3),
            "kept": kept,
            "wrong_answers_kept": wrong_kept,
            "right_answers_rejected": right_rejected,
            "kept_with_other_reasoning": other_reasoning,
        }
    subset = problems[:: max(1, len(problems) // args.http_calls)][: args.http_calls]
    _, local_seconds, local_tokens = run(
        TransformersTeacher("builtin:classroom-teacher", device="cpu", batch_size=64), subset, 256
    )
    with transformers_serve(resolve_model("builtin:classroom-teacher")) as base:
        http = OpenAITeacher(resolve_model("builtin:classroom-teacher"), f"{base}/v1", concurrency=64)
        _, http_seconds, http_tokens = run(http, subset, 64)
    emit(
        {
            "bench": "teacher",
            "temperature": args.temperature,
            "audit": audit,
            "macro_teacher_right": round(sum(a["teacher_right"] for a in audit.values()) / len(audit), 3),
            "local_all_problems": {
                "calls": len(problems),
                "seconds": round(seconds, 1),
                "completion_tokens_per_s": round(tokens / seconds),
            },
            "throughput_same_calls": {
                "calls": len(subset),
                "local_tokens_per_s": round(local_tokens / local_seconds),
                "http_transformers_serve_tokens_per_s": round(http_tokens / http_seconds),
                "local_seconds": round(local_seconds, 1),
                "http_seconds": round(http_seconds, 1),
            },
        }
    )


if __name__ == "__main__":
    main()
