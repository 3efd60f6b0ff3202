"""The recipe: typed, validated where it enters, loaded from YAML.

A bad recipe raises `RecipeError` with one line that names the key path and, for a misspelled key or
an unknown skill or backend, the closest valid name. Nothing is written before a recipe validates."""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from synthloop.curation.judge import DEFAULT_RUBRIC
from synthloop.registry import SCORERS, SKILLS, TEACHERS, Registry, UnknownNameError, closest


class RecipeError(ValueError):
    """A recipe that cannot be used; the message says which key and what to do."""


def error_line(err: BaseException) -> str:
    """An exception's first line (or its type), at most 200 characters: the reason inside a one-line error."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def Registered(registry: Registry) -> Any:  # capitalised: it is used as a type
    """A name that must be in `registry`; an unknown one fails validation with "did you mean"."""

    def known(name: str) -> str:
        registry.check(name)
        return name

    return Annotated[str, AfterValidator(known)]


MAX_FILE_BYTES = 1 << 20  # a recipe or job file larger than this is a mistake
MAX_VALUES = 100_000  # values in a loaded recipe, aliases expanded (a YAML "billion laughs" stops here)
MAX_DEPTH = 64
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


def check_name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise ValueError(
            "must be 1 to 100 letters, digits, '.', '_' or '-', not starting with '.' (it names a folder under runs/)"
        )
    return value


Name = Annotated[str, AfterValidator(check_name)]
Seed = Annotated[int, Field(ge=0, lt=2**32)]  # torch and numpy refuse others, and only after data was written
Text = Annotated[str, Field(min_length=1, max_length=1000)]  # a model name, a URL, a device: never a megabyte
FilePath = Annotated[str, Field(min_length=1, max_length=4096)]  # PATH_MAX
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")
NEVER_ECHOED = ("api_key_env",)  # an error about these keys does not repeat the value: it may be a pasted key


def check_env_name(value: str) -> str:
    if not ENV_NAME.fullmatch(value):
        raise ValueError(
            "must be the name of an environment variable (letters, digits, '_'), never the key itself; "
            "export the key in a variable and name that variable here"
        )
    return value


def read_yaml_file(path: Path, what: str) -> Any:
    """A recipe or job file, loaded with bounds: its size, UTF-8 text, nesting depth and the number of
    values once aliases are expanded, so a hostile file fails with one line instead of a hang."""
    if not path.exists():
        raise RecipeError(f"{what} file not found: {path}")
    if not path.is_file():  # a folder, a fifo or a device would hang or never end
        raise RecipeError(f"{path}: not a regular file; a {what} is a YAML text file")
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)  # never trust st_size alone (/proc files say 0)
    except OSError as err:
        raise RecipeError(f"{path}: cannot be read ({err.strerror or err})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise RecipeError(f"{path}: over {MAX_FILE_BYTES} bytes; a {what} file is at most {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecipeError(f"{path}: not UTF-8 text (byte {err.start}); a {what} is a YAML text file") from None
    if "\x00" in text:
        raise RecipeError(f"{path}: contains NUL bytes; a {what} is a YAML text file")
    return parse_yaml(text, str(path))


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (PyYAML keeps the
    last one silently: `name: a` then `name: b` would run as b)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # Only the keys written in this mapping: a key merged in with `<<: *base` may be overridden here.
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


# YAML 1.1 (PyYAML) reads `1e-3` as a string: it needs a dot. Read it as YAML 1.2 and JSON do, a number,
# or strict validation would refuse `learning_rate: 1e-3` ("1e-3" in quotes stays text and is refused).
UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def parse_yaml(text: str, origin: str) -> Any:
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise RecipeError(f"{origin}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    except RecursionError:
        raise RecipeError(f"{origin}: nested too deeply (at most {MAX_DEPTH} levels)") from None
    except ValueError as err:  # e.g. an integer of thousands of digits
        raise RecipeError(f"{origin}: a value cannot be read ({err})") from None
    check_size(data, origin)
    return data


def check_size(data: Any, origin: str) -> None:
    """Count values the way validation will walk them (an alias counted each time it is used)."""
    count, todo = 0, [(data, 0)]
    while todo:
        value, depth = todo.pop()
        count += 1
        if count > MAX_VALUES:
            raise RecipeError(f"{origin}: more than {MAX_VALUES} values (YAML aliases expanded); this is not a recipe")
        if depth > MAX_DEPTH:
            raise RecipeError(f"{origin}: nested too deeply (at most {MAX_DEPTH} levels)")
        if isinstance(value, dict):
            todo.extend((item, depth + 1) for pair in value.items() for item in pair)
        elif isinstance(value, list):
            todo.extend((item, depth + 1) for item in value)


class Strict(BaseModel):
    """Every recipe and job model. Strict: `true` is not 1, `2.5` and `"3"` are not integers, `"yes"` is not a
    boolean (an integer is still a valid float); unknown keys are errors; inf and nan are never a setting."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class SkillSpec(Strict):
    difficulty: StrictInt = Field(1, ge=1, le=5, description="difficulty level of generated and probe items, 1 to 5")


class PricesConfig(Strict):
    input_per_million: float = Field(0.0, ge=0.0, description="USD per million prompt tokens")
    output_per_million: float = Field(0.0, ge=0.0, description="USD per million completion tokens")


class EngineFields(Strict):
    """How calls flow, for every backend: concurrency, rate limits, retries, timeouts, prices, caps."""

    concurrency: StrictInt = Field(64, ge=1, le=100_000, description="teacher calls in flight at once")
    max_retries: StrictInt = Field(
        3, ge=0, le=100, description="retries of a failed call before it is kept as a failed record"
    )
    timeout_s: float = Field(
        120.0, gt=0.0, le=86_400.0, description="per attempt (at most a day); a call with no reply by then is retried"
    )
    requests_per_minute: float | None = Field(None, gt=0.0, description="token-bucket limit on calls; empty: none")
    tokens_per_minute: float | None = Field(None, gt=0.0, description="token-bucket limit on tokens; empty: none")
    backoff_base_s: float = Field(0.5, gt=0.0, description="first retry waits about this long, doubling after")
    prices: PricesConfig = PricesConfig()
    max_total_tokens: StrictInt | None = Field(
        None, ge=1, le=10**12, description="stop the run cleanly before spending more tokens"
    )
    max_cost_usd: float | None = Field(None, gt=0.0, description="stop the run cleanly before spending more USD")


class OracleTeacherConfig(EngineFields):
    backend: Literal["oracle"] = "oracle"
    model: Text = Field("skills-reference", description="model name recorded on every row")
    noise: float = Field(
        0.0, ge=0.0, le=1.0, description="share of answers deliberately corrupted, so verification has errors to catch"
    )


class OpenAITeacherConfig(EngineFields):
    backend: Literal["openai"]
    model: Text = Field(description="model name the server serves (as in GET /v1/models)")
    base_url: Text | Annotated[list[Text], Field(min_length=1)] = Field(
        description="the server's OpenAI-compatible root, e.g. http://localhost:8000/v1; or a list of servers of "
        "the same model, which get the calls in turn"
    )
    max_reply_bytes: StrictInt = Field(
        8 * 2**20, ge=1024, le=2**30, description="a reply larger than this, decompressed, is a failed call"
    )
    api_key_env: Annotated[str, AfterValidator(check_env_name)] | None = Field(
        None, description="name of the environment variable holding the API key (never the key itself)"
    )
    endpoint: Literal["chat", "completions"] = Field("chat", description="chat/completions or legacy completions")
    structured_output: bool = Field(
        False, description="send response_format with a JSON schema (vLLM, SGLang, OpenAI support it)"
    )
    extra_body: dict[str, Any] = Field(default_factory=dict, description="extra fields sent with every request")


class TransformersTeacherConfig(EngineFields):
    backend: Literal["transformers"]
    model: FilePath = Field(description="Hugging Face model id (already in the local cache) or a local path")
    device: Text = Field("auto", description="auto (CUDA, then MPS, then CPU), or e.g. cpu, cuda:0")
    batch_size: StrictInt = Field(16, ge=1, le=65_536, description="requests generated together")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"


PER_CALL_SETTINGS = ("concurrency", "max_retries", "timeout_s", "backoff_base_s", "requests_per_minute",
                     "tokens_per_minute")  # fmt: skip


class VLLMTeacherConfig(EngineFields):
    """vLLM on the Ray cluster's GPU workers, through Ray Data's LLM support (`--engine ray` only). Each
    replica is one vLLM engine on `tensor_parallel_size` x `pipeline_parallel_size` GPUs (`engine_kwargs`).
    Prices and budget caps apply. vLLM batches the calls itself, and a call it fails is kept as failed
    and sent again by `--resume`: the settings of calls sent one by one (concurrency, timeouts, retries,
    rate limits) do not apply, and are refused."""

    backend: Literal["vllm"]
    model: FilePath = Field(description="Hugging Face model id or a path every GPU worker can read")
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="vLLM engine arguments, e.g. tensor_parallel_size, max_model_len, gpu_memory_utilization",
    )
    replicas: StrictInt = Field(1, ge=1, le=10_000, description="vLLM engines at most (Ray starts them as GPUs allow)")
    batch_size: StrictInt = Field(64, ge=1, le=65_536, description="requests handed to an engine at a time")
    accelerator_type: Text | None = Field(None, description="the GPU kind to run on, as Ray names it (e.g. H100)")
    structured_output: bool = Field(
        False, description="constrain replies to the task's JSON schema (vLLM's structured outputs)"
    )

    @model_validator(mode="after")
    def no_per_call_settings(self) -> VLLMTeacherConfig:
        for key in PER_CALL_SETTINGS:
            if key in self.model_fields_set:
                raise ValueError(
                    f"{key}: does not apply to backend vllm, which batches the calls on the cluster's GPUs (a call "
                    "it fails is kept as failed and sent again by --resume); leave it out"
                )
        for key in ("tensor_parallel_size", "pipeline_parallel_size"):
            size = self.engine_kwargs.get(key, 1)
            if type(size) is not int or size < 1:
                raise ValueError(f"engine_kwargs.{key}: give a whole number of GPUs, 1 or more (got {size!r})")
        return self

    @property
    def gpus_per_replica(self) -> int:
        return self.engine_kwargs.get("tensor_parallel_size", 1) * self.engine_kwargs.get("pipeline_parallel_size", 1)


FirstRoundTeacher = Annotated[
    Annotated[OracleTeacherConfig, Tag("oracle")]
    | Annotated[OpenAITeacherConfig, Tag("openai")]
    | Annotated[TransformersTeacherConfig, Tag("transformers")],
    Discriminator(lambda value: teacher_backend(value)),
]


class StudentTeacherConfig(EngineFields):
    """The student of round N teaches round N+1 (it answers the problems; verification keeps what is right)."""

    backend: Literal["student"]
    model: Text = Field("student", description="name recorded on every row, with the round of the student")
    first_round: FirstRoundTeacher = Field(
        default_factory=lambda: TransformersTeacherConfig(backend="transformers", model="builtin:classroom-teacher"),
        description="who teaches round 1, before there is a student: any other teacher (default the built-in one)",
    )
    batch_size: StrictInt = Field(64, ge=1, le=65_536, description="requests the student generates together")

    @model_validator(mode="after")
    def engine_keys_on_the_outside(self) -> StudentTeacherConfig:
        # One engine serves every round: its limits, prices and caps are this config's, never first_round's.
        inner = sorted(self.first_round.model_fields_set & set(EngineFields.model_fields))
        if inner:
            raise ValueError(
                f"teacher.first_round.{inner[0]}: set {', '.join(inner)} on teacher itself (backend student); "
                "concurrency, limits, prices and caps there apply to every round, round 1 included"
            )
        return self


TEACHER_CONFIGS: dict[str, type[EngineFields]] = {
    "oracle": OracleTeacherConfig,
    "openai": OpenAITeacherConfig,
    "transformers": TransformersTeacherConfig,
    "student": StudentTeacherConfig,
    "vllm": VLLMTeacherConfig,
}


OPERATIONAL_TEACHER_KEYS = (
    *EngineFields.model_fields,
    "base_url",
    "api_key_env",
    "device",
    "batch_size",
    "replicas",
    "accelerator_type",
)


def teacher_backend(value: Any) -> str | None:
    """The union's tag: `backend`, defaulting to the oracle when a recipe leaves it out."""
    if isinstance(value, dict):
        return value.get("backend", "oracle")
    return getattr(value, "backend", None)


TeacherConfig = Annotated[
    Annotated[OracleTeacherConfig, Tag("oracle")]
    | Annotated[OpenAITeacherConfig, Tag("openai")]
    | Annotated[TransformersTeacherConfig, Tag("transformers")]
    | Annotated[StudentTeacherConfig, Tag("student")]
    | Annotated[VLLMTeacherConfig, Tag("vllm")],
    Discriminator(teacher_backend),
]


LOOP_PROMPT_TASKS = ("textbook", "exercises", "self_instruct", "evol_instruct", "refusal", "misinformation")
ANSWERED_PROMPT_TASKS = ("exercises", "self_instruct", "evol_instruct")  # their questions are answered, samples times


class PromptTaskEntry(Strict):
    """One prompt task the loop runs each round for every category (`generation.prompt_tasks`)."""

    task: str = Field(description=f"one of {', '.join(LOOP_PROMPT_TASKS)}")
    name: Name | None = Field(
        None, description="names its folders under rounds/NN/prompted/ and its counts; default: the task"
    )
    share: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="items per category as this share of the category's budget (follows "
        "the weakness allocation; taken out of the problems written for it)",
    )
    per_category: StrictInt | None = Field(
        None, ge=1, le=100_000, description="a fixed number of items per category per round, on top of the budget"
    )
    per_call: StrictInt | None = Field(
        None,
        ge=1,
        le=100,
        description="items asked for per call (exercises, self_instruct, refusal, "
        "misinformation; textbook: subtopics per topics call); default 5",
    )
    personas: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        default_factory=list, max_length=1000, description="rotated over calls, for diversity"
    )
    template: str | None = Field(
        None, max_length=10_000, description="replaces the task's user prompt; its {fields} are checked"
    )
    operations: list[str] | None = Field(
        None, description="evol_instruct: rotated over calls (deepen, widen, add_constraints); default all three"
    )
    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="sampling temperature of its calls; default generation.problem_temperature"
    )
    max_tokens: StrictInt | None = Field(
        None, ge=1, le=1_000_000, description="most tokens a reply may have; default generation.max_tokens"
    )

    @property
    def label(self) -> str:
        return self.name or self.task

    @field_validator("task")
    @classmethod
    def loop_task(cls, task: str) -> str:
        if task == "topics":
            raise ValueError(
                "topics writes topic names, nothing to train on; textbook lists a category's subtopics itself "
                f"(per_call of them per call); choose one of {', '.join(LOOP_PROMPT_TASKS)}"
            )
        if task not in LOOP_PROMPT_TASKS:
            hint = closest(task, list(LOOP_PROMPT_TASKS))
            suggestion = f"did you mean {hint!r}? " if hint else ""
            raise ValueError(f"unknown prompt task {task!r}; {suggestion}choose one of {', '.join(LOOP_PROMPT_TASKS)}")
        return task

    @model_validator(mode="after")
    def one_amount_and_valid_settings(self) -> PromptTaskEntry:
        if (self.share is None) == (self.per_category is None):
            raise ValueError(f"prompt task {self.label!r}: give exactly one of share or per_category")
        if self.operations is not None:
            if self.task != "evol_instruct":
                raise ValueError(f"prompt task {self.label!r}: operations are for evol_instruct only")
            from synthloop.tasks.prompted import EVOLUTIONS

            for op in self.operations:
                if op not in EVOLUTIONS:
                    hint = closest(op, list(EVOLUTIONS))
                    suggestion = f"did you mean {hint!r}? " if hint else ""
                    raise ValueError(f"unknown operation {op!r}; {suggestion}choose from {', '.join(EVOLUTIONS)}")
            if not self.operations:
                raise ValueError(f"prompt task {self.label!r}: operations is empty; leave it out for all three")
        if self.template is not None:
            from synthloop.registry import TASKS

            TASKS.get(self.task).check_template(self.template)
        return self


class GenerationConfig(Strict):
    task: Literal["solve"] = Field(
        "solve",
        description="the loop's task; prompt tasks: generation.prompt_tasks (dataset tasks) or synthloop generate",
    )
    budget_per_round: StrictInt = Field(
        4000,
        ge=1,
        le=1_000_000,
        description="teacher calls per round (at most 1,000,000), split across skills by the allocation",
    )
    shard_size: StrictInt = Field(1000, ge=1, le=1_000_000, description="records per Parquet shard (at most 1,000,000)")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="teacher sampling temperature")
    max_tokens: StrictInt = Field(
        512, ge=1, le=1_000_000, description="most tokens a teacher reply may have (at most 1,000,000)"
    )
    samples: StrictInt = Field(
        1, ge=1, le=16, description="teacher samples per problem (more than 1 for curation.self_consistency)"
    )
    strategy: Literal["failures", "uniform"] = Field(
        "failures",
        description="dataset tasks: failures writes new problems like the train items the student got wrong; "
        "uniform takes the examples evenly from the train split (the baseline)",
    )
    min_failures: StrictInt = Field(
        3,
        ge=1,
        le=1_000_000,
        description="dataset tasks: a category with fewer train failures than this gets topic-driven exercises",
    )
    problems_per_call: StrictInt = Field(
        1, ge=1, le=20, description="dataset tasks: new problems the teacher writes per example"
    )
    problem_temperature: float = Field(
        0.8, ge=0.0, le=2.0, description="dataset tasks: sampling temperature when the teacher writes new problems"
    )

    prompt_tasks: list[PromptTaskEntry] = Field(
        default_factory=list,
        max_length=20,
        description="dataset tasks: prompt tasks run each round for the round's categories, their rows trained on "
        "(see README, 'Prompt tasks in the loop')",
    )

    @model_validator(mode="after")
    def prompt_task_entries(self) -> GenerationConfig:
        names = [entry.label for entry in self.prompt_tasks]
        if duplicate := next((n for n in names if names.count(n) > 1), None):
            raise ValueError(f"prompt_tasks: two entries are named {duplicate!r}; give one a `name`")
        shares = sum(entry.share or 0.0 for entry in self.prompt_tasks)
        if shares > 1.0:
            raise ValueError(f"prompt_tasks: the shares add up to {shares:g}, more than a category's whole budget (1)")
        return self


TextFieldName = Literal["question", "answer", "all"]


class NearDedupConfig(Strict):
    threshold: float = Field(0.8, ge=0.5, le=1.0, description="word-shingle Jaccard at which rows count as one")
    ngram: StrictInt = Field(3, ge=1, le=10, description="words per shingle")
    num_perm: StrictInt = Field(128, ge=16, le=1024, description="MinHash permutations")
    field: TextFieldName = Field("question", description="question, answer, or all (question, reasoning, answer)")


class SemanticDedupConfig(Strict):
    threshold: float = Field(0.9, ge=0.5, le=1.0, description="cosine similarity (all-MiniLM-L6-v2) to count as one")
    field: TextFieldName = Field("answer", description="question, answer, or all")


class DedupConfig(Strict):
    exact: bool = Field(True, description="normalised question hash, across rounds too")
    near: NearDedupConfig | None = Field(None, description="MinHash-LSH near-duplicates; true for the defaults")
    semantic: SemanticDedupConfig | None = Field(
        None, description="embedding near-neighbours (needs the 'semantic' extra); true for the defaults"
    )

    _sections = field_validator("near", "semantic", mode="before")(classmethod(lambda cls, v: section(v)))


class DecontaminateConfig(Strict):
    n: StrictInt = Field(8, ge=8, le=13, description="word n-gram length compared with eval items")
    min_coverage: float = Field(0.8, gt=0.0, le=1.0, description="share of an eval item a row must cover to match")
    field: TextFieldName = Field("all", description="text of the row compared: question, answer or all")
    eval_sets: list[FilePath] = Field(
        default_factory=list, description="JSONL or Parquet files of evaluation items (besides the run's own probes)"
    )


class PIIConfig(Strict):
    action: Literal["redact", "drop"] = Field("redact", description="redact: replace and keep; drop: reject the row")


class QualityConfig(Strict):
    preset: Literal["reasoning", "prose"] = Field("reasoning", description="rule thresholds: reasoning or prose")
    field: TextFieldName = Field("all", description="text the rules read: question, answer or all")
    rules: dict[str, float | None] = Field(
        default_factory=dict, description="per-rule thresholds over the preset's; null switches a rule off"
    )
    repetition_min_words: StrictInt = Field(
        30, ge=1, le=100_000, description="n-gram repetition rules apply from this many words"
    )

    @field_validator("rules")
    @classmethod
    def known_rules(cls, rules: dict[str, float | None]) -> dict[str, float | None]:
        from synthloop.curation.quality import thresholds

        thresholds("prose", rules)  # raises for an unknown rule name, listing the valid ones
        return rules


class SelfConsistencyConfig(Strict):
    min_agreement: float = Field(0.5, gt=0.0, le=1.0, description="reject a question whose samples agree less")


class CodeVerifyConfig(Strict):
    timeout_s: float = Field(10.0, gt=0.0, le=3600.0, description="wall-clock limit per test run (at most an hour)")
    cpu_s: StrictInt = Field(5, ge=1, le=3600, description="CPU-time limit per test run")
    memory_mb: StrictInt = Field(512, ge=32, le=1_048_576, description="address-space limit per test run")
    isolation: Literal["bwrap", "unshare", "none"] = Field(
        "bwrap",
        description="bwrap (bubblewrap, required by default); unshare or none accept a weaker sandbox, "
        "and every run's manifest and report then say so",
    )
    workers: StrictInt = Field(4, ge=1, le=1024, description="test runs at once")


class RewardModelConfig(Strict):
    path: FilePath = Field(description="folder of a saved Hugging Face sequence-classification model")
    threshold: float = Field(0.0, description="reject rows scoring below this")
    batch_size: StrictInt = Field(16, ge=1, le=65_536)
    max_length: StrictInt = Field(
        512, ge=8, le=1_000_000, description="tokens per (question, answer); longer inputs are cut"
    )
    device: Text = Field("cpu", description="cpu, cuda:0, ...")


class JudgeConfig(Strict):
    teacher: TeacherConfig = Field(description="the judge model: any teacher backend (openai, transformers)")
    mode: Literal["pointwise", "pairwise"] = Field(
        "pointwise", description="pointwise: a 1-10 score per row; pairwise: same-question rows compared in both orders"
    )
    rubric: str = Field(DEFAULT_RUBRIC, description="what makes an answer good, shown to the judge")
    threshold: float = Field(7.0, ge=1.0, le=10.0, description="pointwise: reject rows scoring below this")
    on_unparsed: Literal["reject", "keep"] = Field(
        "reject", description="a reply that is not the JSON asked for, even after one repair"
    )
    max_tokens: StrictInt = Field(256, ge=16, le=1_000_000)

    @field_validator("teacher")
    @classmethod
    def can_judge(cls, teacher: EngineFields) -> EngineFields:
        if isinstance(teacher, OracleTeacherConfig):
            raise ValueError(
                "the oracle only answers skill problems and cannot judge; use backend openai or transformers"
            )
        if isinstance(teacher, VLLMTeacherConfig):
            raise ValueError(
                "a judge calls its model row by row: serve it with `vllm serve MODEL` and use backend openai"
            )
        return teacher


class VerifyConfig(Strict):
    on_abstain: Literal["keep", "reject"] = Field(
        "keep", description="a row the verifier cannot judge (no reference, not comparable): keep it, or reject it"
    )


class CurationConfig(Strict):
    """Stages run in this order; rows rejected by one are not seen by the next (so costly stages run last)."""

    verify: VerifyConfig | None = Field(
        VerifyConfig(), description="check every teacher answer with the skill's scorer or symbolically"
    )
    code: CodeVerifyConfig | None = Field(None, description="run code answers against their tests in the sandbox")
    self_consistency: SelfConsistencyConfig | None = Field(
        None, description="majority vote over samples of the same question (generation.samples > 1)"
    )
    pii: PIIConfig | None = Field(PIIConfig(), description="find e-mails, phones, IPs, cards, national ids")
    quality: QualityConfig | None = Field(QualityConfig(), description="Gopher/FineWeb-style rules")
    decontaminate: DecontaminateConfig | None = Field(
        DecontaminateConfig(), description="n-gram overlap with the run's probes and any eval_sets"
    )
    dedup: DedupConfig | None = Field(DedupConfig(), description="exact, near (MinHash) and semantic duplicates")
    reward_model: RewardModelConfig | None = None
    judge: JudgeConfig | None = None

    _sections = field_validator(
        "verify", "code", "self_consistency", "pii", "quality", "decontaminate", "dedup", mode="before"
    )(classmethod(lambda cls, v: section(v)))


def section(value: Any) -> Any:
    """An optional recipe section: `true` turns it on with its defaults, `false` or null turns it off."""
    if value is True:
        return {}
    if value is False:
        return None
    return value


class GoldenConfig(Strict):
    path: FilePath | None = Field(
        None, description="JSONL or Parquet of human examples; empty: embedded reference items"
    )
    size: StrictInt = Field(
        400,
        ge=0,
        le=1_000_000,
        description="embedded golden items (reference solutions, at most 1,000,000), when no path is given",
    )


class GroundingConfig(Strict):
    golden: GoldenConfig = GoldenConfig()
    ratio: float = Field(0.2, ge=0.0, lt=1.0, description="share of golden rows in each round's training mix")
    strategy: Literal["accumulate", "replace"] = Field(
        "replace", description="accumulate: train on every round's kept data; replace: this round's only"
    )
    human_edits: Literal["golden", "synthetic"] = Field(
        "golden",
        description="rows a reviewer edited and accepted (synthloop review): golden joins them to the golden set as "
        "source human, in every later round's mix; synthetic keeps them as their round's synthetic rows",
    )


class ArchitectureConfig(Strict):
    family: Literal["gpt2", "llama"] = Field("gpt2", description="scratch model family (HF GPT-2 or Llama)")
    hidden_size: StrictInt = Field(128, ge=8, le=65_536, description="width (8 to 65,536), a multiple of heads")
    layers: StrictInt = Field(4, ge=1, le=1024, description="transformer blocks (1 to 1,024)")
    heads: StrictInt = Field(4, ge=1, le=1024, description="attention heads (1 to 1,024)")
    intermediate_size: StrictInt = Field(512, ge=8, le=262_144, description="MLP width (8 to 262,144)")
    max_positions: StrictInt = Field(
        512, ge=32, le=1_048_576, description="longest sequence the model takes; at least train.max_len"
    )

    @model_validator(mode="after")
    def heads_divide_hidden(self) -> ArchitectureConfig:
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be a multiple of heads {self.heads}")
        if self.family == "llama" and (self.hidden_size // self.heads) % 2:
            raise ValueError(
                f"llama: hidden_size / heads = {self.hidden_size // self.heads} must be even (rotary embeddings)"
            )
        return self


class TrainConfig(Strict):
    steps_per_round: StrictInt = Field(
        1500, ge=1, le=10_000_000, description="optimizer steps per round (the training budget, at most 10,000,000)"
    )
    batch_size: StrictInt = Field(16, ge=1, le=65_536, description="examples per step (at most 65,536)")
    max_len: StrictInt = Field(
        256,
        ge=16,
        le=1_048_576,
        description="longest example in tokens, at most architecture.max_positions; longer ones are cut",
    )
    learning_rate: float = Field(3e-3, gt=0.0, le=10.0, description="peak learning rate (AdamW), at most 10")
    warmup_steps: StrictInt = Field(50, ge=0, le=10_000_000, description="linear warm-up steps (at most 10,000,000)")
    weight_decay: float = Field(0.1, ge=0.0)
    grad_clip: float = Field(1.0, gt=0.0)
    threads: StrictInt = Field(0, ge=0, le=4096, description="torch threads; 0 uses every core")
    grad_accumulation: StrictInt = Field(
        1, ge=1, le=65_536, description="micro-batches per optimizer step (batch_size is per micro-batch)"
    )
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward: less memory, slower")
    packing: bool = Field(False, description="pack several examples into each max_len row (loss still on answers only)")
    checkpoint_every: StrictInt = Field(
        0,
        ge=0,
        le=10_000_000,
        description="save a resumable training checkpoint every N steps, so a kill mid-round resumes mid-round; "
        "0: only at the end of the round",
    )


class LoraConfig(Strict):
    r: StrictInt = Field(16, ge=1, le=4096, description="adapter rank")
    alpha: float = Field(32.0, gt=0.0, le=1_000_000.0, description="scaling numerator (lora_alpha)")
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[Text] | Literal["all-linear"] = Field(
        "all-linear", description="module names the adapters wrap (checked against the model), or all-linear"
    )
    merge: bool = Field(False, description="also save each round's adapters merged into the base (student/merged/)")


class StudentConfig(Strict):
    base: FilePath = Field(
        "scratch",
        description="'scratch' builds a tiny model (architecture); otherwise a local model folder or an HF model id "
        "already in the local cache (checked before anything is generated)",
    )
    vocab_size: StrictInt = Field(
        512, ge=300, le=1_000_000, description="BPE vocabulary trained on the run's text (scratch only)"
    )
    architecture: ArchitectureConfig = ArchitectureConfig()
    train: TrainConfig = TrainConfig()
    device: Text = Field("auto", description="auto (CUDA, then MPS, then CPU), or e.g. cpu, cuda:0, mps")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: bfloat16 on a GPU that supports it, float32 otherwise"
    )
    chat_template: Literal["auto", "plain"] = Field(
        "auto", description="auto: the tokenizer's chat template when it has one; plain: 'Q: ... A:' text"
    )
    lora: LoraConfig | None = Field(None, description="train LoRA adapters (PEFT) instead of every weight")
    trainer: Literal["builtin", "trl", "command"] = Field(
        "builtin", description="builtin (synthloop's loop), trl (TRL SFTTrainer) or command (your own trainer)"
    )
    command: Text | None = Field(
        None,
        description="trainer: command: a shell command with {data} (chat JSONL), {base} (model to start from) and "
        "{out} (where it must save an HF checkpoint)",
    )

    _sections = field_validator("lora", mode="before")(classmethod(lambda cls, v: section(v)))

    @model_validator(mode="after")
    def trainer_settings(self) -> StudentConfig:
        if self.trainer == "command":
            if self.command is None:
                raise ValueError("trainer command needs student.command, e.g. 'my-trainer --data {data} --out {out}'")
            missing = [f"{{{name}}}" for name in ("data", "out") if f"{{{name}}}" not in self.command]
            if missing:
                raise ValueError(f"student.command must contain {' and '.join(missing)} (and may use {{base}})")
        elif self.command is not None:
            raise ValueError(f"student.command is only used with trainer: command (trainer is {self.trainer})")
        return self

    @model_validator(mode="after")
    def examples_fit(self) -> StudentConfig:
        """A scratch GPT-2 fails on a position past max_positions, and only once training starts."""
        a = self.architecture
        if self.base == "scratch" and self.train.max_len > a.max_positions:
            raise ValueError(
                f"train.max_len {self.train.max_len} is longer than architecture.max_positions {a.max_positions}"
            )
        return self


class EvaluationConfig(Strict):
    probes_per_skill: StrictInt = Field(
        60, ge=1, le=10_000, description="held-out golden probes per skill (at most 10,000), fixed across rounds"
    )
    max_new_tokens: StrictInt = Field(
        128, ge=1, le=1_000_000, description="longest student answer in tokens; below architecture.max_positions"
    )
    batch_size: StrictInt = Field(128, ge=1, le=65_536, description="probes answered together (at most 65,536)")
    engine: Literal["auto", "hf", "vllm"] = Field(
        "auto", description="auto: vLLM where it is installed and a GPU is present, else HF generate"
    )


GuardMetric = Literal[
    "distinct_2_questions",
    "distinct_3_texts",
    "compression_ratio",
    "unique_question_share",
    "embedding_dispersion",
    "vendi_score",
    "golden_loss",
    "tail_coverage",
]
GuardAction = Literal["warn", "raise_golden_ratio", "stop"]


class GuardConfig(Strict):
    metric: GuardMetric = Field(description='a figure of each round\'s monitor (README "Collapse guards")')
    tolerance: float = Field(
        gt=0.0,
        le=100.0,
        description="relative change from round 1 in the bad direction that triggers the action (0.25: 25%)",
    )
    action: GuardAction = Field(
        "warn", description="warn (log and record), raise_golden_ratio (for the next round) or stop (after this round)"
    )


def default_guards() -> list[GuardConfig]:
    return [
        GuardConfig(metric="distinct_3_texts", tolerance=0.3, action="warn"),
        GuardConfig(metric="embedding_dispersion", tolerance=0.3, action="warn"),
        GuardConfig(metric="golden_loss", tolerance=0.25, action="raise_golden_ratio"),
        GuardConfig(metric="tail_coverage", tolerance=0.5, action="warn"),
    ]


class MonitorConfig(Strict):
    @field_validator("embeddings", mode="before")
    @classmethod
    def yaml_booleans(cls, value: Any) -> Any:
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value  # YAML on/off

    embeddings: Literal["auto", "on", "off"] = Field(
        "auto",
        description="embedding dispersion and Vendi score with the offline MiniLM: auto (where synthloop[semantic] "
        "is installed), on (required), off",
    )
    drift_rows: StrictInt = Field(
        100, ge=0, le=100_000, description="golden rows held out of training to measure drift on (0: no drift figures)"
    )
    guards: list[GuardConfig] = Field(default_factory=default_guards, max_length=64)
    golden_ratio_step: float = Field(
        0.1, gt=0.0, le=0.9, description="raise_golden_ratio: how much the next round's grounding.ratio rises"
    )
    max_golden_ratio: float = Field(0.8, gt=0.0, lt=1.0, description="raise_golden_ratio never goes above this")


class AllocationConfig(Strict):
    policy: Literal["uniform", "proportional_to_error"] = Field(
        "proportional_to_error", description="how the next round's budget follows the weakness report"
    )
    floor: float = Field(
        0.05, ge=0.0, le=1.0, description="minimum share of every skill, so none is starved (at most 1/skills applies)"
    )
    sharpness: float = Field(
        2.0, gt=0.0, le=100.0, description="share grows with error ** sharpness; above 1 focuses harder"
    )


def scorer_shorthand(value: Any) -> Any:
    """`scorer: numeric` is `scorer: {name: numeric}`."""
    return {"name": value} if isinstance(value, str) else value


class ScorerConfig(Strict):
    name: Registered(SCORERS) = Field(description="exact, numeric, math, choice, regex, code or judge")
    tolerance: float | None = Field(
        None,
        ge=0.0,
        le=1e6,
        description="numeric: |answer - reference| <= tolerance * max(1, |reference|); empty: within 1e-6 of an "
        "integer reference, 1e-6 relative of any other",
    )
    case_sensitive: bool = Field(False, description="exact and regex: compare case too")
    judge: JudgeConfig | None = Field(None, description="judge: the model and rubric that grade each answer")
    code: CodeVerifyConfig = Field(CodeVerifyConfig(), description="code: the sandbox the tests run in")

    @model_validator(mode="after")
    def judge_has_a_model(self) -> ScorerConfig:
        if self.name == "judge" and self.judge is None:
            raise ValueError("scorer judge needs judge: {teacher: {backend: openai, base_url: ..., model: ...}}")
        if self.judge is not None and self.judge.mode != "pointwise":
            raise ValueError("a judge scorer grades one answer at a time: judge.mode must be pointwise")
        return self


Scorer = Annotated[ScorerConfig, BeforeValidator(scorer_shorthand)]


class CategorySpec(Strict):
    description: str = Field(
        "", max_length=10_000, description="what the category covers; the teacher writes exercises from it"
    )
    scorer: Scorer | None = Field(None, description="this category's scorer, over the task's")


class SkillsTaskConfig(Strict):
    type: Literal["skills"] = Field("skills", description="the built-in procedural skills (recipe key skills)")


class DatasetTaskConfig(Strict):
    type: Literal["dataset"] = Field(description="your own data: a train and a held-out eval file")
    train: FilePath | None = Field(None, description="JSONL, Parquet or a datasets.save_to_disk folder")
    eval: FilePath | None = Field(None, description="held out: never trained on, never shown to the teacher")
    path: FilePath | None = Field(None, description="one file split into train and eval by split_seed")
    eval_share: float = Field(0.2, gt=0.0, lt=1.0, description="with path: the share held out for evaluation")
    split_seed: Seed = Field(0, description="with path: seeds the split")
    scorer: Scorer = Field(ScorerConfig(name="exact"), description="how an answer is scored against the reference")
    categories: dict[Name, CategorySpec] = Field(
        default_factory=dict, description="per category: a description (for exercises) and a scorer"
    )
    eval_per_category: StrictInt | None = Field(
        None, ge=1, le=1_000_000, description="evaluate on at most this many eval rows per category; empty: all"
    )
    train_probe_per_category: StrictInt = Field(
        64,
        ge=0,
        le=1_000_000,
        description="train items per category the student answers each round, to find the failures to vary",
    )

    @model_validator(mode="after")
    def files(self) -> DatasetTaskConfig:
        if self.path is not None and (self.train is not None or self.eval is not None):
            raise ValueError("give either train and eval, or path (one file split by split_seed), not both")
        if self.path is None and (self.train is None or self.eval is None):
            raise ValueError("a dataset task needs train and eval files, or path (one file split by split_seed)")
        return self


TASK_TYPES = ("skills", "dataset")


def task_type(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("type", "skills")
    return getattr(value, "type", None)


def task_shorthand(value: Any) -> Any:
    """`task: skills` is `task: {type: skills}`."""
    return {"type": value} if isinstance(value, str) else value


TaskConfig = Annotated[
    Annotated[SkillsTaskConfig, Tag("skills")] | Annotated[DatasetTaskConfig, Tag("dataset")],
    Discriminator(task_type),
    BeforeValidator(task_shorthand),
]


class Recipe(Strict):
    name: Name = Field(description="a name for the run (and its folder under runs/)")
    seed: Seed = Field(0, description="seeds generation, probes, golden set and training (0 to 2**32 - 1)")
    rounds: StrictInt = Field(3, ge=1, le=100, description="rounds of the loop (1 to 100)")
    task: TaskConfig = Field(SkillsTaskConfig(), description="skills (the built-in skills) or dataset (your data)")
    skills: dict[str, SkillSpec] = Field(
        default_factory=dict, description="task skills: the skills to teach, each with its difficulty"
    )
    teacher: TeacherConfig = OracleTeacherConfig()
    generation: GenerationConfig = GenerationConfig()
    curation: CurationConfig = CurationConfig()
    grounding: GroundingConfig = GroundingConfig()
    student: StudentConfig = StudentConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    allocation: AllocationConfig = AllocationConfig()
    monitor: MonitorConfig = Field(
        MonitorConfig(), description="collapse guards: diversity, drift and tail figures per round, and their actions"
    )

    @field_validator("skills")
    @classmethod
    def known_skills(cls, skills: dict[str, SkillSpec]) -> dict[str, SkillSpec]:
        for name in skills:
            SKILLS.check(name)
        return skills

    @model_validator(mode="after")
    def task_needs(self) -> Recipe:
        raising = any(g.action == "raise_golden_ratio" for g in self.monitor.guards)
        if raising and self.monitor.max_golden_ratio <= self.grounding.ratio:
            raise ValueError(
                f"monitor.max_golden_ratio ({self.monitor.max_golden_ratio}) must be above grounding.ratio "
                f"({self.grounding.ratio}) for a raise_golden_ratio guard to raise anything"
            )
        if self.task.type == "skills" and not self.skills:
            raise ValueError("skills: list at least one skill (or set task: {type: dataset, ...} for your own data)")
        if self.task.type == "skills" and self.generation.prompt_tasks:
            raise ValueError(
                "generation.prompt_tasks: only for a dataset task (task: {type: dataset, ...}); the built-in skills "
                "are solved directly (run prompt tasks on their own with synthloop generate)"
            )
        if self.task.type == "dataset" and self.teacher.backend == "student":
            raise ValueError(
                "teacher: backend student answers problems but does not write them, and a dataset task's rounds need "
                "new problems written; use backend student with task skills, or another teacher here"
            )
        if self.task.type == "dataset":
            if self.skills:
                raise ValueError("skills: only for task skills; a dataset task's categories come from its files")
            c = self.curation
            if not ((self.generation.samples > 1 and c.self_consistency) or c.judge or c.code):
                raise ValueError(
                    "a dataset task's new problems have no reference answer, so something must verify the teacher's: "
                    "set generation.samples to 2 or more with curation.self_consistency, or curation.judge, "
                    "or curation.code"
                )
            if self.generation.samples > 1 and self.generation.temperature == 0 and c.self_consistency:
                raise ValueError(
                    "generation.temperature 0 makes every sample of a problem the same, so self-consistency "
                    "would always agree; set generation.temperature above 0 (e.g. 0.7)"
                )
        return self

    @model_validator(mode="after")
    def answers_fit(self) -> Recipe:
        """Evaluation appends max_new_tokens to a prompt; a scratch model cannot go past max_positions."""
        positions = self.student.architecture.max_positions
        if self.student.base == "scratch" and self.evaluation.max_new_tokens >= positions:
            raise ValueError(
                f"evaluation.max_new_tokens {self.evaluation.max_new_tokens} leaves no room for the prompt in "
                f"student.architecture.max_positions {positions}"
            )
        return self

    def hash(self) -> str:
        """Identity of the recipe: two runs with the same hash make the same data. How calls flow
        (concurrency, limits, timeouts, prices, budget caps, where the server is) is left out, so a
        run stopped by a budget cap resumes after the cap is raised; so is the number of rounds, so a
        finished run goes on with `--resume --rounds N` (after a review, say)."""
        return identity_hash(self.model_dump(mode="json"))


def identity_hash(data: dict[str, Any]) -> str:
    """Hash of a recipe or job as dumped to JSON, without the teacher's operational keys."""
    data = {k: v for k, v in data.items() if k != "rounds"}  # more rounds continue a run: same data so far
    data = {**data, "teacher": {k: v for k, v in data["teacher"].items() if k not in OPERATIONAL_TEACHER_KEYS}}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def default_recipe_text() -> str:
    return resources.files("synthloop.recipes").joinpath("default.yaml").read_text()


def load_recipe(path: str | Path | None = None) -> Recipe:
    """The recipe at `path`, or the default shipped in the package."""
    if path is None:
        return parse_recipe(default_recipe_text(), "the default recipe")
    path = Path(path)
    return recipe_from_data(read_yaml_file(path, "recipe"), str(path))


def load_curation(path: str | Path | None = None) -> CurationConfig:
    """The `curation:` section of a full recipe, or of a file that holds only that section (for
    `synthloop curate` and `audit`, which need no skills or name)."""
    if path is None:
        return load_recipe().curation
    data = read_yaml_file(Path(path), "recipe")
    if isinstance(data, dict) and set(data) == {"curation"}:
        try:
            return CurationConfig.model_validate(data["curation"] or {})
        except ValidationError as err:
            error = first_error(err)
            error["loc"] = ("curation", *error["loc"])
            raise RecipeError(f"{path}: {describe(error)}") from None
    return recipe_from_data(data, str(path)).curation


def parse_recipe(text: str, origin: str) -> Recipe:
    return recipe_from_data(parse_yaml(text, origin), origin)


def recipe_from_data(data: Any, origin: str) -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError(f"{origin}: a recipe is a YAML mapping of keys (name, skills, teacher, ...)")
    return validate_recipe(data, origin)


def validate_recipe(data: dict[str, Any], origin: str = "recipe") -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        raise RecipeError(f"{origin}: {describe(first_error(err))}") from None


def first_error(err: ValidationError) -> dict[str, Any]:
    """The error to show: a misspelled key first (it often causes the others), else the first one."""
    errors = err.errors()
    return next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])


def describe(error: dict[str, Any], root: type[BaseModel] | None = None) -> str:
    """One line for a pydantic error: the key path, what is wrong, the closest valid name."""
    loc, _ = walk(root or Recipe, [str(part) for part in error["loc"]])
    path = ".".join(loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        parent_loc, parent = walk(root or Recipe, [str(part) for part in error["loc"][:-1]])
        valid = field_names(parent)
        hint = closest(loc[-1], valid)
        suggestion = f"; did you mean {'.'.join([*parent_loc, hint])!r}?" if hint else ""
        return f"unknown key {path!r}{suggestion} (valid keys here: {', '.join(valid)})"
    if error["type"] == "missing":
        return f"missing key {path!r}"
    if error["type"] == "union_tag_invalid":
        tag = error["ctx"]["tag"]
        if path.split(".")[-1] == "task":
            hint = closest(str(tag), list(TASK_TYPES))
            suggestion = f"did you mean {hint!r}? " if hint else ""
            return f"task.type: unknown task type {tag!r}; {suggestion}known task types: {', '.join(TASK_TYPES)}"
        try:
            TEACHERS.check(tag)
        except UnknownNameError as unknown:
            return f"{path}.backend: {unknown}"
    context = error.get("ctx", {}).get("error")
    if isinstance(context, UnknownNameError):
        return f"{path}: {context}"
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"] or isinstance(error.get("input"), dict):
        return f"{path}: {message}"  # a check across keys: the whole mapping would not help
    if error["loc"][-1] in NEVER_ECHOED:
        return f"{path}: {message}"
    shown = repr(error.get("input"))
    return f"{path}: {message} (got {shown if len(shown) <= 80 else shown[:60] + '...'})"


def walk(root: type[BaseModel], loc: list[str]) -> tuple[list[str], Any]:
    """Follow a pydantic error location through the recipe's models: the path as the user wrote it
    (union tags such as 'openai' removed) and the model found there (None past a plain value)."""
    shown: list[str] = []
    model: Any = root
    for part in loc:
        if model is None:
            shown.append(part)
            continue
        union = union_members(model)
        if union is not None:
            model = union.get(part)
            if model is not None:
                continue  # the tag pydantic puts in the location is not a key the user wrote
        shown.append(part)
        if isinstance(model, type) and issubclass(model, BaseModel):
            model = optional_of(model.model_fields[part].annotation) if part in model.model_fields else None
        elif get_origin(model) is dict:
            model = get_args(model)[1]  # a key of a mapping such as skills.<name>
        elif get_origin(model) is list:
            model = get_args(model)[0]  # an item of a list such as generation.prompt_tasks.<index>
        else:
            model = None
    return shown, model


def optional_of(annotation: Any) -> Any:
    """`X` for an optional section `X | None`; the annotation itself otherwise."""
    if get_origin(annotation) in (Union, UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def union_members(annotation: Any) -> dict[str, Any] | None:
    """For the tagged teacher union: tag -> model; None for anything else."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    members = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    tagged = {}
    for member in members:
        if get_origin(member) is Annotated:
            inner, *extras = get_args(member)
            tag = next((e.tag for e in extras if isinstance(e, Tag)), None)
            if tag:
                tagged[tag] = inner
    return tagged or None


def field_names(model: Any) -> list[str]:
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
