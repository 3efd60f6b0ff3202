import random

import numpy as np
import pytest

from synthloop.curation.dedup import ExactDedup
from synthloop.curation.near_dedup import MinHashIndex, NearDedup, lsh_shape, shingle_hashes
from synthloop.curation.text import ngrams, words
from synthloop.records import Record, to_table


def row(text: str) -> Record:
    return Record(kind="textbook", skill="s", question=text, source="synthetic", round=1)


def edited(rng: random.Random, tokens: list[str], edits: int, vocab: list[str]) -> list[str]:
    out = list(tokens)
    for _ in range(edits):
        out[rng.randrange(len(out))] = rng.choice(vocab)
    return out


def jaccard(a: str, b: str, n: int = 3) -> float:
    x, y = set(ngrams(words(a), n)), set(ngrams(words(b), n))
    return len(x & y) / len(x | y) if x | y else 0.0


def test_shingle_hashes_match_the_string_ngrams():
    texts = ["The cat sat on the mat.", "", "one", "one two", "a b c d", "A  B, c d"]
    hashes, offsets = shingle_hashes(texts, 3)
    sizes = [len(set(hashes[offsets[i] : offsets[i + 1]].tolist())) for i in range(len(texts))]
    assert sizes == [len(set(ngrams(words(t), 3))) for t in texts]
    same = hashes[offsets[4] : offsets[5]].tolist() == hashes[offsets[5] : offsets[6]].tolist()
    assert same, "case, spacing and punctuation do not change the shingles"


def test_lsh_shape_catches_pairs_at_the_threshold():
    bands, rows = lsh_shape(0.8, 128)
    assert bands * rows <= 128 and 1 - (1 - 0.8**rows) ** bands >= 0.995


def test_minhash_index_agrees_with_brute_force_greedy_dedup():
    rng = random.Random(1)
    vocab = [f"w{i}" for i in range(300)]
    docs = []
    for _ in range(150):
        base = [rng.choice(vocab) for _ in range(40)]
        docs.append(" ".join(base))
        docs += [" ".join(edited(rng, base, rng.randint(0, 6), vocab)) for _ in range(rng.randint(0, 3))]
    docs += ["", "one", "one two", ""]
    rng.shuffle(docs)
    index = MinHashIndex(threshold=0.8)
    matches = index.add(docs[:200]) + index.add(docs[200:])  # two batches: the second sees the first's kept docs
    kept: list[int] = []
    for i, doc in enumerate(docs):
        best = max(((jaccard(doc, docs[k]), k) for k in kept), default=(0.0, -1))
        if best[0] >= 0.8 and words(doc):
            assert matches[i].representative != i and jaccard(doc, docs[matches[i].representative]) >= 0.8
            assert matches[i].similarity == pytest.approx(best[0])
        else:
            kept.append(i)
            assert matches[i].representative == i
    assert 0 < len(docs) - len(kept) < len(docs) / 2


def test_near_dedup_records_the_kept_row_and_its_cluster():
    base = "the quick brown fox jumps over the lazy dog near the river bank on a sunny day in june"
    rows = [row(base), row(base.replace("june", "july")), row("something else entirely and unrelated"), row("")]
    out = list(NearDedup(threshold=0.7).run(rows))
    assert [r.kept for r in out] == [True, False, True, True]
    assert out[1].reject_reason == "near_duplicate" and out[1].parent_ids == [out[0].id]
    assert out[1].verdicts[-1].score == pytest.approx(jaccard(base, rows[1].question))
    assert out[0].verdicts[-1].detail is None, "a stream's kept row cannot count later duplicates"


def test_near_dedup_counts_rows_kept_in_earlier_rounds():
    text = "a long enough sentence about fractions and how to add them with a common denominator"
    stage = NearDedup(threshold=0.8, earlier=[("old-id", text)])
    (out,) = stage.run([row(text + ".")])
    assert out.reject_reason == "near_duplicate" and out.parent_ids == ["old-id"]


def test_dedup_survives_bad_input():
    huge = "word " * 2_000_000  # a 10 MB row
    garbled = b"caf\xc3 \xff\xfe broken".decode("utf-8", errors="surrogateescape")
    rows = [row(""), row(huge), row(garbled), row(huge), row("\x00\x01")]
    out = list(NearDedup().run(rows))
    assert [r.reject_reason for r in out] == [None, None, None, "near_duplicate", None]
    assert all(r.verdicts for r in out), "every row gets a verdict"
    assert "\ufffd" in out[2].question and to_table(out).num_rows == 5, "undecodable bytes still reach Parquet"
    assert [r.kept for r in ExactDedup().run([row(""), row("")])] == [True, False]


def test_band_keys_do_not_collide_across_bands():
    index = MinHashIndex()
    hashes, offsets = shingle_hashes(["some text to hash for the test"], 3)
    keys = index.band_keys(hashes, offsets)
    assert len(np.unique(keys)) == index.bands
