"""Cheap diversity signals of a round's training data: lost diversity is the first sign of collapse."""

from __future__ import annotations

import random
import zlib

from synthloop.records import Record


def distinct_n(texts: list[str], n: int) -> float:
    """Unique word n-grams over all n-grams (1.0: nothing repeats)."""
    grams = [tuple(words[i : i + n]) for text in texts for words in [text.split()] for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def compression_ratio(texts: list[str]) -> float:
    """Raw bytes over zlib-compressed bytes of all texts together: 1 to 2 for varied prose, rising as rows
    repeat one another (a collapsing generator's output compresses well)."""
    raw = "\n".join(texts).encode()
    return len(raw) / len(zlib.compress(raw, 9)) if raw else 0.0


SAMPLE = 1000  # rows the figures are computed on: distinct-n falls with sample size, so rounds compare at one size


def round_sample(train_rows: list[Record], number: int | None, seed: int = 0) -> list[Record]:
    """This round's own synthetic rows (not those accumulated from earlier rounds), a seeded sample of at
    most SAMPLE: the same figure for the same data whatever the strategy and the round's size."""
    own = sorted(
        (r for r in train_rows if r.source == "synthetic" and (number is None or r.round == number)), key=lambda r: r.id
    )
    random.Random(seed).shuffle(own)
    return own[:SAMPLE]


def row_text(row: Record) -> str:
    return " ".join(part for part in (row.question, row.reasoning, row.answer) if part)


def completion_text(row: Record) -> str:
    """What a model writes for the row: its reasoning and answer."""
    return " ".join(part for part in (row.reasoning, row.answer) if part)


def diversity(train_rows: list[Record], number: int | None = None, seed: int = 0) -> dict[str, float]:
    """Diversity of round `number`'s synthetic rows (a sample; all rounds' when None), and the synthetic
    share of the whole training mix."""
    sample = round_sample(train_rows, number, seed)
    synthetic = [r for r in train_rows if r.source == "synthetic"]
    questions = [r.question for r in sample]
    texts = [row_text(r) for r in sample]
    return {
        "distinct_2_questions": round(distinct_n(questions, 2), 4),
        "distinct_3_texts": round(distinct_n(texts, 3), 4),
        "compression_ratio": round(compression_ratio(texts), 4),
        "unique_question_share": round(len(set(questions)) / len(questions), 4) if questions else 0.0,
        "synthetic_share_of_train": round(len(synthetic) / len(train_rows), 4) if train_rows else 0.0,
    }
