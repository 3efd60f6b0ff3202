"""Near-duplicate removal with MinHash-LSH: signatures from `rensa`, candidates from LSH bands, and
every candidate confirmed by the exact Jaccard of the two shingle sets, so a row is only ever rejected
for a document it really overlaps. Greedy in arrival order: a document is a duplicate when it matches
a document already kept (earlier rounds included); otherwise it is kept and indexed.

The index of kept documents (band keys and shingle sets) stays in memory up to `memory_mb` (32 MB); beyond
that it moves to an SQLite file on disk, so a stream of any length is deduplicated against all of it
with memory bounded by the budget and one batch."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import rensa

from synthloop.curation.base import BatchStage, batched
from synthloop.curation.dedup import Match, record_matches
from synthloop.curation.text import TextField, record_text, words
from synthloop.records import Record
from synthloop.storage.spill import Scratch

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

    def __init__(
        self,
        threshold: float = 0.8,
        ngram: int = 3,
        num_perm: int = 128,
        seed: int = 0,
        memory_mb: float = 32,
        scratch_root: Path | None = None,
    ):
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold, self.ngram, self.seed = threshold, ngram, seed
        self.bands, self.rows = lsh_shape(threshold, num_perm)
        self.num_perm = num_perm
        self.size = 0  # documents seen so far; indices continue across calls to add
        self.kept = KeptDocuments(memory_mb, scratch_root)
        self.batch: tuple[int, np.ndarray, np.ndarray] = (0, np.zeros(0, np.uint64), np.zeros(1, np.int64))

    def add(self, texts: list[str], ids: list[str] | None = None) -> list[Match]:
        """Match each text against everything kept so far (this batch included), in order. `ids` (one per
        text) are kept with the kept documents, for `id_of`."""
        base = self.size
        hashes, offsets = shingle_hashes(texts, self.ngram)
        self.batch = (base, hashes, offsets)
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
        indexed = np.flatnonzero(kept & ~empty)
        shingles = [hashes[offsets[i] : offsets[i + 1]] for i in indexed.tolist()]
        doc_ids = [ids[i] for i in indexed.tolist()] if ids is not None else [""] * len(indexed)
        self.kept.add(keys[indexed], indexed + base, shingles, doc_ids)
        return out

    def id_of(self, doc: int) -> str:
        return self.kept.id_of(doc)

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
        new_keys = keys[live].ravel()
        kept_keys, kept_docs = self.kept.matching(new_keys)
        all_keys = np.concatenate((kept_keys, new_keys))
        all_docs = np.concatenate((kept_docs, np.repeat(live + base, self.bands)))
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
        first, hashes, offsets = self.batch
        if doc >= first:
            local = doc - first
            return set(hashes[offsets[local] : offsets[local + 1]].tolist())
        return set(self.kept.shingles(doc).tolist())


class KeptDocuments:
    """The band keys, shingle sets and row ids of kept documents. The newest are held in memory; when
    they pass `memory_mb` they are moved to an SQLite file, where they are looked up by key."""

    def __init__(self, memory_mb: float, scratch_root: Path | None):
        self.budget = int(memory_mb * (1 << 20))
        self.scratch_root = scratch_root
        self.db: sqlite3.Connection | None = None
        self.keys: list[np.ndarray] = []  # per batch, flat: (kept documents x bands)
        self.docs: list[np.ndarray] = []  # the document of each key
        self.sets: dict[int, np.ndarray] = {}
        self.ids: dict[int, str] = {}
        self.bytes = 0

    def add(self, keys: np.ndarray, docs: np.ndarray, shingles: list[np.ndarray], ids: list[str]) -> None:
        bands = keys.shape[1] if keys.ndim == 2 else 0
        self.keys.append(keys.ravel())
        self.docs.append(np.repeat(docs, bands))
        for doc, hashes, row_id in zip(docs.tolist(), shingles, ids, strict=True):
            self.sets[doc], self.ids[doc] = hashes, row_id
            self.bytes += hashes.nbytes + 16 * bands + len(row_id) + DOC_OVERHEAD_BYTES
        if self.bytes > self.budget:
            self.spill()

    def matching(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(key, document) of every kept document with one of `keys`."""
        held_keys = np.concatenate([np.zeros(0, np.uint64), *self.keys])
        held_docs = np.concatenate([np.zeros(0, np.int64), *self.docs])
        self.keys, self.docs = [held_keys], [held_docs]  # concatenated once per batch, not per lookup
        if self.db is None:
            return held_keys, held_docs
        wanted = np.unique(keys).view(np.int64).tolist()
        found: list[tuple[int, int]] = []
        for start in range(0, len(wanted), SQL_VARIABLES):
            chunk = wanted[start : start + SQL_VARIABLES]
            chunk += chunk[-1:] * (SQL_VARIABLES - len(chunk))  # one statement text (one prepared statement)
            marks = ",".join("?" * len(chunk))
            found += self.db.execute(f"SELECT key, doc FROM bands WHERE key IN ({marks})", chunk).fetchall()
        disk_keys = np.array([k for k, _ in found], dtype=np.int64).view(np.uint64)
        disk_docs = np.array([d for _, d in found], dtype=np.int64)
        return np.concatenate((disk_keys, held_keys)), np.concatenate((disk_docs, held_docs))

    def shingles(self, doc: int) -> np.ndarray:
        if doc in self.sets:
            return self.sets[doc]
        assert self.db is not None
        (blob,) = self.db.execute("SELECT shingles FROM docs WHERE doc = ?", (doc,)).fetchone()
        return np.frombuffer(blob, dtype=np.uint64)

    def id_of(self, doc: int) -> str:
        if doc in self.ids:
            return self.ids[doc]
        assert self.db is not None
        return self.db.execute("SELECT id FROM docs WHERE doc = ?", (doc,)).fetchone()[0]

    def spill(self) -> None:
        if self.db is None:
            self.scratch = Scratch(self.scratch_root)
            self.db = self.scratch.database("near_dedup")
            self.db.execute("CREATE TABLE bands (key INTEGER, doc INTEGER, PRIMARY KEY (key, doc)) WITHOUT ROWID")
            self.db.execute("CREATE TABLE docs (doc INTEGER PRIMARY KEY, id TEXT, shingles BLOB)")
        keys = np.concatenate([np.zeros(0, np.uint64), *self.keys]).view(np.int64)
        docs = np.concatenate([np.zeros(0, np.int64), *self.docs])
        self.db.execute("BEGIN")
        for start in range(0, len(keys), SPILL_ROWS):  # a slice at a time: never every key as Python ints
            part = zip(
                keys[start : start + SPILL_ROWS].tolist(), docs[start : start + SPILL_ROWS].tolist(), strict=True
            )
            self.db.executemany("INSERT OR IGNORE INTO bands VALUES (?, ?)", part)
        rows = ((doc, self.ids[doc], hashes.tobytes()) for doc, hashes in self.sets.items())
        self.db.executemany("INSERT INTO docs VALUES (?, ?, ?)", rows)
        self.db.execute("COMMIT")
        self.keys, self.docs, self.sets, self.ids, self.bytes = [], [], {}, {}, 0


SQL_VARIABLES = 999  # parameters per SQLite statement (the smallest limit any SQLite build has)
SPILL_ROWS = 65_536  # band keys moved to SQLite per statement
DOC_OVERHEAD_BYTES = 400  # a kept document's Python objects besides its arrays (dict entries, array headers, id)


def _link(earlier: dict[int, set[int]], docs: list[int], base: int) -> None:
    for i, doc in enumerate(docs):
        if doc >= base and i:
            earlier.setdefault(doc, set()).update(d for d in docs[:i] if d != doc)


class NearDedup(BatchStage):
    """Rejects a row as `near_duplicate` when its text's word-shingle Jaccard with a kept row is at
    least `threshold`. The kept row's id becomes the parent (a stream is decided a batch at a time, so
    the kept row cannot know how many later rows it stands for: count its children instead)."""

    name = "near_dedup"
    batch_rows = 4096

    def __init__(
        self,
        threshold: float = 0.8,
        ngram: int = 3,
        num_perm: int = 128,
        field: TextField = "question",
        earlier: Iterable[tuple[str, str]] = (),
        memory_mb: float = 32,
        scratch_root: Path | None = None,
    ):
        self.index = MinHashIndex(threshold, ngram, num_perm, memory_mb=memory_mb, scratch_root=scratch_root)
        self.field = field
        for batch in batched(earlier, self.batch_rows):  # (id, text) of rows kept in earlier rounds
            self.index.add([text for _, text in batch], [row_id for row_id, _ in batch])

    def judge_batch(self, rows: list[Record]) -> None:
        first = self.index.size
        matches = self.index.add([record_text(r, self.field) for r in rows], [r.id for r in rows])
        record_matches(self.name, "near_duplicate", "Jaccard", rows, matches, first, self.index.id_of, False)
