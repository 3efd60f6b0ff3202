"""Collapse guards: the figures (embedding diversity, golden drift, tail coverage), the decisions
relative to round 1, and the loop acting on them (warn, raise_golden_ratio, stop) and recording it."""

import json
from pathlib import Path

import numpy as np
import pytest

from synthloop.config import GuardConfig, MonitorConfig, load_recipe
from synthloop.loop import run_loop
from synthloop.monitoring import guards
from synthloop.monitoring.drift import tail_coverage
from synthloop.monitoring.embeddings import dispersion_and_vendi

TINY = Path(__file__).parent / "tiny_recipe.yaml"


def test_vendi_counts_distinct_rows_and_dispersion_is_cosine_distance():
    same = np.tile(np.array([[1.0, 0.0, 0.0]], dtype=np.float32), (4, 1))
    assert dispersion_and_vendi(same) == pytest.approx((0.0, 1.0), abs=1e-6)
    basis = np.eye(4, dtype=np.float32)
    assert dispersion_and_vendi(basis) == pytest.approx((1.0, 4.0), abs=1e-6)
    two_clusters = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    assert dispersion_and_vendi(two_clusters)[1] == pytest.approx(2.0, abs=1e-6)


def test_tail_coverage_counts_rare_golden_pairs_the_answers_still_write():
    golden = ["carry the one", "carry the one", "carry the one", "borrow from tens", "zebra crossing ahead"]
    references = ["borrow from tens", "zebra crossing ahead"]
    assert tail_coverage(references, ["borrow from tens", "zebra crossing ahead"], golden) == 1.0
    assert tail_coverage(references, ["borrow from", "nothing"], golden) == 0.25  # 1 of 4 rare pairs
    assert tail_coverage(["carry the one"], ["carry the one"], golden) is None  # no rare pair to look for


def history(*values, metric="distinct_3_texts"):
    return [{metric: v} for v in values]


def test_a_guard_triggers_only_past_its_tolerance_in_the_bad_direction():
    cfg = MonitorConfig(guards=[GuardConfig(metric="distinct_3_texts", tolerance=0.3, action="warn")])
    assert guards.apply_guards(cfg, history(0.5), 0.2)["checks"] == []  # round 1 is the reference
    assert guards.apply_guards(cfg, history(0.5, 0.4), 0.2)["actions"] == []  # 20% lower
    assert guards.apply_guards(cfg, history(0.5, 0.9), 0.2)["actions"] == []  # better
    decided = guards.apply_guards(cfg, history(0.5, 0.6, 0.3), 0.2)  # 40% lower than round 1
    assert decided["actions"] == ["warn"] and decided["golden_ratio_next"] == 0.2 and not decided["stop"]
    assert decided["checks"][0]["worsened_by"] == pytest.approx(0.4)
    loss = MonitorConfig(guards=[GuardConfig(metric="golden_loss", tolerance=0.1, action="raise_golden_ratio")])
    assert guards.apply_guards(loss, history(2.0, 1.5, metric="golden_loss"), 0.2)["actions"] == []
    raised = guards.apply_guards(loss, history(2.0, 2.4, metric="golden_loss"), 0.75)
    assert raised["golden_ratio_next"] == 0.8  # capped at max_golden_ratio
    missing = guards.apply_guards(loss, [{}, {}], 0.2)["checks"][0]
    assert not missing["triggered"] and missing["note"] == "not measured in this run"
    assert guards.apply_guards(cfg, history(0.0, 0.0), 0.2)["actions"] == []  # no relative change from 0


def test_every_guard_metric_has_a_direction():
    from typing import get_args

    from synthloop.config import GuardMetric

    assert set(get_args(GuardMetric)) == set(guards.WORSE_WHEN)


def test_a_recipe_guard_with_an_unknown_metric_or_action_is_refused():
    from synthloop.config import RecipeError, validate_recipe

    base = {"name": "x", "skills": {"addition": {"difficulty": 1}}}
    for bad, key in (
        ({"metric": "distinct_9", "tolerance": 0.1}, "metric"),
        ({"metric": "golden_loss", "tolerance": 0.1, "action": "panic"}, "action"),
        ({"metric": "golden_loss", "tolerance": 0}, "tolerance"),
    ):
        with pytest.raises(RecipeError, match=key):
            validate_recipe({**base, "monitor": {"guards": [bad]}})


@pytest.mark.slow
def test_real_drift_figures_land_in_metrics(tmp_path):
    root = tmp_path / "run"
    run_loop(load_recipe(TINY).model_copy(update={"rounds": 2}), root, log=lambda line: None)
    rounds = json.loads((root / "metrics.json").read_text())["rounds"]
    for r in rounds:
        monitor = r["monitor"]
        assert monitor["drift_rows"] == 8  # a fifth of the 40 golden rows, held out of training
        assert monitor["golden_loss"] > 0 and monitor["golden_perplexity"] > 1
        assert monitor["tail_coverage"] is None or 0 <= monitor["tail_coverage"] <= 1
        assert r["guards"]["golden_ratio"] == 0.25
    assert rounds[0]["guards"]["checks"] == [] and len(rounds[1]["guards"]["checks"]) == 4
    drift_questions = {r.question for r in held_out_rows(root)}
    trained = {row.question for n in ("01", "02") for row in read_train(root / "rounds" / n)}
    assert drift_questions and not drift_questions & trained


def held_out_rows(root):
    from synthloop.config import load_recipe as load
    from synthloop.grounding.golden import embedded_golden
    from synthloop.loop import hold_out, stream_seed
    from synthloop.registry import SKILLS

    recipe = load(TINY)
    skills = {name: SKILLS.get(name) for name in recipe.skills}
    golden = embedded_golden(skills, {n: 1 for n in skills}, 40, stream_seed(recipe.seed, "golden"))
    # the loop holds out of the decontaminated golden set; every such row is among these
    return [r for r in hold_out(golden, 100, stream_seed(recipe.seed, "drift"))[1]]


def read_train(rdir):
    from synthloop.storage.shards import read_records

    return [row for row in read_records(rdir / "train") if row.source != "synthetic"]


@pytest.mark.slow
def test_guards_act_raise_the_golden_ratio_then_stop_and_resume_stops_again(tmp_path, monkeypatch):
    """The figures are scripted here (the real ones are tested above): round 2 loses 40% of its
    diversity, round 3 half; the recipe raises the golden ratio at 30% and stops at 45%."""
    import synthloop.loop as loop_module

    scripted = {1: 0.5, 2: 0.3, 3: 0.25}
    monkeypatch.setattr(loop_module, "round_monitor", lambda loop, n: {"distinct_3_texts": scripted[n]})
    recipe = load_recipe(TINY).model_copy(update={"rounds": 4})
    recipe = recipe.model_copy(
        update={
            "monitor": MonitorConfig(
                guards=[
                    GuardConfig(metric="distinct_3_texts", tolerance=0.3, action="raise_golden_ratio"),
                    GuardConfig(metric="distinct_3_texts", tolerance=0.45, action="stop"),
                ]
            )
        }
    )
    lines: list[str] = []
    root = tmp_path / "run"
    run_loop(recipe, root, log=lines.append)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["rounds"] == {"1": "done", "2": "done", "3": "done"}  # round 4 never started
    assert any("stopped by a guard" in line for line in lines)
    assert any("guard distinct_3_texts" in line and "0.25 -> 0.35" in line for line in lines)
    train = [json.loads((root / "rounds" / n / "train" / "_SUCCESS.json").read_text()) for n in ("01", "02", "03")]
    assert [t["golden_ratio"] for t in train] == [0.25, 0.25, 0.35]  # raised after round 2, for round 3
    assert train[2]["golden"] > train[1]["golden"]
    metrics = json.loads((root / "metrics.json").read_text())["rounds"]
    assert metrics[2]["guards"]["stop"] and metrics[2]["guards"]["actions"] == ["raise_golden_ratio", "stop"]
    html = (root / "report.html").read_text()
    assert "Collapse guards" in html and "stop" in html
    resumed: list[str] = []
    run_loop(recipe, root, resume=True, log=resumed.append)
    assert any("a guard stopped the run here" in line for line in resumed)
    assert json.loads((root / "manifest.json").read_text())["rounds"] == manifest["rounds"]


def test_a_diverged_student_triggers_its_guard_and_a_raise_never_lowers():
    loss = MonitorConfig(guards=[GuardConfig(metric="golden_loss", tolerance=0.5, action="stop")])
    decided = guards.apply_guards(
        loss, [{"golden_loss": 2.0}, {"golden_loss": None, "golden_loss_diverged": True}], 0.2
    )
    assert decided["stop"] and decided["checks"][0]["note"] == "not finite: the student diverged"
    assert "not finite" in guards.guard_lines(2, decided)[0]
    raise_ = MonitorConfig(
        guards=[GuardConfig(metric="golden_loss", tolerance=0.1, action="raise_golden_ratio")], max_golden_ratio=0.3
    )
    assert guards.apply_guards(raise_, history(1.0, 2.0, metric="golden_loss"), 0.5)["golden_ratio_next"] == 0.5


def test_a_guard_that_could_not_raise_the_ratio_is_refused_in_the_recipe():
    from synthloop.config import RecipeError, validate_recipe

    with pytest.raises(RecipeError, match=r"max_golden_ratio .* must be above grounding.ratio"):
        validate_recipe(
            {
                "name": "x",
                "skills": {"addition": {"difficulty": 1}},
                "grounding": {"ratio": 0.5},
                "monitor": {"max_golden_ratio": 0.3},
            }
        )
    yaml_off = validate_recipe(
        {"name": "x", "skills": {"addition": {"difficulty": 1}}, "monitor": {"embeddings": False}}
    )
    assert yaml_off.monitor.embeddings == "off"  # `embeddings: off` unquoted is YAML false


def test_diversity_is_measured_on_the_rounds_own_rows_at_one_sample_size():
    from synthloop.monitoring.diversity import SAMPLE, diversity
    from synthloop.records import Record

    def rows(n, round_, start):
        return [
            Record(
                kind="solution",
                skill="s",
                question=f"q {i} {i * 7 % 13}",
                source="synthetic",
                round=round_,
                reasoning=f"step {i}",
                answer=str(i),
            )
            for i in range(start, start + n)
        ]

    first = rows(500, 1, 0)
    accumulated = first + rows(500, 2, 10_000)
    assert diversity(accumulated, 2)["distinct_3_texts"] == pytest.approx(
        diversity(rows(500, 2, 10_000), 2)["distinct_3_texts"]
    )
    big = rows(3 * SAMPLE, 1, 0)
    assert diversity(big, 1)["synthetic_share_of_train"] == 1.0
