"""Near-duplicate removal: recall and precision on planted near-duplicates of known Jaccard, and
end-to-end throughput (text in, clusters out) per CPU core, for synthloop's MinHash-LSH stage and, in
the same run, datasketch and rensa used directly (each in its usual way: LSH candidates confirmed by the
signature's estimated Jaccard).

The corpus: ~100-word documents drawn from a Zipf-distributed vocabulary (so common words recur, as in
text), and for a quarter of them a near-duplicate made by random word substitutions, insertions and
deletions. Each planted pair's true Jaccard (word 3-shingles) is measured, not assumed.

Recall: planted pairs with true Jaccard >= 0.8 whose two documents end in the same cluster.
Precision: rejected documents whose true Jaccard with the document that absorbed them is >= 0.8.
Run with one thread (RAYON_NUM_THREADS=1) so documents/s is per core; CPU seconds are reported too.

    python bench/dedup.py [--docs 40000]"""

from __future__ import annotations

import argparse
import os
import random
import resource
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # before rensa loads: figures are per core

import numpy as np
from common import emit

from synthloop.curation.near_dedup import MinHashIndex
from synthloop.curation.text import ngrams, words

THRESHOLD, NUM_PERM, NGRAM = 0.8, 128, 3


def corpus(n_docs: int, seed: int = 0) -> tuple[list[str], list[tuple[int, int, float]]]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(30_000)])
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05  # Zipf-like: a few words are very common
    weights /= weights.sum()
    n_base = int(n_docs * 0.8)
    lengths = rng.integers(80, 121, n_base)
    docs = [" ".join(vocab[rng.choice(len(vocab), size=k, p=weights)]) for k in lengths]
    planted: list[tuple[int, int, float]] = []
    edit_rng = random.Random(seed)
    for original in edit_rng.sample(range(n_base), n_docs - n_base):
        tokens = docs[original].split()
        for _ in range(edit_rng.randint(0, 12)):
            op, at = edit_rng.random(), edit_rng.randrange(len(tokens))
            word = str(vocab[edit_rng.randrange(len(vocab))])
            if op < 0.6:
                tokens[at] = word
            elif op < 0.8:
                tokens.insert(at, word)
            elif len(tokens) > 10:
                del tokens[at]
        docs.append(" ".join(tokens))
        planted.append((original, len(docs) - 1, true_jaccard(docs[original], docs[-1])))
    order = list(range(len(docs)))
    edit_rng.shuffle(order)  # duplicates arrive anywhere, not only after their originals
    position = {old: new for new, old in enumerate(order)}
    shuffled = [docs[i] for i in order]
    return shuffled, [(position[a], position[b], j) for a, b, j in planted]


def shingles(text: str) -> list[str]:
    return ngrams(words(text), NGRAM)


def true_jaccard(a: str, b: str) -> float:
    x, y = set(shingles(a)), set(shingles(b))
    return len(x & y) / len(x | y)


def run_synthloop(docs: list[str]) -> list[int]:
    return [m.representative for m in MinHashIndex(THRESHOLD, NGRAM, NUM_PERM).add(docs)]


def run_datasketch(docs: list[str]) -> list[int]:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    signatures = MinHash.bulk([[s.encode() for s in shingles(d)] for d in docs], num_perm=NUM_PERM)
    return greedy_with_lsh(signatures, lsh.query, lsh.insert)


def run_rensa(docs: list[str]) -> list[int]:
    import rensa

    bands = 16  # rensa needs num_perm divisible by the band count
    lsh = rensa.RMinHashLSH(THRESHOLD, NUM_PERM, bands)
    signatures = rensa.RMinHash.from_token_sets([shingles(d) for d in docs], NUM_PERM, 42)
    return greedy_with_lsh(signatures, lsh.query, lsh.insert)


def greedy_with_lsh(signatures: list, query, insert) -> list[int]:
    """The usual way to dedup with an LSH library: a document whose candidates include one whose
    estimated Jaccard reaches the threshold joins that one's cluster; otherwise it is kept and inserted."""
    out: list[int] = []
    for i, signature in enumerate(signatures):
        confirmed = [k for k in query(signature) if signatures[k].jaccard(signature) >= THRESHOLD]
        if confirmed:
            out.append(out[min(confirmed)])
        else:
            insert(i, signature)
            out.append(i)
    return out


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(name: str, dedup, docs: list[str], planted: list[tuple[int, int, float]]) -> dict:
    wall, cpu = time.perf_counter(), cpu_seconds()
    representative = dedup(docs)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    positives = [(a, b) for a, b, j in planted if j >= THRESHOLD]
    caught = sum(representative[a] == representative[b] for a, b in positives)
    rejected = [i for i, r in enumerate(representative) if r != i]
    correct = sum(true_jaccard(docs[i], docs[representative[i]]) >= THRESHOLD for i in rejected)
    by_bin = {}
    for low in (0.5, 0.6, 0.7, 0.8, 0.9):
        pairs = [(a, b) for a, b, j in planted if low <= j < low + 0.1 or (low == 0.9 and j == 1.0)]
        if pairs:
            by_bin[f"{low:.1f}-{low + 0.1:.1f}"] = round(
                sum(representative[a] == representative[b] for a, b in pairs) / len(pairs), 3
            )
    return {
        "name": name,
        "recall_at_0.8": round(caught / len(positives), 4),
        "precision": round(correct / len(rejected), 4) if rejected else None,
        "rejected": len(rejected),
        "same_cluster_rate_by_true_jaccard": by_bin,
        "docs_per_s": round(len(docs) / wall),
        "docs_per_cpu_s": round(len(docs) / cpu),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=40_000)
    args = parser.parse_args()
    docs, planted = corpus(args.docs)
    words_per_doc = sum(len(d.split()) for d in docs) / len(docs)
    results = [
        measure(name, fn, docs, planted)
        for name, fn in [("synthloop", run_synthloop), ("datasketch", run_datasketch), ("rensa", run_rensa)]
    ]
    ours = results[0]
    emit(
        {
            "bench": "dedup",
            "docs": len(docs),
            "words_per_doc": round(words_per_doc, 1),
            "planted_pairs": len(planted),
            "planted_at_or_above_0.8": sum(j >= THRESHOLD for _, _, j in planted),
            "threshold": THRESHOLD,
            "num_perm": NUM_PERM,
            "results": results,
            "speedup_vs_datasketch": round(ours["docs_per_cpu_s"] / results[1]["docs_per_cpu_s"], 2),
            "speedup_vs_rensa_direct": round(ours["docs_per_cpu_s"] / results[2]["docs_per_cpu_s"], 2),
        }
    )


if __name__ == "__main__":
    main()
