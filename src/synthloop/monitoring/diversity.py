"""Cheap diversity signals of a round's training data: lost diversity is the first sign of collapse."""

from __future__ import annotations

from synthloop.records import Record


def distinct_n(texts: list[str], n: int) -> float:
    """Unique word n-grams over all n-grams (1.0: nothing repeats)."""
    grams = [tuple(words[i : i + n]) for text in texts for words in [text.split()] for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def diversity(train_rows: list[Record]) -> dict[str, float]:
    synthetic = [r for r in train_rows if r.source == "synthetic"]
    questions = [r.question for r in synthetic]
    return {
        "distinct_2_questions": round(distinct_n(questions, 2), 4),
        "unique_question_share": round(len(set(questions)) / len(questions), 4) if questions else 0.0,
        "synthetic_share_of_train": round(len(synthetic) / len(train_rows), 4) if train_rows else 0.0,
    }
