"""The recipe: typed, validated where it enters, loaded from YAML.

A bad recipe raises `RecipeError` with one line that names the key path and, for a misspelled key or
an unknown skill or backend, the closest valid name. Nothing is written before a recipe validates."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from synthloop.registry import SKILLS, TASKS, TEACHERS, Registry, UnknownNameError, closest


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


class TeacherConfig(Strict):
    backend: Registered(TEACHERS) = Field("oracle", description="teacher backend name (see the registry)")
    model: str = Field("skills-reference", description="model name recorded on every row")
    noise: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="oracle only: share of answers deliberately corrupted, so verification has errors to catch",
    )
    concurrency: int = Field(64, ge=1, description="teacher calls in flight at once")
    max_retries: int = Field(3, ge=0, description="retries of a failed call before it is kept as a failed record")


class GenerationConfig(Strict):
    task: Registered(TASKS) = Field("solve", description="prompt task that turns a problem into a teacher request")
    budget_per_round: int = Field(
        4000, ge=1, description="teacher calls per round, split across skills by the allocation"
    )
    shard_size: int = Field(1000, ge=1, description="records per Parquet shard")


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
    teacher: TeacherConfig = TeacherConfig()
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
        """Identity of the recipe: two runs with the same hash make the same data."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


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
        raise RecipeError(f"{origin}: {describe(err.errors()[0])}") from None


def describe(error: dict[str, Any]) -> str:
    """One line for a pydantic error: the key path, what is wrong, the closest valid name."""
    loc = [str(part) for part in error["loc"]]
    path = ".".join(loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        valid = field_names_at(loc[:-1])
        hint = closest(loc[-1], valid)
        suggestion = f"; did you mean {'.'.join([*loc[:-1], hint])!r}?" if hint else ""
        return f"unknown key {path!r}{suggestion} (valid keys here: {', '.join(valid)})"
    if error["type"] == "missing":
        return f"missing key {path!r}"
    context = error.get("ctx", {}).get("error")
    if isinstance(context, UnknownNameError):
        return f"{path}: {context}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{path}: {message} (got {error.get('input')!r})"


def field_names_at(loc: list[str]) -> list[str]:
    """The valid keys of the recipe section at `loc` (e.g. ['grounding'] -> golden, ratio, strategy)."""
    model: Any = Recipe
    for part in loc:
        if isinstance(model, type) and issubclass(model, BaseModel):
            model = model.model_fields[part].annotation if part in model.model_fields else None
        elif get_origin(model) is dict:
            model = get_args(model)[1]  # a key of a mapping such as skills.<name>
        else:
            return []
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
