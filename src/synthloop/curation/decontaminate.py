"""Decontamination: the loop must never train on an item it is evaluated on.

A row is contaminated by an evaluation item when the word n-grams (n from 8 to 13) it shares with the
item cover at least `min_coverage` of the item's tokens, every number of the item among them: a changed
word is a light edit, a changed number is a different problem. Coverage counts the tokens of shared
n-grams and, next to them, tokens that equal the row's at the same alignment, so one replaced word costs
one token of coverage rather than up to n. An item shorter than n tokens is matched whole:
the row contains all of its tokens, in order. Tokens are lower-cased words and arithmetic symbols, so
case, spacing and punctuation edits do not hide an item, while "23 + 45" and "23 - 45" stay different.
Coverage rather than "any shared n-gram" is what keeps rows written from the same template as an item
(the spatial problems' "East is +x, north is +y, up is +z. A blue ball is at ...") from being called
contaminated by their shared wording. The run's own held-out probes are always one of the sets.

A short item is also matched by its core: its tokens without the wording of a request ("what is",
"compute", "find the value of", ...). A row whose question holds that core in order is contaminated,
so "Compute 40 + 62." and "what's 40 + 62" hide no more than "What is 40 + 62?" itself. The core is
looked for in the row's question only (a worked solution's "4 + 6 = 10" is not a copy of "What is
4 + 6?"), and only when it holds a number or an operator, or three words: "larger 84 80" still
differs from "smaller 84 80"."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from synthloop.curation.base import RowStage
from synthloop.curation.text import TextField, record_text
from synthloop.records import Record
from synthloop.storage.input_files import read_rows, text_field

_TOKEN = re.compile(r"\w+|[+\-*/=^<>%×÷√()]")
OPERATORS = frozenset("+-*/=^<>%×÷√")
EVAL_TEXT_FIELDS = ("question", "problem", "prompt", "text", "input")
# The wording of a request, not its content: dropped from a short item's core.
REQUEST_WORDS = frozenset(
    {"what", "whats", "s", "is", "are", "was", "the", "a", "an", "of", "please", "to", "for", "me", "us", "get"}
    | {"compute", "calculate", "find", "evaluate", "solve", "determine", "work", "out", "give", "tell"}
    | {"value", "result", "answer", "exactly", "simplify"}
)


def core_tokens(tokens: Iterable[str]) -> tuple[str, ...]:
    return tuple(token for token in tokens if token not in REQUEST_WORDS)


def overlap_tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


@dataclass(frozen=True, slots=True)
class Hit:
    eval_set: str
    item: int  # index of the item in its set
    coverage: float  # share of the item's tokens inside n-grams the row shares with it
    overlap: str  # the first shared n-gram (or the whole short item)


class NgramIndex:
    def __init__(self, n: int = 8, min_coverage: float = 0.8):
        if not 8 <= n <= 13:
            raise ValueError(f"decontamination n-gram size must be 8 to 13, got {n}")
        self.n, self.min_coverage = n, min_coverage
        self.items: list[tuple[str, int]] = []  # (set, index in set)
        self.anchors: list[frozenset[int]] = []  # positions of each item's numbers and operators
        self.tokens: list[tuple[str, ...]] = []  # each item's tokens
        self.grams: dict[tuple[str, ...], list[tuple[int, int]]] = {}  # n-gram -> (item, position) of long items
        self.short: dict[int, dict[tuple[str, ...], int]] = {}  # whole short items by length -> item
        self.cores: dict[int, dict[tuple[str, ...], int]] = {}  # short items' cores by length -> item

    def add(self, eval_set: str, texts: Iterable[str]) -> None:
        for index, text in enumerate(texts):
            tokens = tuple(overlap_tokens(text))
            if not tokens:
                continue
            item = len(self.items)
            self.items.append((eval_set, index))
            self.anchors.append(frozenset(i for i, token in enumerate(tokens) if token.isdigit() or token in OPERATORS))
            self.tokens.append(tokens)
            if len(tokens) < self.n:
                self.short.setdefault(len(tokens), {}).setdefault(tokens, item)
                core = core_tokens(tokens)
                if len(core) >= 3 or (len(core) == 2 and any(t.isdigit() or t in OPERATORS for t in core)):
                    self.cores.setdefault(len(core), {}).setdefault(core, item)
                continue
            for position in range(len(tokens) - self.n + 1):
                self.grams.setdefault(tokens[position : position + self.n], []).append((item, position))

    def find(self, text: str, question: str | None = None) -> Hit | None:
        """The item `text` copies, if any; `question` (the row's question) is also searched for short items'
        cores."""
        tokens = tuple(overlap_tokens(text))
        whole = self.contained(tokens, self.short)
        if whole is not None:
            return whole
        if question is not None:
            core = self.contained(core_tokens(overlap_tokens(question)), self.cores, whole_terms=True)
            if core is not None:
                return core
        aligned: dict[int, dict[int, int]] = {}  # item -> {position of a shared n-gram in it: its row position}
        first: dict[int, str] = {}
        for i in range(len(tokens) - self.n + 1):
            gram = tokens[i : i + self.n]
            for item, position in self.grams.get(gram, ()):
                aligned.setdefault(item, {}).setdefault(position, i)
                first.setdefault(item, " ".join(gram))
        best: Hit | None = None
        for item, positions in aligned.items():
            size = len(self.tokens[item])
            if len(positions) * self.n < self.min_coverage * size - 2 * self.n:
                continue  # too few shared n-grams to reach the coverage even with every neighbour matching
            covered = self.covered(item, positions, tokens)
            coverage = len(covered) / size
            if coverage < self.min_coverage or not self.anchors[item] <= covered:
                continue
            if best is None or coverage > best.coverage:
                best = self.hit(item, coverage, first[item])
        return best

    def contained(
        self, tokens: tuple[str, ...], by_length: dict[int, dict[tuple[str, ...], int]], whole_terms: bool = False
    ) -> Hit | None:
        """The first item found in `tokens`; with `whole_terms`, a match must not continue an expression on
        either side ("12 + 1" is not in "7/12 + 1/12")."""
        for length, items in by_length.items():
            for i in range(len(tokens) - length + 1):
                item = items.get(tokens[i : i + length])
                if item is None:
                    continue
                if whole_terms and (continues(tokens, i - 1) or continues(tokens, i + length)):
                    continue
                return self.hit(item, 1.0, " ".join(tokens[i : i + length]))
        return None

    def covered(self, item: int, positions: dict[int, int], row: tuple[str, ...]) -> set[int]:
        """Item positions inside a shared n-gram, plus those within n-1 tokens of one that equal the row's
        token at the same alignment: a replaced word then costs one token of coverage, not up to n."""
        tokens, n = self.tokens[item], self.n
        covered: set[int] = set()
        for position, at in positions.items():
            covered.update(range(position, position + n))
            shift = at - position
            for p in (*range(max(0, position - n + 1), position), *range(position + n, position + 2 * n - 1)):
                if p < len(tokens) and 0 <= p + shift < len(row) and row[p + shift] == tokens[p]:
                    covered.add(p)
        return covered

    def hit(self, item: int, coverage: float, overlap: str) -> Hit:
        eval_set, index = self.items[item]
        return Hit(eval_set, index, coverage, overlap)

    def __len__(self) -> int:
        return len(self.items)


def continues(tokens: tuple[str, ...], at: int) -> bool:
    """Whether the token at `at` (beside a match) is a number, an operator or a bracket: the match is then
    part of a longer expression. `=` ends one."""
    if not 0 <= at < len(tokens):
        return False
    token = tokens[at]
    return token.isdigit() or (token in OPERATORS and token != "=") or token in "()"


def load_eval_set(path: str | Path) -> list[str]:
    """Items of a user's evaluation set: JSONL or Parquet rows with a question/problem/prompt/text/input field."""
    return [text_field(row, where, EVAL_TEXT_FIELDS) for row, where in read_rows(path, "evaluation set")]


class Decontaminate(RowStage):
    name = "decontaminate"

    def __init__(
        self, eval_sets: dict[str, Iterable[str]], n: int = 8, field: TextField = "all", min_coverage: float = 0.8
    ):
        self.index = NgramIndex(n, min_coverage)
        for name, texts in eval_sets.items():
            self.index.add(name, texts)
        self.field = field

    def judge(self, record: Record) -> None:
        hit = self.index.find(record_text(record, self.field), record.question)
        if hit is None:
            record.add_verdict(self.name, True)
        else:
            detail = f"{hit.coverage:.0%} of {hit.eval_set}[{hit.item}], e.g. {hit.overlap[:200]!r}"
            record.add_verdict(self.name, False, "contaminated", hit.coverage, detail)
