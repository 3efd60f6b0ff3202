"""Every skill: pure and deterministic, reference solutions score 1, wrong answers score 0, and the
answer agrees with an independent re-computation wherever one is cheap to write."""

import re
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthloop.registry import SKILLS
from synthloop.skills.base import Problem
from synthloop.skills.sequences import predictions
from synthloop.skills.units import UNITS
from synthloop.teachers.oracle import corrupt

ALL = SKILLS.names()
items = st.tuples(st.sampled_from(ALL), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 5))


def test_at_least_ten_skills():
    assert len(ALL) >= 10


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("difficulty", [1, 2, 3, 4, 5])
def test_deterministic(name, difficulty):
    skill = SKILLS.get(name)
    assert skill.generate(3, 17, difficulty) == skill.generate(3, 17, difficulty)
    different = {skill.generate(3, i, difficulty).question for i in range(30)}
    assert len(different) > 5, "items should vary with the index"


@pytest.mark.parametrize("name", ALL)
def test_difficulty_out_of_range(name):
    for bad in (0, 6, 2.5):
        with pytest.raises(ValueError, match="difficulty"):
            SKILLS.get(name).generate(0, 0, bad)


@settings(max_examples=400, deadline=None)
@given(items)
def test_reference_scores_one_and_corruption_scores_zero(item):
    name, seed, idx, difficulty = item
    skill = SKILLS.get(name)
    problem = skill.generate(seed, idx, difficulty)
    assert problem.question and problem.answer and problem.steps
    assert skill.score(problem.solution, problem.answer) == 1.0
    import random

    wrong = corrupt(problem.answer, random.Random(idx))
    assert skill.score(f"#### {wrong}", problem.answer) == 0.0, (problem, wrong)
    assert skill.score("no answer here", problem.answer) == 0.0


def generated(name: str, seed: int, idx: int, difficulty: int) -> Problem:
    return SKILLS.get(name).generate(seed, idx, difficulty)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["addition", "subtraction", "multiplication"]), st.integers(0, 10**6), st.integers(1, 5))
def test_arithmetic_matches_python(name, idx, difficulty):
    p = generated(name, 1, idx, difficulty)
    a, op, b = re.fullmatch(r"What is (\d+) ([-+*]) (\d+)\?", p.question).groups()
    assert int(p.answer) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
    assert int(p.answer) >= 0


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 5))
def test_order_of_operations_matches_python(idx, difficulty):
    p = generated("order_of_operations", 1, idx, difficulty)
    expression = p.question.removeprefix("Evaluate ")
    value = eval(expression.replace("/", "/"), {"__builtins__": {}})  # digits and + - * / ( ) only
    assert Fraction(value) == int(p.answer)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 5))
def test_fractions_in_lowest_terms_and_correct(idx, difficulty):
    p = generated("fractions", 1, idx, difficulty)
    a, op, b = re.match(r"What is (\S+) ([-+*/]) (\S+)\?", p.question).groups()
    fa, fb = Fraction(a), Fraction(b)
    want = {"+": fa + fb, "-": fa - fb, "*": fa * fb, "/": fa / fb}[op]
    assert Fraction(p.answer) == want
    assert p.answer == (str(want.numerator) if want.denominator == 1 else f"{want.numerator}/{want.denominator}")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 5))
def test_unit_conversion_correct(idx, difficulty):
    p = generated("unit_conversion", 1, idx, difficulty)
    amount, src, dst = re.fullmatch(r"Convert (\S+) (\w+) to (\w+)\.", p.question).groups()
    value, unit = p.answer.split()
    assert unit == dst and UNITS[src][0] == UNITS[dst][0]
    assert Fraction(value) == Fraction(amount) * UNITS[src][1] / UNITS[dst][1]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 5))
def test_comparison_distinct_and_sorted(idx, difficulty):
    p = generated("comparison", 1, idx, difficulty)
    shown = [Fraction(x) for x in re.findall(r"-?\d+(?:\.\d+)?", p.question)]
    assert len(set(shown)) == len(shown), "equal numbers would make the order ambiguous"
    answer = [Fraction(x) for x in p.answer.split(", ")]
    assert answer == ([max(shown)] if len(shown) == 2 else sorted(shown))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 5))
def test_sequences_unambiguous(idx, difficulty):
    p = generated("sequences", 1, idx, difficulty)
    terms = [int(x) for x in re.findall(r"-?\d+", p.question)]
    assert predictions(terms) == {int(p.answer)}


# --- spatial_3d, checked by an independent model: faces as unit vectors rotated by matrices ---
ROT = {  # rotation matrices acting on direction vectors (x east, y north, z up)
    "rolled north": ((1, 0, 0), (0, 0, 1), (0, -1, 0)),  # top (+z) goes to north (+y)
    "rolled south": ((1, 0, 0), (0, 0, -1), (0, 1, 0)),
    "rolled east": ((0, 0, 1), (0, 1, 0), (-1, 0, 0)),  # top goes to east
    "rolled west": ((0, 0, -1), (0, 1, 0), (1, 0, 0)),
    "turned clockwise (seen from above)": ((0, 1, 0), (-1, 0, 0), (0, 0, 1)),  # north goes to east
}


def rotate(m, v):
    return tuple(sum(m[i][j] * v[j] for j in range(3)) for i in range(3))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 5))
def test_spatial_matches_independent_model(idx, difficulty):
    p = generated("spatial_3d", 1, idx, difficulty)
    if p.question.startswith("A die"):
        top, north, east = (
            int(x) for x in re.search(r"has (\d) on top, (\d) facing north and (\d)", p.question).groups()
        )
        faces = {(0, 0, 1): top, (0, 1, 0): north, (1, 0, 0): east}
        faces.update({tuple(-c for c in v): 7 - f for v, f in list(faces.items())})
        moves = re.search(r"It is (.*)\. What", p.question).group(1).split(", then ")
        for move in moves:
            faces = {rotate(ROT[move], v): f for v, f in faces.items()}
        assert int(p.answer) == faces[(0, 0, 1)]
    else:
        start = {n: tuple(map(int, c.split(", "))) for n, c in re.findall(r"A ([a-z ]+) is at \(([^)]*)\)", p.question)}
        step = {"east": (1, 0, 0), "west": (-1, 0, 0), "north": (0, 1, 0), "south": (0, -1, 0)}
        step |= {"up": (0, 0, 1), "down": (0, 0, -1)}
        for name, distance, direction in re.findall(r"The ([a-z ]+) moves (\d) (\w+)\.", p.question):
            start[name] = tuple(c + int(distance) * d for c, d in zip(start[name], step[direction], strict=True))
            assert all(0 <= c <= 9 for c in start[name])
        target = re.search(r"Where is the ([a-z ]+) now", p.question).group(1)
        assert p.answer == "(" + ", ".join(map(str, start[target])) + ")"


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 5))
def test_logic_matches_independent_check(idx, difficulty):
    p = generated("logic", 1, idx, difficulty)
    if p.question.startswith("Evaluate"):
        expression = p.question.split(": ", 1)[1].replace("true", "True").replace("false", "False")
        assert str(eval(expression, {"__builtins__": {}})).lower() == p.answer
        return
    edges = re.findall(r"Every (\w+) is a (\w+)\.", p.question)
    a, b = re.search(r"every (\w+) is a (\w+)\?", p.question).groups()
    reach, frontier = {a}, [a]
    while frontier:
        node = frontier.pop()
        for x, y in edges:
            if x == node and y not in reach:
                reach.add(y)
                frontier.append(y)
    assert p.answer == ("yes" if b in reach else "no")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 5))
def test_word_problem_steps_chain_to_answer(idx, difficulty):
    p = generated("word_problems", 1, idx, difficulty)
    count = int(re.search(r"has (\d+)", p.question).group(1))
    for sentence in re.findall(r"[A-Z][a-z]+ (?:finds|gives|buys|splits)[^.]*\.", p.question):
        n = [int(x) for x in re.findall(r"\d+", sentence)]
        if "finds" in sentence:
            count += n[0]
        elif "gives" in sentence:
            count -= n[0]
        elif "buys" in sentence:
            count += n[0] * n[1]
        else:
            assert count % n[0] == 0
            count //= n[0]
        assert count >= 0
    assert int(p.answer) == count
    assert len(p.steps) == difficulty
