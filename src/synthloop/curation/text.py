"""Which text of a record a stage looks at, and the word n-grams the overlap stages compare."""

from __future__ import annotations

import string
from typing import Literal

from synthloop.records import Record

TextField = Literal["question", "answer", "all"]
"""question: the problem as the student sees it (the loop's items); answer: the written text of a
document-making task (a textbook section, an exercise's solution); all: question, reasoning and answer."""

_PUNCTUATION = str.maketrans(dict.fromkeys(string.punctuation + "“”‘’«»–—…¿¡", " "))


def record_text(record: Record, field: TextField) -> str:
    return field_text(field, record.question, record.reasoning, record.answer)


def field_text(field: TextField, question: str, reasoning: str, answer: str | None) -> str:
    """`record_text` from the three fields alone (what the Ray engine reads from Arrow columns)."""
    if field == "question":
        return question
    if field == "answer":
        return answer or ""
    return "\n".join(part for part in (question, reasoning, answer) if part)


def words(text: str) -> list[str]:
    """Lower-cased word tokens; punctuation and spacing do not count, so light reformatting is invisible."""
    return text.translate(_PUNCTUATION).lower().split()


def ngrams(tokens: list[str], n: int) -> list[str]:
    """Word n-grams joined by a space. A text shorter than n gives one gram of all its words (none when empty)."""
    if len(tokens) < n:
        return [" ".join(tokens)] if tokens else []
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
