"""`write_problems`: the teacher writes new problems for a category the student is weak in, either like
an example the student got wrong (failure-driven variations, the LLM2LLM / SwS idea) or from the
category's name and description (topic-driven exercises, for categories with too few failures to learn
from). Only questions come back: the teacher then solves each one separately, several times, and a
problem is kept only when its answers are verified. Examples come from the train split only."""

from __future__ import annotations

from typing import Any

from synthloop.records import Message
from synthloop.scoring.item import TaskItem
from synthloop.tasks.base import Item, Parsed, parse_json, string_list_schema
from synthloop.teachers.base import SamplingParams, TeacherRequest

SYSTEM = (
    "You write new practice problems for a student model. Every problem is self-contained, has exactly one "
    "correct final answer that can be checked, and never copies an example."
)
LIKE_EXAMPLE = (
    "Category: {category}\n{description}"
    "Here is a problem of this category that the student got wrong, with its answer:\n\n"
    "Problem: {question}\nAnswer: {answer}\n\n"
    "Write {count} new problems like it: the same category, the same kind of reasoning and the same difficulty, "
    "but a new surface (other names, numbers, objects and wording). Do not solve them. "
    'Reply with JSON: {{"problems": ["...", "..."]}}'
)
FROM_TOPIC = (
    "Category: {category}\n{description}"
    "Write {count} new practice problems in this category, of the kind a test of it would ask, each with one "
    'short final answer. Do not solve them. Reply with JSON: {{"problems": ["...", "..."]}}'
)


class WriteProblemsTask:
    name = "write_problems"
    kind = "problem"
    template_version = "write-problems-v1"

    def __init__(self, count: int = 1):
        self.count = count

    @property
    def schema(self) -> dict[str, Any]:
        return string_list_schema("problems")

    def like_example(
        self, example: TaskItem, description: str, sampling: SamplingParams, sample_index: int
    ) -> TeacherRequest:
        user = LIKE_EXAMPLE.format(
            category=example.category,
            description=described(description),
            question=example.question,
            answer=example.answer,
            count=self.count,
        )
        return self.request(user, sampling, sample_index)

    def from_topic(
        self, category: str, description: str, sampling: SamplingParams, sample_index: int
    ) -> TeacherRequest:
        user = FROM_TOPIC.format(category=category, description=described(description), count=self.count)
        return self.request(user, sampling, sample_index)

    def request(self, user: str, sampling: SamplingParams, sample_index: int) -> TeacherRequest:
        messages = (Message("system", SYSTEM), Message("user", user))
        return TeacherRequest(messages, sampling, sample_index, self.schema)

    def parse(self, text: str) -> Parsed:
        value, failure = parse_json(text, self.schema)
        if failure:
            return Parsed(failure=failure)
        return Parsed([Item(problem.strip()) for problem in value["problems"]])


def described(description: str) -> str:
    return f"About this category: {description.strip()}\n\n" if description.strip() else "\n"
