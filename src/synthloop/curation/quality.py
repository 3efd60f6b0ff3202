"""Quality heuristics in the manner of the Gopher and FineWeb filters: cheap rules that catch the
teacher's degenerate outputs (a reply stuck in a loop, a wall of symbols, an empty answer).

Each rule measures one number and compares it with a bound; a row breaking any rule is rejected with
the first broken rule as its reason (`quality_<rule>`), every broken rule is listed in the verdict's
detail, and `QualityFilter.counts` counts every rule separately.

Two presets. `prose` has the published thresholds, for running text. `reasoning` (the default) suits
worked solutions, which are short, numeric, have few stop words and repeat themselves by nature (an
expression rewritten step by step): it keeps the length, symbol, list and paragraph rules, drops the
running-text rules (word length, alphabetic words, stop words, punctuated and short lines) and the top
n-gram rules, and loosens duplicate lines to 0.60 (0.45 of characters) and duplicate 10-grams to 0.60 of
characters. Measured on 6,600 reference solutions of the eleven embedded skills (difficulties 1, 3, 5),
the largest values were 0.455, 0.315 and 0.507: none is rejected, while a reply looping on one
sentence (about 0.9 of its characters in repeated 10-grams) is. Any rule can be set or switched off
(None) in `overrides`.
The n-gram repetition rules need `repetition_min_words` words: in a ten-word sum, one repeated number
is most of the text and says nothing about quality."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from synthloop.curation.base import RowStage
from synthloop.curation.text import TextField, record_text
from synthloop.records import Record

Preset = Literal["reasoning", "prose"]
STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})  # Gopher's list
BULLETS = ("-", "*", "•", "‣", "◦", "–")
TERMINAL_PUNCTUATION = (".", "!", "?", '"', "'", ")", ":", "…")
_WORD = re.compile(r"\S+")


@dataclass
class Doc:
    """The text once split, shared by every rule."""

    text: str
    words: list[str]
    lines: list[str]
    paragraphs: list[str]

    @classmethod
    def of(cls, text: str) -> Doc:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
        return cls(text, _WORD.findall(text), lines, paragraphs)


def duplicate_share(items: list[str], by_chars: bool) -> float:
    """Share of items (or of their characters) that repeat an earlier item."""
    if not items:
        return 0.0
    seen: set[str] = set()
    repeated = 0
    for item in items:
        if item in seen:
            repeated += len(item) if by_chars else 1
        seen.add(item)
    return repeated / (sum(map(len, items)) if by_chars else len(items))


def top_ngram_share(words: list[str], n: int) -> float:
    """Characters covered by the most frequent word n-gram, as a share of all word characters."""
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return 0.0
    gram, count = grams.most_common(1)[0]
    return sum(map(len, gram)) * count / max(1, sum(map(len, words)))


def duplicate_ngram_share(words: list[str], n: int) -> float:
    """Characters of words inside an n-gram that occurred earlier, as a share of all word characters."""
    seen: set[tuple[str, ...]] = set()
    covered = [False] * len(words)
    for i in range(len(words) - n + 1):
        gram = tuple(words[i : i + n])
        if gram in seen:
            covered[i : i + n] = [True] * n
        seen.add(gram)
    return sum(len(w) for w, c in zip(words, covered, strict=True) if c) / max(1, sum(map(len, words)))


def share(items: list[str], test: Callable[[str], bool]) -> float:
    return sum(map(test, items)) / len(items) if items else 0.0


@dataclass(frozen=True)
class Rule:
    name: str
    measure: Callable[[Doc], float]
    bound: Literal["min", "max"]
    reasoning: float | None  # the threshold in each preset (None: not applied)
    prose: float | None
    repetition: bool = False  # an n-gram repetition rule: needs `repetition_min_words` words


def _ngram_rules() -> list[Rule]:
    top = {2: 0.20, 3: 0.18, 4: 0.16}  # Gopher's bounds (prose); off for reasoning
    dup = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    rules = [
        Rule(f"top_{n}gram_char_share", lambda d, n=n: top_ngram_share(d.words, n), "max", None, v, True)
        for n, v in top.items()
    ]
    rules += [
        Rule(
            f"duplicate_{n}gram_char_share",
            lambda d, n=n: duplicate_ngram_share(d.words, n),
            "max",
            0.6 if n == 10 else None,
            v,
            True,
        )
        for n, v in dup.items()
    ]
    return rules


RULES: list[Rule] = [
    Rule("min_words", lambda d: len(d.words), "min", 1, 50),
    Rule("max_words", lambda d: len(d.words), "max", 100_000, 100_000),
    Rule("duplicate_line_share", lambda d: duplicate_share(d.lines, False), "max", 0.60, 0.30),
    Rule("duplicate_paragraph_share", lambda d: duplicate_share(d.paragraphs, False), "max", 0.30, 0.30),
    Rule("duplicate_line_char_share", lambda d: duplicate_share(d.lines, True), "max", 0.45, 0.20),
    Rule("duplicate_paragraph_char_share", lambda d: duplicate_share(d.paragraphs, True), "max", 0.20, 0.20),
    *_ngram_rules(),
    Rule(
        "symbol_word_ratio",
        lambda d: (d.text.count("#") + d.text.count("...") + d.text.count("…")) / max(1, len(d.words)),
        "max",
        0.10,
        0.10,
    ),
    Rule("bullet_line_share", lambda d: share(d.lines, lambda line: line.startswith(BULLETS)), "max", 0.90, 0.90),
    Rule("ellipsis_line_share", lambda d: share(d.lines, lambda line: line.endswith(("...", "…"))), "max", 0.30, 0.30),
    Rule("min_mean_word_length", lambda d: sum(map(len, d.words)) / max(1, len(d.words)), "min", None, 3),
    Rule("max_mean_word_length", lambda d: sum(map(len, d.words)) / max(1, len(d.words)), "max", None, 10),
    Rule("alphabetic_word_share", lambda d: share(d.words, lambda w: any(c.isalpha() for c in w)), "min", None, 0.80),
    Rule("stop_words", lambda d: sum(w.lower().strip(".,;:!?") in STOP_WORDS for w in d.words), "min", None, 2),
    Rule(
        "punctuated_line_share",
        lambda d: share(d.lines, lambda line: line.endswith(TERMINAL_PUNCTUATION)),
        "min",
        None,
        0.12,
    ),
    Rule("short_line_share", lambda d: share(d.lines, lambda line: len(line) <= 30), "max", None, 0.67),
]
RULE_NAMES = tuple(rule.name for rule in RULES)


def thresholds(preset: Preset, overrides: dict[str, float | None] | None = None) -> dict[str, float]:
    """The bound of every applied rule: the preset's, then `overrides` (None switches a rule off)."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(RULE_NAMES))
    if unknown:
        raise ValueError(f"unknown quality rule(s) {', '.join(unknown)}; the rules are: {', '.join(RULE_NAMES)}")
    chosen = {rule.name: getattr(rule, preset) for rule in RULES}
    chosen.update(overrides)
    return {name: value for name, value in chosen.items() if value is not None}


@dataclass(frozen=True)
class Broken:
    rule: str
    value: float
    bound: float
    kind: Literal["min", "max"]

    def __str__(self) -> str:
        return f"{self.rule} {self.value:.3g} {'<' if self.kind == 'min' else '>'} {self.bound:g}"


def broken_rules(text: str, bounds: dict[str, float], repetition_min_words: int = 30) -> list[Broken]:
    """Every rule the text breaks, in rule order, with the measured value and the bound."""
    doc = Doc.of(text)
    broken = []
    for rule in RULES:
        if rule.name not in bounds or (rule.repetition and len(doc.words) < repetition_min_words):
            continue
        value, bound = rule.measure(doc), bounds[rule.name]
        if (value < bound) if rule.bound == "min" else (value > bound):
            broken.append(Broken(rule.name, value, bound, rule.bound))
    return broken


class QualityFilter(RowStage):
    name = "quality"

    def __init__(
        self,
        preset: Preset = "reasoning",
        overrides: dict[str, float | None] | None = None,
        field: TextField = "all",
        repetition_min_words: int = 30,
    ):
        self.bounds = thresholds(preset, overrides)
        self.field, self.repetition_min_words = field, repetition_min_words
        self.counts: Counter[str] = Counter()  # rows breaking each rule (a row can break several)

    def judge(self, record: Record) -> None:
        broken = broken_rules(record_text(record, self.field), self.bounds, self.repetition_min_words)
        self.counts.update(b.rule for b in broken)
        if not broken:
            record.add_verdict(self.name, True)
            return
        detail = "; ".join(map(str, broken))
        record.add_verdict(self.name, False, f"quality_{broken[0].rule}", float(len(broken)), detail)
