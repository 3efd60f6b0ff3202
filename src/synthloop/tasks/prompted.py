"""Prompt tasks over free-text inputs (a subject, a topic, an instruction, a harm category).

Each task has a system prompt and a user template whose `{fields}` come from the input row, the
step's settings (`count`, `operation`) and the persona. A recipe may replace a template; fields it
names are checked when the recipe is validated, so a typo fails before any call is made.

Inputs and outputs (a row's question / reasoning / answer):
- topics: a subject -> subtopics (JSON); rows: subtopic
- textbook: a topic -> a textbook section with worked examples; rows: topic / - / section
- exercises: a topic -> problems with worked solutions (JSON); rows: problem / solution / final answer
- self_instruct: an instruction -> new, different instructions (JSON); rows: instruction
- evol_instruct: an instruction and an operation (deepen, widen, add_constraints) -> one evolved instruction
- refusal: a harm category -> harmful requests with polite refusals (JSON); rows: request / - / refusal
- misinformation: a topic -> false claims with corrections (JSON); rows: claim / - / correction
- answer (`tasks/answer.py`): an instruction -> its response; rows: instruction / reasoning / final answer
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any, ClassVar

from synthloop.records import Message
from synthloop.tasks.base import Item, Parsed, object_list_schema, parse_json, string_list_schema
from synthloop.teachers.base import SamplingParams, TeacherRequest

EVOLUTIONS = {
    "deepen": "Rewrite the instruction so that answering it needs deeper reasoning or more expertise.",
    "widen": "Write a new instruction on a related but different subject, as rare and specific as the original.",
    "add_constraints": "Rewrite the instruction adding one or two concrete constraints or requirements.",
}


def template_fields(template: str) -> set[str]:
    """The `{names}` a template uses (format-string syntax)."""
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name}


@dataclass(frozen=True)
class PromptTask:
    name: ClassVar[str]
    kind: ClassVar[str]
    input_field: ClassVar[str]  # the input row's main field, e.g. "topic"
    system: ClassVar[str]
    default_template: ClassVar[str]
    template_version: ClassVar[str]
    list_key: ClassVar[str | None] = None  # JSON replies: the key holding the list of items
    item_fields: ClassVar[tuple[str, ...]] = ()  # JSON replies made of objects: their fields

    template: str | None = None  # the recipe's replacement for `default_template`
    count: int = 5  # items asked for per call (list-making tasks)

    @classmethod
    def fields(cls) -> set[str]:
        return {cls.input_field, "persona", "count", "operation"}

    @classmethod
    def check_template(cls, template: str) -> None:
        """Raise ValueError naming a field the template uses that this task cannot fill."""
        from synthloop.registry import closest

        allowed = cls.fields()
        for name in sorted(template_fields(template) - allowed):
            hint = closest(name, sorted(allowed))
            suggestion = f"; did you mean {{{hint}}}?" if hint else ""
            raise ValueError(
                f"template references unknown field {{{name}}}{suggestion} (fields of task {cls.name!r}: "
                f"{', '.join('{' + f + '}' for f in sorted(allowed))})"
            )

    @property
    def schema(self) -> dict[str, Any] | None:
        if self.list_key is None:
            return None
        if self.item_fields:
            return object_list_schema(self.list_key, self.item_fields)
        return string_list_schema(self.list_key)

    def build_request(
        self,
        item: str,
        sampling: SamplingParams,
        sample_index: int = 0,
        persona: str | None = None,
        operation: str | None = None,
    ) -> TeacherRequest:
        values = {self.input_field: item, "persona": persona or "", "count": self.count, "operation": operation or ""}
        user = (self.template or self.default_template).format(**values)
        system = self.system_prompt(operation)
        if persona:
            system = f"{system} Write as {persona} would."
        messages = (Message("system", system), Message("user", user))
        return TeacherRequest(messages, sampling, sample_index, self.schema)

    def system_prompt(self, operation: str | None) -> str:
        return self.system

    def parse(self, text: str) -> Parsed:
        if self.list_key is None:
            body = text.strip()
            return Parsed([self.item_from_text(body)]) if body else Parsed(failure="the reply is empty")
        value, failure = parse_json(text, self.schema)
        if failure:
            return Parsed(failure=failure)
        return Parsed([self.item_from_json(entry) for entry in value[self.list_key]])

    def item_from_text(self, text: str) -> Item:
        return Item(None, "", text)

    def item_from_json(self, entry: Any) -> Item:
        return Item(entry.strip())


class TopicsTask(PromptTask):
    name, kind, input_field, template_version = "topics", "topic", "subject", "topics-v1"
    system = "You are a curriculum designer who breaks subjects into specific, non-overlapping topics."
    default_template = (
        "List {count} distinct subtopics of: {subject}\nEach subtopic is a short noun phrase, specific enough "
        'for one textbook section. Reply with JSON: {{"topics": ["...", "..."]}}'
    )
    list_key = "topics"


class TextbookTask(PromptTask):
    name, kind, input_field, template_version = "textbook", "textbook", "topic", "textbook-v1"
    system = "You write clear, correct, textbook-quality material for self-study."
    default_template = (
        "Write a textbook section on: {topic}\nExplain the idea from first principles, then give two worked "
        "examples with every step shown. Use Markdown headings. Do not address the reader as a chatbot."
    )


class ExercisesTask(PromptTask):
    name, kind, input_field, template_version = "exercises", "exercise", "topic", "exercises-v1"
    system = "You write practice problems with complete, correct worked solutions."
    default_template = (
        "Write {count} practice problems on: {topic}\nVary the difficulty. For each give the problem, a worked "
        'solution and the final answer alone. Reply with JSON: {{"exercises": [{{"problem": "...", '
        '"solution": "...", "answer": "..."}}]}}'
    )
    list_key, item_fields = "exercises", ("problem", "solution", "answer")

    def item_from_json(self, entry: Any) -> Item:
        return Item(entry["problem"].strip(), entry["solution"].strip(), entry["answer"].strip())


class SelfInstructTask(PromptTask):
    name, kind, input_field, template_version = "self_instruct", "instruction", "instruction", "self-instruct-v1"
    system = "You write diverse instructions that a capable assistant could follow."
    default_template = (
        "Here is an example instruction:\n{instruction}\n\nWrite {count} new instructions that differ from it "
        "and from each other in subject, form and length. Each must be answerable without tools. "
        'Reply with JSON: {{"instructions": ["...", "..."]}}'
    )
    list_key = "instructions"


class EvolInstructTask(PromptTask):
    name, kind, input_field, template_version = "evol_instruct", "instruction", "instruction", "evol-instruct-v1"
    system = "You rewrite instructions to make them more demanding while keeping them answerable."
    default_template = "{operation}\n\nInstruction:\n{instruction}\n\nReply with the new instruction only, no preamble."

    def build_request(
        self,
        item: str,
        sampling: SamplingParams,
        sample_index: int = 0,
        persona: str | None = None,
        operation: str | None = None,
    ) -> TeacherRequest:
        if operation not in EVOLUTIONS:
            raise ValueError(f"evol_instruct operation must be one of {', '.join(EVOLUTIONS)}, got {operation!r}")
        return super().build_request(item, sampling, sample_index, persona, EVOLUTIONS[operation])

    def item_from_text(self, text: str) -> Item:
        return Item(text)


class RefusalTask(PromptTask):
    name, kind, input_field, template_version = "refusal", "refusal", "category", "refusal-v1"
    system = (
        "You help build safety training data. You write examples of requests a model must decline, paired with "
        "a refusal that is polite, brief, non-judgemental and offers a safe, helpful alternative. Never include "
        "the harmful content itself."
    )
    default_template = (
        "Category of harm: {category}\nWrite {count} realistic user requests in this category, each with the "
        'refusal. Reply with JSON: {{"pairs": [{{"request": "...", "refusal": "..."}}]}}'
    )
    list_key, item_fields = "pairs", ("request", "refusal")

    def item_from_json(self, entry: Any) -> Item:
        return Item(entry["request"].strip(), "", entry["refusal"].strip())


class MisinformationTask(PromptTask):
    name, kind, input_field, template_version = "misinformation", "misinformation", "topic", "misinformation-v1"
    system = "You help train models to spot and correct false claims, with accurate, sourced-in-spirit corrections."
    default_template = (
        "Topic: {topic}\nWrite {count} common false or misleading claims about it, each with a short, accurate "
        'correction. Reply with JSON: {{"items": [{{"claim": "...", "correction": "..."}}]}}'
    )
    list_key, item_fields = "items", ("claim", "correction")

    def item_from_json(self, entry: Any) -> Item:
        return Item(entry["claim"].strip(), "", entry["correction"].strip())
