"""Drift away from the real data, measured on golden rows held out of training: the student's loss on
their reference completions, and tail coverage, the share of the golden set's rare word pairs that the
student still writes when it answers those rows' questions (the tails go first when a model feeds on
its own output, Shumailov et al. 2024)."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence

RARE_AT_MOST = 2  # a word pair in at most this many golden rows is rare


def word_pairs(text: str) -> set[tuple[str, str]]:
    words = text.lower().split()
    return set(itertools.pairwise(words))


def tail_coverage(references: Sequence[str], answers: Sequence[str], golden_texts: Sequence[str]) -> float | None:
    """Of the rare word pairs (rare across `golden_texts`) in each reference, the share that the
    student's answer to the same question contains; None where the references have no rare pair."""
    frequency = Counter(pair for text in golden_texts for pair in word_pairs(text))
    wanted = found = 0
    for reference, answer in zip(references, answers, strict=True):
        rare = {pair for pair in word_pairs(reference) if frequency[pair] <= RARE_AT_MOST}
        wanted += len(rare)
        found += len(rare & word_pairs(answer))
    return round(found / wanted, 4) if wanted else None
