"""vLLM on a Ray cluster's GPU workers, through Ray Data's LLM support (`teacher.backend: vllm`,
`--engine ray`).

vLLM answers a batch far faster than call by call, and loading a model takes minutes, so a step's
calls go in two passes, and the engines load once per pass:

1. Every request the response cache lacks goes through one Ray Data LLM processor (chat template,
   tokenizer, vLLM, detokenizer, on as many GPU replicas as the recipe allows). Each answer is
   committed to the response cache as it reaches the driver. Then every reply in the cache that the
   task cannot parse gets one repair call, in a second, smaller pass (tasks with a JSON schema).
2. The step is then written as a resumed step is written: each answer read back from the cache,
   parsed, made into rows, shard by shard with checkpoints. A call vLLM failed is kept as a failed
   record with vLLM's error, and `--resume` sends it again.

A run killed in a pass loses only the answers not yet back (a block of calls comes back when all of
them are done), and a resumed run sends what the cache lacks. The budget caps hold back, before a
pass, the calls whose worst-case tokens or cost could cross a cap; the calls before them are answered
into the cache, and the run stops before writing the step."""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from synthloop.config import VLLMTeacherConfig
from synthloop.runners.ray_setup import RayUnavailable
from synthloop.tasks.base import Task, repair_request
from synthloop.teachers.base import TeacherRequest, TeacherResponse, TeacherUnavailable
from synthloop.teachers.engine import BudgetExhausted, Engine, cap_reached, worst_cost, worst_tokens

# calls per block handed to Ray Data at most. A block's answers reach the driver together, once all are
# done, so a kill loses the blocks in flight; many small blocks cost Ray Data time of their own.
CALLS_PER_BLOCK = 1024
CHECK_TIMEOUT_S = 300.0  # for a GPU worker to import vLLM (a cluster may have to start a GPU node first)
LLM_EXTRA = "pip install 'ray[llm]'"


class VLLMEngines:
    """Where the calls run: Ray Data LLM's vLLM processor, built from the recipe's teacher."""

    def __init__(self, cfg: VLLMTeacherConfig):
        self.cfg = cfg

    def check(self, ray: Any) -> None:
        """Fail before anything is written: no GPUs for one replica, Ray's LLM support missing here, or
        vLLM missing on the GPU workers."""
        need, have = self.cfg.gpus_per_replica, int(ray.cluster_resources().get("GPU", 0))
        if have < need:
            raise TeacherUnavailable(
                f"teacher.backend vllm needs {need} GPU(s) for one replica, and the Ray cluster has {have}: join a "
                "cluster with GPU workers (--address), or serve the model with `vllm serve` and use backend openai"
            )
        try:
            import ray.data.llm  # Ray's LLM support, needed on the driver
        except ImportError as err:
            raise RayUnavailable(f"Ray's LLM support is not installed here ({err}); install it: {LLM_EXTRA}") from None
        placement = {"accelerator_type": self.cfg.accelerator_type} if self.cfg.accelerator_type else {}
        probe = ray.remote(num_gpus=1, **placement)(vllm_version)
        try:
            said = ray.get(probe.remote(), timeout=CHECK_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise TeacherUnavailable(
                f"no GPU worker took a task within {CHECK_TIMEOUT_S:g}s"
                + (f" (accelerator_type {self.cfg.accelerator_type})" if self.cfg.accelerator_type else "")
            ) from None
        if said.startswith("error:"):
            raise TeacherUnavailable(
                f"vLLM cannot be imported on the GPU workers ({said[6:]}); install {LLM_EXTRA} there"
            )

    def processor(self, preprocess: Callable, postprocess: Callable) -> Callable[[Any], Any]:
        from ray.data.llm import build_processor

        return build_processor(processor_config(self.cfg), preprocess=preprocess, postprocess=postprocess)


def processor_config(cfg: VLLMTeacherConfig) -> Any:
    """Ray Data LLM's config for the recipe's vLLM teacher. A failed call comes back as a row with its
    error (`should_continue_on_error`) rather than failing the pass."""
    from ray.data.llm import vLLMEngineProcessorConfig

    return vLLMEngineProcessorConfig(
        model_source=cfg.model,
        engine_kwargs=dict(cfg.engine_kwargs),
        concurrency=cfg.replicas,
        batch_size=cfg.batch_size,
        accelerator_type=cfg.accelerator_type,
        should_continue_on_error=True,
    )


def vllm_version() -> str:
    try:
        import vllm
    except Exception as err:  # any failure to import is the answer
        return f"error: {type(err).__name__}: {err}"
    return str(getattr(vllm, "__version__", "unknown"))


ENGINES: Callable[[VLLMTeacherConfig], Any] = VLLMEngines  # what `give_to_ray` builds (a test's stand-in here)


@dataclass
class VLLMOnRay:
    """An engine whose calls go through vLLM on the cluster (`engine.on_ray`)."""

    teacher: VLLMTeacherConfig
    engines: Any  # a VLLMEngines


def check_cluster(cfg: VLLMTeacherConfig) -> None:
    import ray

    ENGINES(cfg).check(ray)


def give_vllm_to_ray(engine: Engine, cfg: VLLMTeacherConfig, log: Callable[[str], None]) -> None:
    """The engine's calls go through vLLM on the cluster (checked by `check_cluster` before anything was
    written)."""
    engine.on_ray = VLLMOnRay(cfg, ENGINES(cfg))
    log(f"teacher: vLLM on the cluster's GPUs ({cfg.replicas} replica(s) at most, {cfg.gpus_per_replica} GPU(s) each)")


@dataclass
class Pass:
    """What one pass sent and got back; `stopped`: why a budget cap held calls back."""

    answered: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)
    stopped: str | None = None


def answer_with_vllm(
    engine: Engine, task: Task, requests: Sequence[TeacherRequest], chunk: int
) -> Iterator[tuple[list[Any], dict[str, Any]]]:
    """(answered, stats) a chunk at a time, in request order, as `answered_chunks` gives them. A budget
    cap that holds calls back stops the step before it is written: its answers are in the cache, and
    the step is written when the run goes on (`--resume`, the cap raised)."""
    from synthloop.runners.local import answer_and_parse

    first = vllm_pass(engine, task, requests)
    repaired = Pass()
    if not first.stopped and (repairs := repairs_needed(engine, task, requests, chunk)):
        repaired = vllm_pass(engine, task, repairs)
    if first.stopped or repaired.stopped:
        raise BudgetExhausted(first.stopped or repaired.stopped)
    engine.teacher.failures = first.failures | repaired.failures
    progress, engine.progress = engine.progress, None  # the passes showed the calls; reading them back is quick
    try:
        for start in range(0, max(1, len(requests)), chunk):
            answered, stats = answer_and_parse(engine, task, requests[start : start + chunk])
            if start == 0:  # what the passes sent, counted once, as sent rather than as found in the cache
                stats = counted_as_sent(stats, "calls", first)
                stats = counted_as_sent(stats, "repair_calls", repaired) if repaired.answered else stats
            yield answered, stats
    finally:
        engine.progress = progress
        engine.teacher.failures = {}


def repairs_needed(engine: Engine, task: Task, requests: Sequence[TeacherRequest], chunk: int) -> list[TeacherRequest]:
    """The repair call of every reply in the cache that the task cannot parse, whenever it was answered
    (this pass, or a run killed before its repairs were sent): the calls writing the step will ask for."""
    if task.schema is None:
        return []
    repairs = []
    for start in range(0, len(requests), chunk):
        part = requests[start : start + chunk]
        keys = [engine.key(r) for r in part]
        answers = engine.cache.get_many(keys)
        for key, request in zip(keys, part, strict=True):
            response = answers.get(key)
            for text in response.texts if response else ():
                if failure := task.parse(text).failure:
                    repairs.append(repair_request(request, text, failure, task.schema))
    return repairs


def counted_as_sent(stats: dict[str, Any], key: str, sent: Pass) -> dict[str, Any]:
    """`stats` with a pass's answers counted as calls made (the engine found them in the cache)."""
    calls = dict(stats.get(key, {}))
    for name, value in (("issued", sent.answered), ("answered", sent.answered), ("cached", -sent.answered),
                        ("attempts", sent.answered), ("prompt_tokens", sent.prompt_tokens),
                        ("completion_tokens", sent.completion_tokens), ("cost_usd", sent.cost_usd)):  # fmt: skip
        calls[name] = calls.get(name, 0) + value
    return stats | {key: calls}


def vllm_pass(engine: Engine, task: Task, requests: Sequence[TeacherRequest]) -> Pass:
    """Send what the cache lacks through vLLM and commit each answer to the cache as it comes back."""
    import ray

    on_ray: VLLMOnRay = engine.on_ray
    keys = [engine.key(r) for r in requests]  # each a hash of the whole request: computed once
    known = engine.cache.known(keys)
    budget = Budget(engine)
    done = Pass()
    pending: dict[str, TeacherRequest] = {}
    for key, request in zip(keys, requests, strict=True):
        if key in known or key in pending:
            continue
        if not budget.take(request):
            done.stopped = budget.stopped
            break
        pending[key] = request
    if not pending:
        return done
    order = list(pending)
    schema = task.schema if on_ray.teacher.structured_output else None
    # blocks enough for every replica to have work (a block goes to one replica), each a batch at least
    size = max(on_ray.teacher.batch_size, min(CALLS_PER_BLOCK, math.ceil(len(order) / (4 * on_ray.teacher.replicas))))
    blocks = [call_rows(order[start : start + size], pending, start, schema) for start in range(0, len(order), size)]
    context = ray.data.DataContext.get_current()
    kept_order, context.execution_options.preserve_order = context.execution_options.preserve_order, False
    try:  # answers come back as each batch is done, not held for the batches before it: a kill loses fewer
        processed = on_ray.engines.processor(prepare_row, reply_of)(ray.data.from_arrow(blocks))
    finally:
        context.execution_options.preserve_order = kept_order
    if engine.progress:
        engine.progress.begin(len(order) + len(known), len(known))
    # a pass of fewer blocks than replicas starts fewer engines, which Ray Data warns of: expected here
    warnings.filterwarnings("ignore", message="The minimum number of concurrent actors", category=UserWarning)
    try:
        collect(engine, processed, order, pending, done)
        if engine.progress:
            engine.progress.finish()
    except ray.exceptions.RayError as err:  # the engine itself failed (a model that cannot load, say)
        raise TeacherUnavailable(
            f"vLLM on the cluster stopped: {innermost(err)}. The {done.answered} answers received in this pass are "
            "in the response cache: fix the cause and rerun with --resume"
        ) from None
    return done


def collect(engine: Engine, processed: Any, order: list[str], pending: dict[str, TeacherRequest], done: Pass) -> None:
    """Commit each call's answer once all its samples are back (rows come as their batches finish, in
    any order), or note its failure."""
    samples: dict[int, list[dict[str, Any]]] = {}
    for row in processed.iter_rows():
        index = int(row["index"])
        key = order[index]
        got = samples.setdefault(index, [])
        got.append(row)
        if len(got) < pending[key].sampling.n:
            continue
        del samples[index]
        got.sort(key=lambda r: int(r["sample"]))
        # as Ray Data LLM decides: a row whose error is anything but "" failed, and skipped the postprocess
        errors = [str(r["__inference_error__"]) for r in got if r.get("__inference_error__", "") != ""]
        completion = sum(count(r, "completion_tokens") for r in got)
        if engine.progress:
            engine.progress.advance(not errors, completion)
        if errors:
            done.failures[key] = errors[0]
            continue
        prompt = count(got[0], "prompt_tokens")  # one prompt, sampled n times
        commit(engine, done, key, TeacherResponse(tuple(str(r["text"]) for r in got), None, prompt, completion))


def count(row: dict[str, Any], column: str) -> int:
    """A token count as the engine gave it; a missing or negative one is 0."""
    return max(0, int(row.get(column) or 0))


def innermost(err: BaseException) -> str:
    """The error under Ray's wrapping, as one line. A remote task's exception reaches the driver as text
    (its traceback, the first cause first): the first `Name: message` line that is not Ray's own."""
    text = str(err)
    for line in text.splitlines():
        match = ERROR_LINE.match(line.strip())
        if match and "ray." not in match.group(1) and match.group(1) not in RAY_WRAPPERS:
            return line.strip()[:500]
    return (text.strip().splitlines() or [type(err).__name__])[0][:500]


ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): ")
RAY_WRAPPERS = ("UserCodeException", "RayTaskError", "RayError", "RaySystemError")


def commit(engine: Engine, done: Pass, key: str, response: TeacherResponse) -> None:
    cost = engine.settings.prices.cost(response.prompt_tokens, response.completion_tokens)
    engine.cache.record(engine.run_id, key, response, cost, engine.teacher.backend, engine.teacher.model)
    done.answered += 1
    done.prompt_tokens += response.prompt_tokens
    done.completion_tokens += response.completion_tokens
    done.cost_usd += cost


def call_rows(keys: list[str], pending: dict[str, TeacherRequest], start: int, schema: Any) -> pa.Table:
    """One row per sample of each call: its position among the calls, the sample, the messages and
    vLLM's sampling parameters (a seed of its own, so each sample differs and a rerun repeats it)."""
    index, sample, messages, sampling = [], [], [], []
    for offset, key in enumerate(keys):
        request = pending[key]
        chat = json.dumps([{"role": m.role, "content": m.content} for m in request.messages])
        for j in range(request.sampling.n):
            params = {"temperature": request.sampling.temperature, "top_p": request.sampling.top_p,
                      "max_tokens": request.sampling.max_tokens, "seed": (int(key[:8], 16) + j) % 2**31}  # fmt: skip
            if schema is not None and request.response_schema is not None:
                # as text: a JSON schema's varying keys would not survive Arrow's typed columns as a dict
                params["structured_outputs"] = {"json": json.dumps(request.response_schema)}
            index.append(start + offset)
            sample.append(j)
            messages.append(chat)
            sampling.append(json.dumps(params))
    return pa.table({"index": pa.array(index, pa.int64()), "sample": pa.array(sample, pa.int32()),
                     "messages": messages, "sampling": sampling})  # fmt: skip


def prepare_row(row: dict[str, Any]) -> dict[str, Any]:
    """Ray Data LLM's input: OpenAI-style messages and vLLM's sampling parameters."""
    return {"messages": json.loads(row["messages"]), "sampling_params": json.loads(row["sampling"])}


def reply_of(row: dict[str, Any]) -> dict[str, Any]:
    """What comes back to the driver: the call, the sample, the text and its tokens. (A failed row skips
    this and comes back whole, with `__inference_error__`.)"""
    return {"index": row["index"], "sample": row["sample"], "text": row["generated_text"],
            "prompt_tokens": row["num_input_tokens"], "completion_tokens": row["num_generated_tokens"]}  # fmt: skip


class Budget:
    """The budget caps over the calls about to be sent, each held at its worst case against what the run
    has spent, as the engine holds a call in flight."""

    def __init__(self, engine: Engine):
        self.settings = engine.settings
        spent = engine.cache.spent(engine.run_id)
        self.tokens, self.cost = spent.tokens, spent.cost_usd
        self.stopped: str | None = None

    def take(self, request: TeacherRequest) -> bool:
        estimate = worst_tokens(request)
        self.stopped = cap_reached(self.settings, self.tokens, self.cost, estimate)
        if self.stopped:
            return False
        self.tokens += estimate
        self.cost += worst_cost(self.settings.prices, estimate)
        return True
