import pytest

from synthloop.evaluation.allocate import allocate, counts_from_shares, weakness_report

SKILLS = ["a", "b", "c", "d"]


def test_round_one_and_uniform_policy_are_even():
    assert allocate(SKILLS, None, "proportional_to_error", 0.05) == {s: 0.25 for s in SKILLS}
    assert allocate(SKILLS, {"a": 0.0, "b": 1.0, "c": 1, "d": 1}, "uniform", 0.05) == {s: 0.25 for s in SKILLS}


def test_weakest_gets_most_and_floor_protects_the_strong():
    shares = allocate(SKILLS, {"a": 0.1, "b": 0.5, "c": 0.9, "d": 1.0}, "proportional_to_error", 0.05)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["a"] > shares["b"] > shares["c"] > shares["d"]
    assert shares["d"] == pytest.approx(0.05)


def test_everything_mastered_rehearses_evenly():
    assert allocate(SKILLS, dict.fromkeys(SKILLS, 1.0), "proportional_to_error", 0.0) == {s: 0.25 for s in SKILLS}


@pytest.mark.parametrize("budget", [1, 7, 1000, 4001])
def test_counts_add_up_exactly(budget):
    counts = counts_from_shares({"a": 0.5, "b": 0.3333, "c": 0.1667}, budget)
    assert sum(counts.values()) == budget


def test_weakness_report_orders_weakest_first():
    assert [r["skill"] for r in weakness_report({"x": 0.9, "y": 0.1, "z": 0.5})] == ["y", "z", "x"]


def test_sharpness_concentrates_on_the_weakest():
    report = {"a": 0.0, "b": 0.4, "c": 0.6, "d": 0.9}
    plain = allocate(SKILLS, report, "proportional_to_error", 0.05, sharpness=1)
    sharp = allocate(SKILLS, report, "proportional_to_error", 0.05, sharpness=3)
    assert sharp["a"] > plain["a"] and sharp["c"] < plain["c"]
    assert sum(sharp.values()) == pytest.approx(1.0) and min(sharp.values()) >= 0.05
