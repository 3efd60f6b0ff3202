"""`solve`: ask the teacher for a step-by-step solution of a skill problem ending in `#### answer`.

`build_request` makes the prompt; `parse` splits the output into reasoning and final answer. A
reply with no final answer is a parse failure, returned as data (the record keeps the raw text)."""

from __future__ import annotations

from typing import Any

from synthloop.records import Message
from synthloop.skills.answers import extract_final_answer
from synthloop.skills.base import Problem
from synthloop.tasks.base import Item, Parsed
from synthloop.teachers.base import SamplingParams, TeacherRequest

SYSTEM = (
    "Solve the problem step by step, one short step per line. End with a last line of the form '#### <final answer>'."
)


class SolveTask:
    name = "solve"
    template_version = "solve-v1"
    kind = "solution"
    schema: dict[str, Any] | None = None

    def build_request(self, problem: Problem, sampling: SamplingParams, sample_index: int = 0) -> TeacherRequest:
        messages = (Message("system", SYSTEM), Message("user", problem.question))
        return TeacherRequest(messages, sampling, sample_index, problem=problem)

    def request_for(self, question: str, sampling: SamplingParams, sample_index: int = 0) -> TeacherRequest:
        """A request for a question that is not a built-in skill's problem (a user's task, a written problem)."""
        return TeacherRequest((Message("system", SYSTEM), Message("user", question)), sampling, sample_index)

    def parse(self, text: str) -> Parsed:
        answer = extract_final_answer(text)
        if answer is None:
            return Parsed([Item(None, text.strip())], "no final answer ('#### ...') in the output")
        reasoning = text.split("####")[0].strip() if "####" in text else text.strip()
        return Parsed([Item(None, reasoning, answer)])
