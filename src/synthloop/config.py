"""The recipe: typed, validated where it enters, loaded from YAML.

A bad recipe raises `RecipeError` with one line that names the key path and, for a misspelled key or
an unknown skill or backend, the closest valid name. Nothing is written before a recipe validates."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)

from synthloop.registry import SKILLS, TEACHERS, Registry, UnknownNameError, closest


class RecipeError(ValueError):
    """A recipe that cannot be used; the message says which key and what to do."""


def Registered(registry: Registry) -> Any:  # capitalised: it is used as a type
    """A name that must be in `registry`; an unknown one fails validation with "did you mean"."""

    def known(name: str) -> str:
        registry.check(name)
        return name

    return Annotated[str, AfterValidator(known)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SkillSpec(Strict):
    difficulty: int = Field(1, ge=1, le=5, description="difficulty level of generated and probe items, 1 to 5")


class PricesConfig(Strict):
    input_per_million: float = Field(0.0, ge=0.0, description="USD per million prompt tokens")
    output_per_million: float = Field(0.0, ge=0.0, description="USD per million completion tokens")


class EngineFields(Strict):
    """How calls flow, for every backend: concurrency, rate limits, retries, timeouts, prices, caps."""

    concurrency: int = Field(64, ge=1, description="teacher calls in flight at once")
    max_retries: int = Field(3, ge=0, description="retries of a failed call before it is kept as a failed record")
    timeout_s: float = Field(120.0, gt=0.0, description="per attempt; a call with no reply by then is retried")
    requests_per_minute: float | None = Field(None, gt=0.0, description="token-bucket limit on calls; empty: none")
    tokens_per_minute: float | None = Field(None, gt=0.0, description="token-bucket limit on tokens; empty: none")
    backoff_base_s: float = Field(0.5, gt=0.0, description="first retry waits about this long, doubling after")
    prices: PricesConfig = PricesConfig()
    max_total_tokens: int | None = Field(None, ge=1, description="stop the run cleanly before spending more tokens")
    max_cost_usd: float | None = Field(None, gt=0.0, description="stop the run cleanly before spending more USD")


class OracleTeacherConfig(EngineFields):
    backend: Literal["oracle"] = "oracle"
    model: str = Field("skills-reference", description="model name recorded on every row")
    noise: float = Field(
        0.0, ge=0.0, le=1.0, description="share of answers deliberately corrupted, so verification has errors to catch"
    )


class OpenAITeacherConfig(EngineFields):
    backend: Literal["openai"]
    model: str = Field(description="model name the server serves (as in GET /v1/models)")
    base_url: str = Field(description="the server's OpenAI-compatible root, e.g. http://localhost:8000/v1")
    api_key_env: str | None = Field(
        None, description="name of the environment variable holding the API key (never the key itself)"
    )
    endpoint: Literal["chat", "completions"] = Field("chat", description="chat/completions or legacy completions")
    structured_output: bool = Field(
        False, description="send response_format with a JSON schema (vLLM, SGLang, OpenAI support it)"
    )
    extra_body: dict[str, Any] = Field(default_factory=dict, description="extra fields sent with every request")


class TransformersTeacherConfig(EngineFields):
    backend: Literal["transformers"]
    model: str = Field(description="Hugging Face model id (already in the local cache) or a local path")
    device: str = Field("auto", description="auto (CUDA, then MPS, then CPU), or e.g. cpu, cuda:0")
    batch_size: int = Field(16, ge=1, description="requests generated together")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"


TEACHER_CONFIGS: dict[str, type[EngineFields]] = {
    "oracle": OracleTeacherConfig,
    "openai": OpenAITeacherConfig,
    "transformers": TransformersTeacherConfig,
}


OPERATIONAL_TEACHER_KEYS = (*EngineFields.model_fields, "base_url", "api_key_env", "device", "batch_size")


def teacher_backend(value: Any) -> str | None:
    """The union's tag: `backend`, defaulting to the oracle when a recipe leaves it out."""
    if isinstance(value, dict):
        return value.get("backend", "oracle")
    return getattr(value, "backend", None)


TeacherConfig = Annotated[
    Annotated[OracleTeacherConfig, Tag("oracle")]
    | Annotated[OpenAITeacherConfig, Tag("openai")]
    | Annotated[TransformersTeacherConfig, Tag("transformers")],
    Discriminator(teacher_backend),
]


class GenerationConfig(Strict):
    task: Literal["solve"] = Field("solve", description="the loop's task (prompt tasks run with synthloop generate)")
    budget_per_round: int = Field(
        4000, ge=1, description="teacher calls per round, split across skills by the allocation"
    )
    shard_size: int = Field(1000, ge=1, description="records per Parquet shard")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="teacher sampling temperature")
    max_tokens: int = Field(512, ge=1, description="most tokens a teacher reply may have")


class CurationConfig(Strict):
    verify: bool = Field(True, description="check every teacher answer with the skill's scorer")
    dedup: bool = Field(True, description="reject exact duplicates (normalised question), across rounds too")
    decontaminate: bool = Field(True, description="reject items whose question is a held-out probe")


class GoldenConfig(Strict):
    path: str | None = Field(None, description="JSONL or Parquet of human examples; empty: embedded reference items")
    size: int = Field(400, ge=0, description="embedded golden items (reference solutions), when no path is given")


class GroundingConfig(Strict):
    golden: GoldenConfig = GoldenConfig()
    ratio: float = Field(0.2, ge=0.0, lt=1.0, description="share of golden rows in each round's training mix")
    strategy: Literal["accumulate", "replace"] = Field(
        "replace", description="accumulate: train on every round's kept data; replace: this round's only"
    )


class ArchitectureConfig(Strict):
    family: Literal["gpt2", "llama"] = Field("gpt2", description="scratch model family (HF GPT-2 or Llama)")
    hidden_size: int = Field(128, ge=8)
    layers: int = Field(4, ge=1)
    heads: int = Field(4, ge=1)
    intermediate_size: int = Field(512, ge=8)
    max_positions: int = Field(512, ge=32)


class TrainConfig(Strict):
    steps_per_round: int = Field(1500, ge=1, description="optimizer steps per round (the training budget)")
    batch_size: int = Field(16, ge=1, description="examples per step")
    max_len: int = Field(256, ge=16, description="longest example in tokens; longer ones are cut")
    learning_rate: float = Field(3e-3, gt=0.0)
    warmup_steps: int = Field(50, ge=0)
    weight_decay: float = Field(0.1, ge=0.0)
    grad_clip: float = Field(1.0, gt=0.0)
    threads: int = Field(0, ge=0, description="torch threads; 0 uses every core")


class StudentConfig(Strict):
    base: str = Field("scratch", description="'scratch' builds a tiny Llama; otherwise an HF model id or path")
    vocab_size: int = Field(512, ge=300, description="BPE vocabulary trained on the run's text (scratch only)")
    architecture: ArchitectureConfig = ArchitectureConfig()
    train: TrainConfig = TrainConfig()


class EvaluationConfig(Strict):
    probes_per_skill: int = Field(60, ge=1, description="held-out golden probes per skill, fixed across rounds")
    max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(128, ge=1)


class AllocationConfig(Strict):
    policy: Literal["uniform", "proportional_to_error"] = Field(
        "proportional_to_error", description="how the next round's budget follows the weakness report"
    )
    floor: float = Field(0.05, ge=0.0, description="minimum share of every skill, so none is starved")
    sharpness: float = Field(2.0, gt=0.0, description="share grows with error ** sharpness; above 1 focuses harder")


class Recipe(Strict):
    name: str = Field(description="a name for the run")
    seed: int = Field(0, description="seeds generation, probes, golden set and training")
    rounds: int = Field(3, ge=1, le=100)
    skills: dict[str, SkillSpec] = Field(description="skills to teach, each with its difficulty")
    teacher: TeacherConfig = OracleTeacherConfig()
    generation: GenerationConfig = GenerationConfig()
    curation: CurationConfig = CurationConfig()
    grounding: GroundingConfig = GroundingConfig()
    student: StudentConfig = StudentConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    allocation: AllocationConfig = AllocationConfig()

    @field_validator("skills")
    @classmethod
    def known_skills(cls, skills: dict[str, SkillSpec]) -> dict[str, SkillSpec]:
        if not skills:
            raise ValueError("list at least one skill")
        for name in skills:
            SKILLS.check(name)
        return skills

    def hash(self) -> str:
        """Identity of the recipe: two runs with the same hash make the same data. How calls flow
        (concurrency, limits, timeouts, prices, budget caps, where the server is) is left out, so a
        run stopped by a budget cap resumes after the cap is raised."""
        return identity_hash(self.model_dump(mode="json"))


def identity_hash(data: dict[str, Any]) -> str:
    """Hash of a recipe or job as dumped to JSON, without the teacher's operational keys."""
    data = {**data, "teacher": {k: v for k, v in data["teacher"].items() if k not in OPERATIONAL_TEACHER_KEYS}}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def default_recipe_text() -> str:
    return resources.files("synthloop.recipes").joinpath("default.yaml").read_text()


def load_recipe(path: str | Path | None = None) -> Recipe:
    """The recipe at `path`, or the default shipped in the package."""
    if path is None:
        return parse_recipe(default_recipe_text(), "the default recipe")
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    return parse_recipe(path.read_text(), str(path))


def parse_recipe(text: str, origin: str) -> Recipe:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise RecipeError(f"{origin}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
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
        try:
            TEACHERS.check(error["ctx"]["tag"])
        except UnknownNameError as unknown:
            return f"{path}.backend: {unknown}"
    context = error.get("ctx", {}).get("error")
    if isinstance(context, UnknownNameError):
        return f"{path}: {context}"
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"] or isinstance(error.get("input"), dict):
        return f"{path}: {message}"  # a check across keys: the whole mapping would not help
    return f"{path}: {message} (got {error.get('input')!r})"


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
            model = model.model_fields[part].annotation if part in model.model_fields else None
        elif get_origin(model) is dict:
            model = get_args(model)[1]  # a key of a mapping such as skills.<name>
        else:
            model = None
    return shown, model


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
