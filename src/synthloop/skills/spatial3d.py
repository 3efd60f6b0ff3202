"""Three-dimensional spatial reasoning: objects moved on a 3-D grid, and a die rolled and turned.

Directions are defined in every question (east is +x, north is +y, up is +z), and a die always
starts from a stated orientation, so each item has exactly one answer."""

from __future__ import annotations

import random
import re

from synthloop.skills.answers import extract_final_answer, normalize_text, parse_number, score_number, score_text
from synthloop.skills.base import Skill

MOVES = {
    "east": (1, 0, 0),
    "west": (-1, 0, 0),
    "north": (0, 1, 0),
    "south": (0, -1, 0),
    "up": (0, 0, 1),
    "down": (0, 0, -1),
}
OBJECTS = ("red cube", "blue ball", "green cone", "yellow box", "white cylinder")
GRID = 9  # coordinates stay in 0..GRID

# A die state is (top, north, east); opposite faces sum to 7.
ROLLS = {
    "rolled north": lambda t, n, e: (7 - n, t, e),
    "rolled south": lambda t, n, e: (n, 7 - t, e),
    "rolled east": lambda t, n, e: (7 - e, n, t),
    "rolled west": lambda t, n, e: (e, n, 7 - t),
    "turned clockwise (seen from above)": lambda t, n, e: (t, 7 - e, n),
}


def show(point: tuple[int, int, int]) -> str:
    return "(" + ", ".join(map(str, point)) + ")"


def make_positions(rng: random.Random, difficulty: int) -> tuple[str, list[str], str]:
    names = rng.sample(OBJECTS, 1 + (difficulty >= 3) + (difficulty >= 5))
    where = {name: tuple(rng.randint(2, GRID - 2) for _ in range(3)) for name in names}
    text = [f"A {name} is at {show(where[name])}." for name in names]
    target, steps = names[0], []
    for _ in range(difficulty):
        name = rng.choice(names)
        while True:
            direction, distance = rng.choice(list(MOVES)), rng.randint(1, 2)
            moved = tuple(c + distance * d for c, d in zip(where[name], MOVES[direction], strict=True))
            if all(0 <= c <= GRID for c in moved):
                break
        text.append(f"The {name} moves {distance} {direction}.")
        if name == target:
            steps.append(f"{target}: {show(where[name])} moved {distance} {direction} is {show(moved)}")
        where[name] = moved
    if not steps:
        steps.append(f"the {target} never moves, so it stays at {show(where[target])}")
    question = "East is +x, north is +y, up is +z. " + " ".join(text) + f" Where is the {target} now?"
    return question, steps, show(where[target])


def make_die(rng: random.Random, difficulty: int) -> tuple[str, list[str], str]:
    top = rng.randint(1, 6)
    north = rng.choice([f for f in range(1, 7) if f not in (top, 7 - top)])
    east = rng.choice([f for f in range(1, 7) if f not in (top, 7 - top, north, 7 - north)])
    state, text, steps = (top, north, east), [], []
    for _ in range(difficulty):
        move = rng.choice(list(ROLLS))
        state = ROLLS[move](*state)
        text.append(move)
        steps.append(f"{move}: top {state[0]}, north {state[1]}, east {state[2]}")
    question = (
        f"A die (opposite faces add to 7) has {top} on top, {north} facing north and {east} facing east. "
        f"It is {', then '.join(text)}. What number is on top?"
    )
    return question, steps, str(state[0])


def make_spatial(rng: random.Random, difficulty: int) -> tuple[str, list[str], str]:
    return (make_positions if rng.random() < 0.5 else make_die)(rng, difficulty)


def score_spatial(response: str, reference: str) -> float:
    """Coordinates compare as integer triples (spacing free); die faces as numbers ("1.0" is 1)."""
    if not reference.startswith("("):
        return (
            score_number(response, reference)
            if parse_number(reference) is not None
            else score_text(response, reference)
        )
    answer = extract_final_answer(response) or ""
    got = re.findall(r"-?\d+", answer)
    return float(normalize_text(answer).startswith("(") and got == re.findall(r"-?\d+", reference))


SPATIAL_3D = Skill(
    "spatial_3d", "track objects moved on a 3-D grid and a die rolled over its edges", make_spatial, score_spatial
)
