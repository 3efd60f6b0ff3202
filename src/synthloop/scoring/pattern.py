"""`regex`: the reference is a regular expression the whole final answer must match (`fullmatch`), e.g.
`(?:\\$\\s*)?5(?:\\.00)?` or `(?:paris|paris, france)`. Case is ignored unless `case_sensitive`. A pattern
that does not compile is refused at load. A pattern cannot hang a run: answers over `MAX_ANSWER_CHARS`
are not matched, and each match runs with a time limit (the `regex` engine's), after which it scores 0."""

from __future__ import annotations

import regex

from synthloop.config import ScorerConfig
from synthloop.scoring.base import AnswerScorer, verdict
from synthloop.scoring.context import ScoringContext
from synthloop.scoring.item import Score, TaskItem

MAX_ANSWER_CHARS = 1000
MATCH_TIMEOUT_S = 0.5
MAX_PATTERN_CHARS = 10_000


class RegexScorer(AnswerScorer):
    name = "regex"

    def __init__(self, case_sensitive: bool = False):
        self.flags = regex.VERSION0 | (0 if case_sensitive else regex.IGNORECASE)
        self.compiled: dict[str, regex.Pattern] = {}

    @classmethod
    def from_config(cls, config: ScorerConfig, context: ScoringContext) -> RegexScorer:
        return cls(config.case_sensitive)

    def exempt(self, item: TaskItem) -> tuple[str, ...]:
        return ()  # the reference is a pattern, never an answer to take as written

    def pattern(self, text: str) -> regex.Pattern:
        if text not in self.compiled:
            self.compiled[text] = regex.compile(text, self.flags)
        return self.compiled[text]

    def compare(self, answer: str, item: TaskItem) -> Score:
        if len(answer) > MAX_ANSWER_CHARS:
            return Score(0.0, answer[:200], f"an answer over {MAX_ANSWER_CHARS} characters is not matched")
        try:
            pattern = self.pattern(item.answer)
        except regex.error as err:
            return Score(0.0, answer, f"the reference is not a regular expression: {err}")
        try:
            matched = pattern.fullmatch(answer, timeout=MATCH_TIMEOUT_S) is not None
        except TimeoutError:
            return Score(0.0, answer, f"the pattern took over {MATCH_TIMEOUT_S}s on this answer: not matched")
        return verdict(matched, answer, item, f"{answer[:80]!r} does not match /{item.answer[:80]}/")

    def check_reference(self, item: TaskItem) -> str | None:
        if not item.answer.strip():
            return "an empty reference pattern"
        if len(item.answer) > MAX_PATTERN_CHARS:
            return f"a reference pattern over {MAX_PATTERN_CHARS} characters"
        try:
            self.pattern(item.answer)
        except regex.error as err:
            return f"the reference {item.answer[:80]!r} is not a regular expression ({err}); the regex scorer needs one"
        return None
