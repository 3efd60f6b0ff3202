"""Near-duplicate removal with MinHash-LSH: signatures from `rensa`, candidates from LSH bands, and
every candidate confirmed by the exact Jaccard of the two shingle sets, so a row is only ever rejected
for a document it really overlaps. Greedy in arrival order: a document is a duplicate when it matches
a document already kept (earlier rounds included); otherwise it is kept and indexed."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import numpy as np
import rensa

from synthloop.curation.dedup import Match, record_matches
from synthloop.curation.text import TextField, record_text, words
from synthloop.records import Record

_FNV = np.uint64(0x100000001B3)
_MIX = np.uint64(0x9E3779B97F4A7C15)


def lsh_shape(threshold: float, num_perm: int, recall_at_threshold: float = 0.995) -> tuple[int, int]:
    """(bands, rows per band): the widest bands whose chance of making a pair at exactly `threshold` a
    candidate is at least `recall_at_threshold`. Wider bands mean fewer false candidates to check."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= recall_at_threshold:
            return bands, rows
    return num_perm, 1


def shingle_hashes(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every text's word n-gram hashes, flat, and the row offsets into them (len(texts) + 1).
    Words are hashed once by rensa; n-grams combine their words' hashes with numpy. A text shorter
    than n is one gram of all its words; an empty text has none."""
    hashed = rensa.RMinHash.hash_token_sets([words(t) for t in texts])
    lengths = np.fromiter(map(len, hashed), dtype=np.int64, count=len(hashed))
    flat = np.fromiter(itertools.chain.from_iterable(hashed), dtype=np.uint64, count=int(lengths.sum()))
    grams = np.where(lengths >= n, lengths - n + 1, np.minimum(lengths, 1))
    offsets = np.concatenate(([0], np.cumsum(grams)))
    out = np.empty(int(offsets[-1]), dtype=np.uint64)
    if len(flat) >= n:
        combined = np.zeros(len(flat) - n + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(n):
                combined = (combined ^ flat[j : len(flat) - n + 1 + j]) * _FNV + _MIX
        # a gram is valid where it starts inside a long-enough text and ends inside the same text
        starts = np.concatenate(([0], np.cumsum(lengths)))[:-1]
        long_docs, long_grams = lengths >= n, grams[lengths >= n]
        within = _ranges(long_grams)  # each gram's index inside its text
        first_word = np.repeat(starts[long_docs], long_grams) + within
        out[np.repeat(offsets[:-1][long_docs], long_grams) + within] = combined[first_word]
    for i in np.flatnonzero((lengths < n) & (lengths > 0)):  # short texts: rare, one gram each
        value = np.uint64(0)
        with np.errstate(over="ignore"):
            for word in hashed[i]:
                value = (value ^ np.uint64(word)) * _FNV + _MIX
        out[offsets[i]] = value
    return out, offsets


def _ranges(counts: np.ndarray) -> np.ndarray:
    """[0..c0-1, 0..c1-1, ...] without a Python loop."""
    total = int(counts.sum())
    ends = np.cumsum(counts)
    return np.arange(total) - np.repeat(ends - counts, counts)


class MinHashIndex:
    """Documents are added in batches; each is matched against every kept document before it."""

    def __init__(self, threshold: float = 0.8, ngram: int = 3, num_perm: int = 128, seed: int = 0):
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold, self.ngram, self.seed = threshold, ngram, seed
        self.bands, self.rows = lsh_shape(threshold, num_perm)
        self.num_perm = num_perm
        self.size = 0  # documents seen so far; indices continue across calls to add
        self.kept_keys = np.zeros(0, dtype=np.uint64)  # band keys of kept documents, flat
        self.kept_docs = np.zeros(0, dtype=np.int64)  # the document of each key
        self.batches: list[tuple[int, np.ndarray, np.ndarray]] = []  # (first index, hashes, offsets)

    def add(self, texts: list[str]) -> list[Match]:
        """Match each text against everything kept so far (this batch included), in order."""
        base = self.size
        hashes, offsets = shingle_hashes(texts, self.ngram)
        self.batches.append((base, hashes, offsets))
        self.size += len(texts)
        empty = offsets[1:] == offsets[:-1]
        keys = self.band_keys(hashes, offsets)
        earlier = self.colliding_earlier(keys, base, empty)
        kept = np.ones(len(texts), dtype=bool)
        out = [Match(base + i, 1.0) for i in range(len(texts))]
        for doc in sorted(earlier):  # greedy, in order: only documents still kept can absorb this one
            best: Match | None = None
            mine = self.shingle_set(doc)
            for other in sorted(earlier[doc]):
                if other >= base and not kept[other - base]:
                    continue
                theirs = self.shingle_set(other)
                similarity = len(mine & theirs) / len(mine | theirs)
                if similarity >= self.threshold and (best is None or similarity > best.similarity):
                    best = Match(other, similarity)
            if best is not None:
                kept[doc - base] = False
                out[doc - base] = best
        indexed = kept & ~empty
        self.kept_keys = np.concatenate((self.kept_keys, keys[indexed].ravel()))
        self.kept_docs = np.concatenate((self.kept_docs, np.repeat(np.flatnonzero(indexed) + base, self.bands)))
        return out

    def band_keys(self, hashes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """One 64-bit key per (document, band); a band index is folded in so bands never collide."""
        rows = len(offsets) - 1
        if rows == 0:
            return np.zeros((0, self.bands), dtype=np.uint64)
        matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(hashes, offsets, self.num_perm, self.seed)
        digests = np.asarray(matrix.to_rows(), dtype=np.uint64)[:, : self.bands * self.rows]
        digests = digests.reshape(rows, self.bands, self.rows)
        keys = np.broadcast_to(np.arange(self.bands, dtype=np.uint64) + np.uint64(1), (rows, self.bands)).copy()
        with np.errstate(over="ignore"):
            for j in range(self.rows):
                keys = (keys ^ digests[:, :, j]) * _FNV + _MIX
        return keys

    def colliding_earlier(self, keys: np.ndarray, base: int, empty: np.ndarray) -> dict[int, set[int]]:
        """For each new document sharing a band key with an earlier one: those earlier documents.
        Empty texts are left out: they are never compared nor indexed."""
        live = np.flatnonzero(~empty)
        all_keys = np.concatenate((self.kept_keys, keys[live].ravel()))
        all_docs = np.concatenate((self.kept_docs, np.repeat(live + base, self.bands)))
        order = np.argsort(all_keys, kind="stable")  # stable: within a key, documents stay in order
        sorted_keys, sorted_docs = all_keys[order], all_docs[order]
        same_as_next = sorted_keys[1:] == sorted_keys[:-1]
        in_group = np.concatenate((same_as_next, [False])) | np.concatenate(([False], same_as_next))
        earlier: dict[int, set[int]] = {}
        group: list[int] = []
        for position in np.flatnonzero(in_group).tolist():
            if group and sorted_keys[position] != sorted_keys[group[-1]]:
                _link(earlier, [int(sorted_docs[p]) for p in group], base)
                group = []
            group.append(position)
        if group:
            _link(earlier, [int(sorted_docs[p]) for p in group], base)
        return earlier

    def shingle_set(self, doc: int) -> set[int]:
        for first, hashes, offsets in reversed(self.batches):
            if doc >= first:
                local = doc - first
                return set(hashes[offsets[local] : offsets[local + 1]].tolist())
        raise IndexError(doc)


def _link(earlier: dict[int, set[int]], docs: list[int], base: int) -> None:
    for i, doc in enumerate(docs):
        if doc >= base and i:
            earlier.setdefault(doc, set()).update(d for d in docs[:i] if d != doc)


class NearDedup:
    """Rejects a row as `near_duplicate` when its text's word-shingle Jaccard with a kept row is at
    least `threshold`. The kept row's id becomes the parent; the kept row's verdict says how many it
    stands for."""

    name = "near_dedup"

    def __init__(
        self,
        threshold: float = 0.8,
        ngram: int = 3,
        num_perm: int = 128,
        field: TextField = "question",
        earlier: Iterable[tuple[str, str]] = (),
    ):
        self.index = MinHashIndex(threshold, ngram, num_perm)
        self.field = field
        earlier = list(earlier)  # (id, text) of rows kept before this stage ran: earlier rounds
        self.ids = [row_id for row_id, _ in earlier]
        self.index.add([text for _, text in earlier])

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        rows = list(records)
        live = [r for r in rows if r.kept]
        self.ids += [r.id for r in live]
        matches = self.index.add([record_text(r, self.field) for r in live])
        record_matches(self.name, "near_duplicate", "Jaccard", live, matches, self.ids)
        yield from rows
