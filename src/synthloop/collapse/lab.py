"""`synthloop collapse`: run an experiment under several strategies over generations and seeds, and write
its metrics per generation and strategy (mean and spread) as `results.csv` and `results.md`, and as
`results.png` where matplotlib is installed (`pip install 'synthloop[lab]'`)."""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthloop.collapse.strategies import Strategy, StrategyError, parse_strategy
from synthloop.collapse.toy import gaussian, linear, linear_accumulate_bound, linear_error_per_fit
from synthloop.storage.atomic import atomic_write, write_text

Curves = dict[str, np.ndarray]  # strategy name -> (generations + 1, seeds)


@dataclass(frozen=True)
class ExperimentSpec:
    run: Callable[..., dict[str, np.ndarray]]  # (strategy, generations, seeds, **options) -> metric -> array
    metrics: dict[str, str]  # metric -> what it is
    generations: int  # the defaults: the settings of the papers (gaussian, linear) or a few minutes here
    seeds: int
    strategies: str
    verifier: bool = False  # whether `verify` strategies mean something here
    takes_corpus: bool = False


def one_metric(run: Callable[[Strategy, int, int], np.ndarray], name: str) -> Callable[..., dict[str, np.ndarray]]:
    return lambda strategy, generations, seeds: {name: run(strategy, generations, seeds)}


def lm_experiment(name: str) -> Callable[..., dict[str, np.ndarray]]:
    def run(strategy: Strategy, generations: int, seeds: int, **options: object) -> dict[str, np.ndarray]:
        from synthloop.collapse import lm_experiments  # torch and transformers: only when asked for

        return getattr(lm_experiments, name)(strategy, generations, seeds, **options)

    return run


EXPERIMENTS: dict[str, ExperimentSpec] = {
    "gaussian": ExperimentSpec(
        one_metric(gaussian, "sigma"), {"sigma": "fitted sigma (real data: 1)"}, 1000, 50, "replace,accumulate"
    ),
    "linear": ExperimentSpec(one_metric(linear, "error"), {"error": "||w - w*||^2"}, 50, 50, "replace,accumulate"),
    "skills": ExperimentSpec(
        lm_experiment("skills"),
        {
            "accuracy": "accuracy on held-out probes (greedy)",
            "answer_distinct_2": "distinct word pairs of sampled answers to the probes",
        },
        5,
        1,
        "replace,accumulate,verify+accumulate",
        verifier=True,
    ),
    "text": ExperimentSpec(
        lm_experiment("text"),
        {
            "perplexity": "perplexity on held-out human text",
            "distinct_2": "distinct word pairs of 200 samples",
            "rare_pair_mass": "share of sampled word pairs that are rare in the corpus (seen at most twice)",
        },
        5,
        1,
        "replace,accumulate,verify+accumulate",
        verifier=True,
        takes_corpus=True,
    ),
}
REPORTED = 12  # generations shown in the Markdown table (the CSV has them all)


def run_lab(
    experiment: str,
    strategies: list[str] | None,
    generations: int | None,
    seeds: int | None,
    out: Path,
    corpus: Path | None = None,
) -> list[str]:
    """Run it, write out/results.csv, out/results.md (and out/results.png), return the Markdown lines.
    None takes the experiment's default; experiment `all` runs each on its defaults into out/NAME/."""
    if experiment == "all":
        lines: list[str] = []
        for name in EXPERIMENTS:
            lines += run_lab(name, strategies, generations, seeds, out / name, corpus if name == "text" else None)
            lines.append("")
        return lines
    if experiment not in EXPERIMENTS:
        close = difflib.get_close_matches(experiment, EXPERIMENTS, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise StrategyError(f"unknown experiment {experiment!r}; {hint}this version has: {', '.join(EXPERIMENTS)}")
    spec = EXPERIMENTS[experiment]
    generations = spec.generations if generations is None else generations
    seeds = spec.seeds if seeds is None else seeds
    if generations < 1 or seeds < 1:
        raise StrategyError(f"--generations and --seeds must be at least 1, got {generations} and {seeds}")
    parsed = [parse_strategy(name) for name in (strategies or spec.strategies.split(","))]
    if not spec.verifier and any(s.verify for s in parsed):
        raise StrategyError(f"--experiment {experiment} has no verifier; verify strategies are for skills and text")
    if corpus is not None and not spec.takes_corpus:
        raise StrategyError(f"--corpus is for the text experiment, not {experiment}")
    options = {"corpus": corpus} if corpus is not None else {}
    if spec.takes_corpus and corpus is not None:
        from synthloop.collapse.lm_experiments import load_corpus

        load_corpus(corpus)  # a bad corpus fails before any model is trained
    results = [spec.run(strategy, generations, seeds, **options) for strategy in parsed]
    per_metric: dict[str, Curves] = {
        metric: {strategy.name: result[metric] for strategy, result in zip(parsed, results, strict=True)}
        for metric in spec.metrics
    }
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.csv", table_csv(per_metric))
    lines = markdown(experiment, spec.metrics, per_metric, seeds)
    write_text(out / "results.md", "\n".join(lines) + "\n")
    if not write_plot(experiment, spec.metrics, per_metric, out / "results.png"):
        lines += ["", "(no results.png: matplotlib is not installed; pip install 'synthloop[lab]')"]
    return lines


def write_plot(experiment: str, metrics: dict[str, str], per_metric: dict[str, Curves], path: Path) -> bool:
    """One panel per metric: the median over seeds per generation, a band from the 10th to the 90th
    percentile; False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, panels = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.5), dpi=110, squeeze=False)
    for axes, (metric, label) in zip(panels[0], metrics.items(), strict=True):
        curves = per_metric[metric]
        for name, values in curves.items():
            generations = np.arange(len(values))
            axes.plot(generations, np.median(values, axis=1), label=name)
            low, high = np.percentile(values, [10, 90], axis=1)
            axes.fill_between(generations, low, high, alpha=0.2)
        if len(next(iter(curves.values()))) > 50:
            axes.set_xscale("symlog")
        axes.set(xlabel="generation", ylabel=label, title=f"{experiment}: {metric}")
        axes.legend()
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"))
    plt.close(figure)
    return True


def table_csv(per_metric: dict[str, Curves]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["metric", "strategy", "generation", "mean", "std", "median", "min", "max"])
    for metric, curves in per_metric.items():
        for name, values in curves.items():
            for generation, row in enumerate(values):
                stats = (row.mean(), row.std(), np.median(row), row.min(), row.max())
                writer.writerow([metric, name, generation, *(f"{v:.6g}" for v in stats)])
    return buffer.getvalue()


def markdown(experiment: str, metrics: dict[str, str], per_metric: dict[str, Curves], seeds: int) -> list[str]:
    lines = [f"# Collapse lab: {experiment}"]
    for metric, label in metrics.items():
        curves = per_metric[metric]
        generations = len(next(iter(curves.values()))) - 1
        shown = sorted({round(g) for g in np.geomspace(1, generations, num=min(REPORTED, generations))} | {0})
        lines += [
            "",
            f"{label}: mean ± standard deviation over {seeds} seeds; generation 0 is trained on real data only.",
            "",
            "| generation | " + " | ".join(curves) + " |",
            "|---|" + "---|" * len(curves),
        ]
        for generation in shown:
            cells = [f"{values[generation].mean():.4g} ± {values[generation].std():.2g}" for values in curves.values()]
            lines.append(f"| {generation} | " + " | ".join(cells) + " |")
    if experiment == "linear":
        lines += [
            "",
            f"Theory (d=10, T=100, sigma^2=1): one fit {linear_error_per_fit():.4f}; replace after n fits n times "
            f"that; accumulate under {linear_accumulate_bound():.4f} (pi^2/6 times it).",
        ]
    return lines
