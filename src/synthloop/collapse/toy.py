"""Two collapse settings with known answers, vectorised over seeds (numpy only, seconds to run).

- `gaussian`: fit a normal distribution to `n` samples, sample `n` from the fit, refit, and so on
  (Shumailov et al., Nature 2024). Under `replace` the fitted sigma drifts to 0; under `accumulate` it stays
  near the real 1.
- `linear`: ordinary least squares on a fixed design of T rows and d features, each generation labelled by
  the previous generation's fit plus noise (Gerstgrasser et al., arXiv 2404.01413). Under `replace` the
  error ||w - w*||^2 grows as sigma^2 d / (T - d - 1) times the number of fits; under `accumulate` it stays
  under pi^2 / 6 times that.

Each returns the metric per generation and seed: row 0 is the fit on real data alone."""

from __future__ import annotations

import math

import numpy as np

from synthloop.collapse.strategies import Strategy


def gaussian(strategy: Strategy, generations: int, seeds: int, n: int = 100, seed: int = 0) -> np.ndarray:
    """The fitted sigma, shape (generations + 1, seeds). Real data is N(0, 1)."""
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((seeds, n))
    if strategy.kind == "accumulate-subsample":  # draws from every sample so far
        pool = np.empty((seeds, n * (generations + 1)))
        pool[:, :n] = real
    total, total_sq, count = real.sum(1), (real**2).sum(1), n  # accumulate fits on running sums
    mu, sigma = real.mean(1), real.std(1, ddof=1)
    sigmas = [sigma]
    for _ in range(generations):
        synthetic = mu[:, None] + sigma[:, None] * rng.standard_normal((seeds, n))
        if strategy.kind == "replace":
            data = synthetic
        elif strategy.kind == "mix":
            fresh = round(strategy.fresh_real * n)
            data = np.concatenate([rng.standard_normal((seeds, fresh)), synthetic[:, : n - fresh]], axis=1)
        elif strategy.kind == "accumulate":
            total, total_sq, count = total + synthetic.sum(1), total_sq + (synthetic**2).sum(1), count + n
            mu = total / count
            sigma = np.sqrt(np.maximum(total_sq - count * mu**2, 0.0) / (count - 1))
            sigmas.append(sigma)
            continue
        else:  # accumulate-subsample: a fixed-size sample of everything so far
            filled = n * len(sigmas)
            pool[:, filled : filled + n] = synthetic
            picks = rng.integers(0, filled + n, size=(seeds, n))
            data = np.take_along_axis(pool, picks, axis=1)
        mu, sigma = data.mean(1), data.std(1, ddof=1)
        sigmas.append(sigma)
    return np.stack(sigmas)


def linear(
    strategy: Strategy, generations: int, seeds: int, d: int = 10, rows: int = 100, noise: float = 1.0, seed: int = 0
) -> np.ndarray:
    """||w_g - w*||^2, shape (generations + 1, seeds). The design X (rows x d, standard normal) is fixed per
    seed; each generation's labels are X w + noise, w the previous fit (w* for real labels)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((seeds, rows, d))
    truth = rng.standard_normal((seeds, d))
    pinv = np.linalg.pinv(x)  # (seeds, d, rows): least squares on the fixed design

    def labels(w: np.ndarray) -> np.ndarray:
        return np.einsum("srd,sd->sr", x, w) + noise * rng.standard_normal((seeds, rows))

    def fit(y: np.ndarray) -> np.ndarray:
        return np.einsum("sdr,sr->sd", pinv, y)

    real = labels(truth)
    if strategy.kind in ("accumulate", "accumulate-subsample"):  # every generation's labels
        pool = np.empty((seeds, rows, generations + 1))
        pool[:, :, 0] = real
    w = fit(real)
    errors = [((w - truth) ** 2).sum(1)]
    for _ in range(generations):
        synthetic = labels(w)
        if strategy.kind == "replace":
            w = fit(synthetic)
        elif strategy.kind == "accumulate":  # on one design, least squares on all sets = on their mean
            pool[:, :, len(errors)] = synthetic
            w = fit(pool[:, :, : len(errors) + 1].mean(axis=2))
        elif strategy.kind == "mix":
            fresh = rng.random((seeds, rows)) < strategy.fresh_real
            w = fit(np.where(fresh, labels(truth), synthetic))
        else:  # accumulate-subsample: `rows` (row, generation) pairs drawn from the pool, fitted alone
            pool[:, :, len(errors)] = synthetic
            which_row = rng.integers(0, rows, size=(seeds, rows))
            which_set = rng.integers(0, len(errors) + 1, size=(seeds, rows))
            seed_index = np.arange(seeds)[:, None]
            xs, ys = x[seed_index, which_row], pool[seed_index, which_row, which_set]
            w = np.einsum("sdr,sr->sd", np.linalg.pinv(xs), ys)
        errors.append(((w - truth) ** 2).sum(1))
    return np.stack(errors)


def linear_error_per_fit(d: int = 10, rows: int = 100, noise: float = 1.0) -> float:
    """E||w - w*||^2 of one least-squares fit on a standard normal design: sigma^2 d / (T - d - 1)."""
    return noise**2 * d / (rows - d - 1)


def linear_accumulate_bound(d: int = 10, rows: int = 100, noise: float = 1.0) -> float:
    return math.pi**2 / 6 * linear_error_per_fit(d, rows, noise)
