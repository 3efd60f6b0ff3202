"""One generic registry: names map to lazy "module:attribute" entries, imported on first use.

An unknown name raises `UnknownNameError` with the closest valid names, so a typo in a recipe or
on the command line is answered with "did you mean ...?"."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    """An unknown registry name; a ValueError so that recipe validation reports it at its key."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        super().__init__(f"unknown {kind} {name!r}; {hint}known {kind}s: {', '.join(sorted(known))}")


def closest(name: str, known: list[str]) -> str | None:
    """The closest valid name to `name`, or None when nothing is close."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return close[0] if close else None


class Registry(Generic[T]):
    def __init__(self, kind: str, entries: dict[str, str]):
        self.kind = kind
        self._entries = dict(entries)
        self._loaded: dict[str, T] = {}

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def check(self, name: str) -> None:
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self.names())

    def get(self, name: str) -> T:
        self.check(name)
        if name not in self._loaded:
            module, attribute = self._entries[name].split(":")
            self._loaded[name] = getattr(importlib.import_module(module), attribute)
        return self._loaded[name]

    def register(self, name: str, target: str | Any) -> None:
        """Add an entry: a "module:attribute" string (lazy) or the object itself."""
        if isinstance(target, str):
            self._entries[name] = target
        else:
            self._entries[name] = f"{__name__}:_direct"
            self._loaded[name] = target


SKILLS: Registry = Registry(
    "skill",
    {
        "addition": "synthloop.skills.arithmetic:ADDITION",
        "subtraction": "synthloop.skills.arithmetic:SUBTRACTION",
        "multiplication": "synthloop.skills.arithmetic:MULTIPLICATION",
        "order_of_operations": "synthloop.skills.order_of_operations:ORDER_OF_OPERATIONS",
        "fractions": "synthloop.skills.fractions:FRACTIONS",
        "unit_conversion": "synthloop.skills.units:UNIT_CONVERSION",
        "comparison": "synthloop.skills.comparison:COMPARISON",
        "spatial_3d": "synthloop.skills.spatial3d:SPATIAL_3D",
        "logic": "synthloop.skills.logic:LOGIC",
        "sequences": "synthloop.skills.sequences:SEQUENCES",
        "word_problems": "synthloop.skills.word_problems:WORD_PROBLEMS",
    },
)

TEACHERS: Registry = Registry(
    "teacher backend",
    {
        "oracle": "synthloop.teachers.oracle:OracleTeacher",
        "openai": "synthloop.teachers.openai_http:OpenAITeacher",
        "transformers": "synthloop.teachers.transformers_local:TransformersTeacher",
        "vllm": "synthloop.teachers.vllm_answers:VLLMAnswers",
    },
)

TASKS: Registry = Registry(
    "task",
    {
        "solve": "synthloop.tasks.solve:SolveTask",
        "write_problems": "synthloop.tasks.write_problems:WriteProblemsTask",
        "topics": "synthloop.tasks.prompted:TopicsTask",
        "textbook": "synthloop.tasks.prompted:TextbookTask",
        "exercises": "synthloop.tasks.prompted:ExercisesTask",
        "self_instruct": "synthloop.tasks.prompted:SelfInstructTask",
        "evol_instruct": "synthloop.tasks.prompted:EvolInstructTask",
        "refusal": "synthloop.tasks.prompted:RefusalTask",
        "misinformation": "synthloop.tasks.prompted:MisinformationTask",
        "answer": "synthloop.tasks.answer:AnswerTask",
    },
)

SCORERS: Registry = Registry(
    "scorer",
    {
        "exact": "synthloop.scoring.values:ExactScorer",
        "numeric": "synthloop.scoring.values:NumericScorer",
        "math": "synthloop.scoring.symbolic:MathScorer",
        "choice": "synthloop.scoring.choice:ChoiceScorer",
        "regex": "synthloop.scoring.pattern:RegexScorer",
        "code": "synthloop.scoring.code:CodeScorer",
        "judge": "synthloop.scoring.judge:JudgeScorer",
    },
)
