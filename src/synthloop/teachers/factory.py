"""Build the teacher and the engine settings a recipe asks for."""

from __future__ import annotations

import asyncio

from synthloop.config import (
    EngineFields,
    OpenAITeacherConfig,
    OracleTeacherConfig,
    RecipeError,
    StudentTeacherConfig,
    TransformersTeacherConfig,
    VLLMTeacherConfig,
)
from synthloop.registry import TEACHERS
from synthloop.teachers.base import Teacher
from synthloop.teachers.engine import EngineSettings, Prices
from synthloop.teachers.openai_http import SpreadTeacher


def make_teacher(cfg: EngineFields, seed: int = 0) -> Teacher:
    """The backend named by `cfg.backend`; raises `TeacherUnavailable` for a key variable that is not set.
    A student teacher starts as its `first_round` teacher: the loop swaps in each round's student."""
    if isinstance(cfg, StudentTeacherConfig):
        return make_teacher(cfg.first_round, seed)
    backend = TEACHERS.get(cfg.backend)
    if isinstance(cfg, OracleTeacherConfig):
        return backend(model=cfg.model, noise=cfg.noise, seed=seed)
    if isinstance(cfg, OpenAITeacherConfig):
        urls = [cfg.base_url] if isinstance(cfg.base_url, str) else cfg.base_url
        servers = [
            backend(
                model=cfg.model,
                base_url=url,
                api_key_env=cfg.api_key_env,
                endpoint=cfg.endpoint,
                structured_output=cfg.structured_output,
                concurrency=cfg.concurrency,
                extra_body=cfg.extra_body,
                max_reply_bytes=cfg.max_reply_bytes,
            )
            for url in urls
        ]
        return servers[0] if len(servers) == 1 else SpreadTeacher(servers)
    if isinstance(cfg, TransformersTeacherConfig):
        return backend(model=cfg.model, device=cfg.device, batch_size=cfg.batch_size, dtype=cfg.dtype)
    if isinstance(cfg, VLLMTeacherConfig):
        return backend(model=cfg.model, structured_output=cfg.structured_output)
    raise TypeError(f"no factory for teacher config {type(cfg).__name__}")


def check_engine(cfg: EngineFields, engine: str) -> None:
    """Before anything is written: a teacher that only runs on Ray (vLLM on the cluster's GPUs) needs
    `--engine ray`, and a cluster with GPUs and vLLM on them (Ray joined already)."""
    if not isinstance(cfg, VLLMTeacherConfig):
        return
    if engine != "ray":
        raise RecipeError(
            "teacher.backend vllm runs on a Ray cluster's GPU workers: add --engine ray (with --address to join "
            "the cluster), or serve the model with `vllm serve MODEL` and use backend openai"
        )
    from synthloop.runners.ray_vllm import check_cluster

    check_cluster(cfg)


def engine_settings(cfg: EngineFields) -> EngineSettings:
    return EngineSettings(
        concurrency=cfg.concurrency,
        max_retries=cfg.max_retries,
        timeout_s=cfg.timeout_s,
        requests_per_minute=cfg.requests_per_minute,
        tokens_per_minute=cfg.tokens_per_minute,
        backoff_base_s=cfg.backoff_base_s,
        max_total_tokens=cfg.max_total_tokens,
        max_cost_usd=cfg.max_cost_usd,
        prices=Prices(cfg.prices.input_per_million, cfg.prices.output_per_million),
    )


def check_teacher(teacher: Teacher) -> None:
    """Fail now, before anything is written, if the teacher cannot answer (unreachable, unknown model)."""

    async def check() -> None:
        try:
            await teacher.check()
        finally:
            await teacher.aclose()

    asyncio.run(check())
