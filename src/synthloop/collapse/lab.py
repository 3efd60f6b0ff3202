"""`synthloop collapse`: run an experiment under several strategies over generations and seeds, and write
its metrics per generation and strategy (mean and spread) as `results.csv` and `results.md`, and as
`results.png` where matplotlib is installed (`pip install 'synthloop[lab]'`)."""

from __future__ import annotations

import csv
import difflib
import io
import os
import tempfile
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
            "synthetic_rows": "synthetic rows the generation wrote and kept (with verify: those that passed)",
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
            "synthetic_rows": "synthetic documents the generation wrote and kept (with verify: those that passed)",
        },
        5,
        1,
        "replace,accumulate,verify+accumulate",
        verifier=True,
        takes_corpus=True,
    ),
}
REPORTED = 12  # generations shown in the Markdown table (the CSV has them all)


MAX_CELLS = 1_000_000  # (generations + 1) x seeds: the toy settings keep arrays of this many samples x 100


@dataclass(frozen=True)
class Plan:
    """One experiment's checked settings."""

    name: str
    spec: ExperimentSpec
    strategies: list[Strategy]
    generations: int
    seeds: int
    corpus: Path | None
    out: Path


def plan_lab(
    experiment: str,
    strategies: list[str] | None,
    generations: int | None,
    seeds: int | None,
    out: Path,
    corpus: Path | None = None,
) -> list[Plan]:
    """Every check, for every experiment asked for, before anything runs or is written."""
    names = list(EXPERIMENTS) if experiment == "all" else [experiment]
    if experiment != "all" and experiment not in EXPERIMENTS:
        close = difflib.get_close_matches(experiment, EXPERIMENTS, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise StrategyError(
            f"unknown experiment {experiment!r}; {hint}this version has: {', '.join(EXPERIMENTS)}, or all"
        )
    if strategies is not None and not strategies:
        raise StrategyError("--strategies is empty; name at least one (e.g. replace,accumulate)")
    if corpus is not None and "text" not in names:
        raise StrategyError(f"--corpus is for the text experiment, not {experiment}")
    plans = []
    for name in names:
        spec = EXPERIMENTS[name]
        g = spec.generations if generations is None else generations
        k = spec.seeds if seeds is None else seeds
        if g < 1 or k < 1:
            raise StrategyError(f"--generations and --seeds must be at least 1, got {g} and {k}")
        if (g + 1) * k > MAX_CELLS:
            raise StrategyError(
                f"--generations {g} x --seeds {k} is too large for one run (at most {MAX_CELLS:,} generation-seed "
                "pairs); split it into several runs"
            )
        parsed = [parse_strategy(text) for text in (strategies or spec.strategies.split(","))]
        repeated = [s.name for i, s in enumerate(parsed) if s.name in [t.name for t in parsed[:i]]]
        if repeated:
            raise StrategyError(f"strategy {repeated[0]!r} is given twice")
        if not spec.verifier and any(s.verify for s in parsed):
            if experiment == "all":
                parsed = [s for s in parsed if not s.verify] or [parse_strategy(t) for t in spec.strategies.split(",")]
            else:
                raise StrategyError(f"--experiment {name} has no verifier; verify strategies are for skills and text")
        plans.append(
            Plan(
                name,
                spec,
                parsed,
                g,
                k,
                corpus if spec.takes_corpus else None,
                out / name if experiment == "all" else out,
            )
        )
    if corpus is not None:
        from synthloop.collapse.lm_experiments import load_corpus

        load_corpus(corpus)  # a bad corpus fails before any model is trained
    for plan in plans:
        check_out(plan.out)
    return plans


def check_out(out: Path) -> None:
    """--out must be a folder we can create and write in (checked before hours of work, left as it was)."""
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if out.exists() and not out.is_dir():
        raise StrategyError(f"--out {out} is a file; give a folder")
    try:  # a real try, not os.access: root passes os.access where /proc refuses
        os.rmdir(tempfile.mkdtemp(prefix=".synthloop-check-", dir=probe))
    except OSError:
        raise StrategyError(f"--out {out}: cannot create or write in {probe}") from None


def run_lab(
    experiment: str,
    strategies: list[str] | None,
    generations: int | None,
    seeds: int | None,
    out: Path,
    corpus: Path | None = None,
) -> list[str]:
    """Run it, write out/results.csv, out/results.md (and out/results.png), return the Markdown lines.
    None takes the experiment's default; experiment `all` runs each into out/NAME/. Every input is
    checked, for every experiment, before anything runs."""
    lines: list[str] = []
    for plan in plan_lab(experiment, strategies, generations, seeds, out, corpus):
        lines += [*run_plan(plan), ""]
    return lines[:-1]


def run_plan(plan: Plan) -> list[str]:
    options = {"corpus": plan.corpus} if plan.corpus is not None else {}
    results = [plan.spec.run(strategy, plan.generations, plan.seeds, **options) for strategy in plan.strategies]
    per_metric: dict[str, Curves] = {
        metric: {strategy.name: result[metric] for strategy, result in zip(plan.strategies, results, strict=True)}
        for metric in plan.spec.metrics
    }
    out = plan.out
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.csv", table_csv(per_metric))
    lines = markdown(plan.name, plan.spec.metrics, per_metric, plan.seeds)
    write_text(out / "results.md", "\n".join(lines) + "\n")
    if not write_plot(plan.name, plan.spec.metrics, per_metric, out / "results.png"):
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
