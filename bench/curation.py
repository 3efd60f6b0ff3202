"""Decontamination and semantic dedup, measured.

Decontamination: the evaluation set is 100 items of each of the 11 skills (short arithmetic questions
and 20-40-word word problems). The training rows are 20,000 fresh items of the same skills with, hidden
among them, 500 evaluation items pasted verbatim (inside "Question: ... Answer:" text) and 500 with light
edits (case, punctuation and spacing changed, words around them, and in items of 16+ tokens one
non-number word replaced). Reported: recall on each kind, the share of fresh rows flagged (they come from
the same templates as the evaluation items, so this is the false-positive pressure), and rows/s.

Semantic dedup: a paraphrase set the bench writes (facts, each stated in three differently worded
sentences). Reported: the share of second and third phrasings found as duplicates of the first, the share
of distinct facts wrongly merged, and embedding + search throughput on CPU.

    python bench/curation.py"""

from __future__ import annotations

import random
import re
import time

from common import emit

from synthloop.curation.decontaminate import NgramIndex, overlap_tokens
from synthloop.registry import SKILLS

CAPITALS = {
    "France": "Paris",
    "Spain": "Madrid",
    "Italy": "Rome",
    "Germany": "Berlin",
    "Portugal": "Lisbon",
    "Poland": "Warsaw",
    "Austria": "Vienna",
    "Hungary": "Budapest",
    "Greece": "Athens",
    "Sweden": "Stockholm",
    "Norway": "Oslo",
    "Finland": "Helsinki",
    "Denmark": "Copenhagen",
    "Ireland": "Dublin",
    "Japan": "Tokyo",
    "China": "Beijing",
    "India": "New Delhi",
    "Egypt": "Cairo",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Chile": "Santiago",
    "Canada": "Ottawa",
    "Mexico": "Mexico City",
    "Cuba": "Havana",
    "Russia": "Moscow",
    "Turkey": "Ankara",
    "Iran": "Tehran",
    "Thailand": "Bangkok",
    "Vietnam": "Hanoi",
    "Australia": "Canberra",
}
CAPITAL_PHRASINGS = (
    "The capital of {country} is {city}.",
    "{city} serves as the seat of government for {country}.",
    "If you travel to {country}'s capital city, you will arrive in {city}.",
)
INVENTIONS = {
    "the telephone": "Alexander Graham Bell",
    "the light bulb": "Thomas Edison",
    "the World Wide Web": "Tim Berners-Lee",
    "dynamite": "Alfred Nobel",
    "the printing press": "Johannes Gutenberg",
    "the radio": "Guglielmo Marconi",
    "the steam engine": "James Watt",
    "penicillin": "Alexander Fleming",
    "the airplane": "the Wright brothers",
    "the periodic table": "Dmitri Mendeleev",
}
INVENTION_PHRASINGS = (
    "{person} invented {thing}.",
    "{thing_cap} was created by {person}.",
    "We owe {thing} to the work of {person}.",
)
HABITS = {
    "Bats": "sleep during the day and hunt insects at night",
    "Bees": "collect nectar from flowers to make honey",
    "Beavers": "build dams across streams with branches and mud",
    "Salmon": "swim upstream to lay their eggs where they hatched",
    "Penguins": "huddle together to stay warm through the polar winter",
    "Camels": "store fat in their humps to survive long trips through the desert",
    "Owls": "turn their heads far around to look behind them",
    "Squirrels": "bury nuts in autumn and dig them up in winter",
}
HABIT_PHRASINGS = (
    "{animal} {habit}.",
    "It is typical of {animal_low} that they {habit}.",
    "A well-known behaviour: {animal_low} {habit}, as naturalists have long observed.",
)


def paraphrase_facts() -> list[list[str]]:
    facts = [[p.format(country=c, city=city) for p in CAPITAL_PHRASINGS] for c, city in CAPITALS.items()]
    for thing, person in INVENTIONS.items():
        facts.append(
            [p.format(thing=thing, thing_cap=thing[0].upper() + thing[1:], person=person) for p in INVENTION_PHRASINGS]
        )
    for animal, habit in HABITS.items():
        facts.append([p.format(animal=animal, animal_low=animal.lower(), habit=habit) for p in HABIT_PHRASINGS])
    return facts


def light_edit(text: str, rng: random.Random) -> str:
    tokens = text.split()
    words_only = [i for i, t in enumerate(tokens) if t.isalpha() and len(t) > 3]
    if len(overlap_tokens(text)) >= 16 and words_only:
        tokens[rng.choice(words_only)] = "something"
    edited = " ".join(tokens).upper() if rng.random() < 0.5 else " ".join(tokens).lower()
    edited = re.sub(r"[.,?]", "", edited).replace(" ", "  ")
    return f"Practice problem (from my notes) {edited} -- please show steps"


def bench_decontamination() -> dict:
    eval_items = [SKILLS.get(s).generate(1, i, 3).question for s in SKILLS.names() for i in range(100)]
    fresh = [SKILLS.get(s).generate(2, i, 3).question for s in SKILLS.names() for i in range(20_000 // 11)]
    eval_keys = {" ".join(overlap_tokens(q)) for q in eval_items}
    fresh = [q for q in fresh if " ".join(overlap_tokens(q)) not in eval_keys]  # exact repeats are true hits
    rng = random.Random(0)
    verbatim = [f"Question: {q} Answer:" for q in rng.sample(eval_items, 500)]
    edited = [light_edit(q, rng) for q in rng.sample(eval_items, 500)]
    out = {}
    for n in (8, 13):
        index = NgramIndex(n)
        index.add("eval", eval_items)
        rows = fresh + verbatim + edited
        start = time.perf_counter()
        found = [index.find(r) is not None for r in rows]
        seconds = time.perf_counter() - start
        k = len(fresh)
        out[f"n{n}"] = {
            "recall_verbatim": sum(found[k : k + 500]) / 500,
            "recall_light_edits": sum(found[k + 500 :]) / 500,
            "fresh_rows_flagged": round(sum(found[:k]) / k, 4),
            "rows_per_s": round(len(rows) / seconds),
        }
    return {"eval_items": len(eval_items), "fresh_rows": len(fresh), **out}


def bench_semantic() -> dict:
    import numpy as np

    from synthloop.curation.semantic_dedup import MiniLM, greedy_semantic_matches

    start = time.perf_counter()
    model = MiniLM()
    load_s = time.perf_counter() - start
    facts = paraphrase_facts()
    docs, fact_of, first = [], [], []
    for f, phrasings in enumerate(facts):
        first.append(len(docs))
        docs += phrasings
        fact_of += [f] * len(phrasings)
    order = list(range(len(docs)))
    random.Random(0).shuffle(order)
    docs, fact_of = [docs[i] for i in order], [fact_of[i] for i in order]
    start = time.perf_counter()
    vectors = model.encode(docs)
    matches = greedy_semantic_matches(vectors, 0.9)
    seconds = time.perf_counter() - start
    by_threshold = {}
    for threshold in (0.8, 0.85, 0.9):
        matches = greedy_semantic_matches(vectors, threshold)
        kept_facts: dict[int, set[int]] = {}
        for i, m in enumerate(matches):
            kept_facts.setdefault(m.representative, set()).add(fact_of[i])
        repeats = len(docs) - len(facts)  # phrasings after a fact's first
        caught = sum(
            1 for i, m in enumerate(matches) if m.representative != i and fact_of[m.representative] == fact_of[i]
        )
        wrong = sum(
            1 for i, m in enumerate(matches) if m.representative != i and fact_of[m.representative] != fact_of[i]
        )
        by_threshold[str(threshold)] = {
            "paraphrases_found": round(caught / repeats, 3),
            "distinct_facts_merged": round(wrong / len(docs), 3),
        }
    bulk = [d + f" (note {i})" for i, d in enumerate(docs * 8)]
    start = time.perf_counter()
    greedy_semantic_matches(model.encode(bulk), 0.9)
    bulk_s = time.perf_counter() - start
    return {
        "model_load_s": round(load_s, 1),
        "facts": len(facts),
        "docs": len(docs),
        "by_threshold": by_threshold,
        "docs_per_s": round(len(bulk) / bulk_s),
        "small_set_s": round(seconds, 2),
        "dim": int(np.asarray(vectors).shape[1]),
    }


def main() -> None:
    emit({"bench": "curation", "decontamination": bench_decontamination(), "semantic_dedup": bench_semantic()})


if __name__ == "__main__":
    main()
