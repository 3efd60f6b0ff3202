"""Cheap diversity signals of a round's training data: lost diversity is the first sign of collapse."""

from __future__ import annotations

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


def diversity(train_rows: list[Record]) -> dict[str, float]:
    synthetic = [r for r in train_rows if r.source == "synthetic"]
    questions = [r.question for r in synthetic]
    texts = [" ".join(part for part in (r.question, r.reasoning, r.answer) if part) for r in synthetic]
    return {
        "distinct_2_questions": round(distinct_n(questions, 2), 4),
        "distinct_3_texts": round(distinct_n(texts, 3), 4),
        "compression_ratio": round(compression_ratio(texts), 4),
        "unique_question_share": round(len(set(questions)) / len(questions), 4) if questions else 0.0,
        "synthetic_share_of_train": round(len(synthetic) / len(train_rows), 4) if train_rows else 0.0,
    }
