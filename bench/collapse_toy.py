"""The collapse lab's settings with known answers, at the papers' sizes, against the published figures:

- gaussian (Shumailov et al. 2024): 100 samples per generation, 50 seeds, 1000 generations; under replace
  the fitted sigma falls below 0.1, under accumulate it stays above 0.9;
- linear (Gerstgrasser et al. 2024): d=10, T=100, sigma^2=1, 2000 seeds; under replace the 50th fit's error
  is within 15% of 50 sigma^2 d/(T-d-1), under accumulate the error stays under pi^2/6 of sigma^2 d/(T-d-1).

    python bench/collapse_toy.py
"""

from __future__ import annotations

import time

import numpy as np
from common import emit

from synthloop.collapse.strategies import parse_strategy
from synthloop.collapse.toy import gaussian, linear, linear_accumulate_bound, linear_error_per_fit

STRATEGIES = ("replace", "accumulate", "mix:0.1", "accumulate-subsample")


def main() -> None:
    start = time.perf_counter()
    sigma = {name: gaussian(parse_strategy(name), generations=1000, seeds=50)[-1] for name in STRATEGIES}
    errors = {name: linear(parse_strategy(name), generations=49, seeds=2000).mean(axis=1) for name in STRATEGIES}
    per_fit, bound = linear_error_per_fit(), linear_accumulate_bound()
    emit(
        {
            "bench": "collapse_toy",
            "gaussian_sigma_at_generation_1000": {
                name: {"median": round(float(np.median(s)), 4), "mean": round(float(s.mean()), 4)}
                for name, s in sigma.items()
            },
            "linear_error_of_the_50th_fit": {name: round(float(e[-1]), 4) for name, e in errors.items()},
            "linear_max_error_over_50_fits": {name: round(float(e.max()), 4) for name, e in errors.items()},
            "linear_theory": {"replace_50th_fit": round(50 * per_fit, 4), "accumulate_bound": round(bound, 4)},
            "replace_50th_over_theory": round(float(errors["replace"][-1] / (50 * per_fit)), 4),
            "seconds": round(time.perf_counter() - start, 2),
        }
    )


if __name__ == "__main__":
    main()
