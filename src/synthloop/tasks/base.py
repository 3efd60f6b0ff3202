"""What every prompt task shares: parsed output as data, JSON replies checked against a schema, and a
bounded repair request when a reply does not parse.

A task builds requests (prompt building) and parses replies (output parsing), and the two never mix.
A reply that cannot be parsed is not an exception: `Parsed.failure` says why, and the row is kept."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import jsonschema

from synthloop.records import Message
from synthloop.teachers.base import TeacherRequest


@dataclass(frozen=True)
class Item:
    """One unit of output: a solution, a topic, an exercise, a refusal pair, ..."""

    question: str | None  # None: the request's own input is the question (e.g. `solve`, `textbook`)
    reasoning: str = ""
    answer: str | None = None


@dataclass(frozen=True)
class Parsed:
    items: list[Item] = field(default_factory=list)
    failure: str | None = None  # why the output could not be used; the row is kept with it


class Task(Protocol):
    name: str
    kind: str
    template_version: str
    schema: dict[str, Any] | None  # JSON schema of the reply, for servers that enforce it

    def parse(self, text: str) -> Parsed: ...


def extract_json(text: str) -> Any:
    """The JSON value in a reply: the whole text, a fenced block, or the outermost {...} / [...]."""
    text = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    candidates = [text, fenced.group(1).strip() if fenced else None]
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = text.find(opener), text.rfind(closer)
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    for candidate in candidates:
        if candidate:
            try:
                return json.loads(candidate)
            except ValueError:
                continue
    raise ValueError("the reply contains no valid JSON")


def parse_json(text: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """(value, None) for a reply that is valid JSON matching `schema`, else (None, the reason)."""
    try:
        value = extract_json(text)
    except ValueError as err:
        return None, str(err)
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "the top level"
        return None, f"the JSON does not match the schema at {where}: {err.message}"
    return value, None


def repair_request(request: TeacherRequest, reply: str, failure: str, schema: dict[str, Any]) -> TeacherRequest:
    """A follow-up that shows the teacher its unusable reply and the reason, and asks for the JSON only."""
    follow_up = (
        f"Your reply could not be used: {failure}. Reply again with only a JSON value, no other text, "
        f"matching this JSON schema:\n{json.dumps(schema)}"
    )
    messages = (*request.messages, Message("assistant", reply), Message("user", follow_up))
    return TeacherRequest(messages, replace(request.sampling, n=1))


def string_list_schema(key: str, min_items: int = 1) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {key: {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": min_items}},
        "required": [key],
        "additionalProperties": False,
    }


def object_list_schema(key: str, fields: tuple[str, ...], min_items: int = 1) -> dict[str, Any]:
    item = {
        "type": "object",
        "properties": {f: {"type": "string", "minLength": 1} for f in fields},
        "required": list(fields),
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {key: {"type": "array", "items": item, "minItems": min_items}},
        "required": [key],
        "additionalProperties": False,
    }
