"""The collapse lab's settings with known answers reproduce the published results (fixed seeds, so each
assertion is a check of the maths, not of luck)."""

import numpy as np
import pytest

from synthloop.collapse.strategies import Strategy, StrategyError, parse_strategy
from synthloop.collapse.toy import gaussian, linear, linear_accumulate_bound, linear_error_per_fit


def test_gaussian_collapses_under_replace_and_holds_under_accumulate():
    """Shumailov et al.: 100 samples per generation, 50 seeds, 1000 generations."""
    replace = gaussian(parse_strategy("replace"), generations=1000, seeds=50)
    accumulate = gaussian(parse_strategy("accumulate"), generations=1000, seeds=50)
    assert replace.shape == (1001, 50)
    assert np.median(replace[-1]) < 0.1 and np.median(replace[0]) > 0.9
    assert np.median(accumulate[-1]) > 0.9 and accumulate[-1].min() > 0.5
    fresh = gaussian(parse_strategy("mix:0.1"), generations=1000, seeds=50)
    assert np.median(fresh[-1]) > 0.9  # a tenth of fresh real data each generation is enough


def test_linear_error_grows_with_each_fit_under_replace_and_is_bounded_under_accumulate():
    """Gerstgrasser et al.: d=10, T=100, sigma^2=1."""
    per_fit = linear_error_per_fit(d=10, rows=100, noise=1.0)
    replace = linear(parse_strategy("replace"), generations=49, seeds=1000).mean(axis=1)
    assert replace[-1] == pytest.approx(50 * per_fit, rel=0.15)  # the 50th fit
    accumulate = linear(parse_strategy("accumulate"), generations=49, seeds=1000).mean(axis=1)
    assert (accumulate <= linear_accumulate_bound(d=10, rows=100, noise=1.0)).all()
    assert accumulate[0] == pytest.approx(per_fit, rel=0.15) and accumulate[-1] > accumulate[0]


def test_subsampling_the_pool_sits_between_replace_and_accumulate():
    sub = linear(parse_strategy("accumulate-subsample"), generations=20, seeds=300).mean(axis=1)
    replace = linear(parse_strategy("replace"), generations=20, seeds=300).mean(axis=1)
    accumulate = linear(parse_strategy("accumulate"), generations=20, seeds=300).mean(axis=1)
    assert accumulate[-1] < sub[-1] < replace[-1]
    assert np.median(gaussian(parse_strategy("accumulate-subsample"), 300, 50)[-1]) > 0.8


@pytest.mark.parametrize(
    ("text", "strategy"),
    [
        ("replace", Strategy("replace")),
        ("mix:0.25", Strategy("mix", 0.25)),
        (" accumulate ", Strategy("accumulate")),
        ("verify", Strategy("replace", verify=True)),
        ("verify+accumulate", Strategy("accumulate", verify=True)),
        ("verify+mix:0.5", Strategy("mix", 0.5, verify=True)),
    ],
)
def test_strategies_parse(text, strategy):
    assert parse_strategy(text) == strategy


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("acumulate", "did you mean 'accumulate'"),
        ("mix:0", r"mix:F needs F"),
        ("mix:abc", r"mix:F needs F"),
        ("mix:1.5", r"mix:F needs F"),
        ("collapse", "unknown strategy 'collapse'"),
        ("verify+verify", "verify appears twice"),
        ("verify+acumulate", "did you mean 'accumulate'"),
    ],
)
def test_a_bad_strategy_is_one_line_naming_the_closest(text, message):
    with pytest.raises(StrategyError, match=message):
        parse_strategy(text)


def test_synthloop_collapse_writes_a_csv_and_a_markdown_table(tmp_path, capsys):
    from synthloop.cli.main import main

    out = tmp_path / "lab"
    args = ["collapse", "--experiment", "gaussian", "--strategies", "replace,accumulate,mix:0.2"]
    assert main([*args, "--generations", "30", "--seeds", "5", "--out", str(out)]) == 0
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0] == "metric,strategy,generation,mean,std,median,min,max" and len(rows) == 1 + 3 * 31
    table = (out / "results.md").read_text()
    assert "| generation | replace | accumulate | mix:0.2 |" in table and "over 5 seeds" in table
    assert "wrote" in capsys.readouterr().out
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # matplotlib is in the dev extras


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--experiment", "gausian"], "unknown experiment 'gausian'; did you mean 'gaussian'?"),
        (["--experiment", "linear", "--strategies", "replce"], "did you mean 'replace'"),
        (["--experiment", "linear", "--generations", "0"], "--generations and --seeds must be at least 1"),
        (["--experiment", "gaussian", "--strategies", "verify+accumulate"], "has no verifier"),
        (["--experiment", "linear", "--corpus", "x.txt"], "--corpus is for the text experiment"),
    ],
)
def test_synthloop_collapse_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    from synthloop.cli.main import main

    assert main(["collapse", *args, "--out", str(tmp_path / "lab")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "lab").exists()
