"""The collapse lab on language models: each generation a tiny LM is trained from scratch on what the
strategy gives it, then writes the next generation's synthetic data.

- `skills`: the classroom loop with the student promoted to teacher. Generation 0 is the built-in
  classroom teacher, trained on the skill generators' reference solutions (the real data here);
  generation g's model answers fresh problems (sampled at temperature 1), the next generation continues
  training it on what the strategy gives it, and `verify` keeps only the answers whose final answer is
  right (the loop's verifier). Measured: accuracy
  on held-out probes (greedy) and the diversity of the model's sampled answers (distinct word pairs).
  Briesch et al. (arXiv 2311.16822) saw diversity fall while correctness held; Feng et al. (arXiv
  2406.07515) saw verification prevent collapse.
- `text`: a human corpus (`--corpus`, or by default the Python Language Reference topics that ship with
  CPython in `pydoc_data`, PSF License 2.0). Generation g's model writes documents from nothing;
  `verify` keeps those that the generation-0 model (trained on the human text) finds no less likely than
  90% of held-out human documents. Measured: perplexity on held-out human text, distinct word pairs of
  the samples, and the mass of the corpus's rare word pairs (seen at most twice in it) in the samples.

Every strategy trains the same number of steps per generation, so they compare at equal compute. The
text experiment trains each generation from scratch."""

from __future__ import annotations

import itertools
import math
import os
import random
import re
import stat
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthloop.collapse.strategies import CorpusError, Strategy
from synthloop.collapse.tiny_lm import Example, TinyShape, encode, sample, token_losses, tokenizer_for, train_model
from synthloop.monitoring.diversity import distinct_n
from synthloop.registry import SKILLS
from synthloop.tasks.solve import SYSTEM as SOLVE_SYSTEM

LAB_SKILLS = ("addition", "subtraction", "comparison", "fractions", "spatial_3d")  # the classroom teacher's
ROWS = 400  # rows per generation (real data size, synthetic data per generation)
PROBES = 100
MIN_DOCUMENTS = 20
MAX_CORPUS_BYTES = 64 * 1024 * 1024


@dataclass
class Pools:
    """What the strategies draw from: the real rows and every generation's synthetic rows so far."""

    real: list[Example]
    synthetic: list[list[Example]]


def training_data(
    strategy: Strategy, pools: Pools, fresh_real: Callable[[int], list[Example]], rng: random.Random
) -> list[Example]:
    """What a generation trains on under `strategy` (empty when it has nothing: replace after verify kept none)."""
    newest = pools.synthetic[-1]
    if strategy.kind == "replace":
        return newest
    if strategy.kind == "mix":
        fresh = round(strategy.fresh_real * ROWS)
        return fresh_real(fresh) + newest[: ROWS - fresh]
    everything = pools.real + [row for rows in pools.synthetic for row in rows]
    if strategy.kind == "accumulate":
        return everything
    return rng.sample(everything, min(ROWS, len(everything)))  # accumulate-subsample


def run_generations(
    strategy: Strategy,
    generations: int,
    seeds: int,
    setup: Callable[[int], Any],
) -> dict[str, np.ndarray]:
    """The shared loop: per seed, a world from `setup(seed)` with .real, .fresh_real(n), .train(data, g),
    .write(model, g, verify) -> new synthetic rows, .measure(model, g) -> {metric: value}."""
    figures: dict[str, list[list[float]]] = {}
    for seed in range(seeds):
        world = setup(seed)
        rng = random.Random(seed)
        pools = Pools(world.real, [])
        model = world.train(world.real, 0)
        per_seed = [world.measure(model, 0) | {"synthetic_rows": 0}]
        for generation in range(1, generations + 1):
            written = world.write(model, generation, strategy.verify)
            pools.synthetic.append(written)
            data = training_data(strategy, pools, world.fresh_real, rng)
            if data:  # with nothing to train on (verify kept no row, under replace) the model stays as it was
                model = world.train(data, generation)
            per_seed.append(world.measure(model, generation) | {"synthetic_rows": len(written)})
        for metric in per_seed[0]:
            figures.setdefault(metric, []).append([row[metric] for row in per_seed])
    return {metric: np.array(values, dtype=float).T for metric, values in figures.items()}


class SkillsWorld:
    """Generation 0 is the built-in classroom teacher (trained on the generators' reference solutions, the
    real data here). Each later generation continues training the model before it, as the loop's student
    does, on what the strategy gives it; the new model then answers the next generation's problems."""

    def __init__(self, seed: int, shape: TinyShape):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from synthloop.teachers.checkpoints import resolve_model

        path = resolve_model("builtin:classroom-teacher")
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.teacher = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
        self.seed, self.shape, self.drawn = seed, shape, 0
        per_skill = max(1, PROBES // len(LAB_SKILLS))
        self.probes = [SKILLS.get(s).generate(10_000 + seed, i, 1) for i in range(per_skill) for s in LAB_SKILLS]
        self.real = self.fresh_real(ROWS)
        self.model: Any = None

    def problems(self, n: int) -> list[Any]:
        start, self.drawn = self.drawn, self.drawn + n
        return [SKILLS.get(LAB_SKILLS[i % len(LAB_SKILLS)]).generate(self.seed, i, 1) for i in range(start, start + n)]

    def prompt(self, question: str) -> str:
        messages = [{"role": "system", "content": SOLVE_SYSTEM}, {"role": "user", "content": question}]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def row(self, question: str, answer_text: str) -> Example:
        return encode(self.tokenizer, self.prompt(question), answer_text, self.shape.max_len, bos=False)

    def fresh_real(self, n: int) -> list[Example]:
        return [self.row(p.question, p.solution) for p in self.problems(n)]

    def train(self, data: list[Example], generation: int) -> Any:
        if generation == 0:
            self.model = self.teacher
        else:
            self.model = train_model(self.tokenizer, data, self.shape, 1000 * self.seed + generation, self.model)
        return self.model

    def answers(self, model: Any, problems: Sequence[Any], temperature: float, seed: int) -> list[str]:
        prompts = [self.prompt(p.question) for p in problems]
        return sample(model, self.tokenizer, prompts, self.shape.max_len, temperature, seed, bos=False)

    def write(self, model: Any, generation: int, verify: bool) -> list[Example]:
        problems = self.problems(ROWS)
        answers = self.answers(model, problems, 1.0, 1000 * self.seed + generation)
        rows = []
        for problem, answer in zip(problems, answers, strict=True):
            if verify and SKILLS.get(problem.skill).score(answer, problem.answer) < 1.0:
                continue
            rows.append(self.row(problem.question, answer.strip()))
        return rows

    def measure(self, model: Any, generation: int) -> dict[str, float]:
        greedy = self.answers(model, self.probes, 0.0, 0)
        right = [SKILLS.get(p.skill).score(a, p.answer) for p, a in zip(self.probes, greedy, strict=True)]
        sampled = self.answers(model, self.probes, 1.0, 7 + generation)
        return {"accuracy": float(np.mean(right)), "answer_distinct_2": distinct_n(sampled, 2)}


SKILLS_SHAPE = TinyShape(max_len=160, steps=60, batch_size=16, learning_rate=3e-4)  # fine-tuning the teacher


def skills(strategy: Strategy, generations: int, seeds: int, shape: TinyShape | None = None) -> dict[str, np.ndarray]:
    return run_generations(strategy, generations, seeds, lambda seed: SkillsWorld(seed, shape or SKILLS_SHAPE))


def default_corpus() -> list[str]:
    """The Python Language Reference topics that ship with CPython (pydoc_data; PSF License 2.0): human
    prose, one paragraph of at least 8 words per document."""
    from pydoc_data.topics import topics

    return [
        " ".join(paragraph.split())
        for _, text in sorted(topics.items())
        for paragraph in text.split("\n\n")
        if len(paragraph.split()) >= 8
    ]


def load_corpus(path: Path) -> list[str]:
    """UTF-8 text, documents separated by blank lines (or one per line where there are none)."""
    try:
        info = os.stat(path)
    except OSError as err:
        raise CorpusError(f"--corpus {path}: cannot be read ({err.strerror or err})") from None
    if not stat.S_ISREG(info.st_mode):
        raise CorpusError(f"--corpus {path}: is not a regular file; give a UTF-8 text file")
    if info.st_size > MAX_CORPUS_BYTES:
        raise CorpusError(
            f"--corpus {path}: is {info.st_size:,} bytes; the text experiment reads at most {MAX_CORPUS_BYTES:,} "
            "(a tiny model learns from a few thousand documents: give a sample)"
        )
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CORPUS_BYTES + 1)
    except OSError as err:
        raise CorpusError(f"--corpus {path}: cannot be read ({err.strerror or err})") from None
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise CorpusError(f"--corpus {path}: is UTF-16; convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)")
    if b"\x00" in raw:
        raise CorpusError(f"--corpus {path}: holds NUL bytes, so it is not a text file; give UTF-8 text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CorpusError(f"--corpus {path}: is not UTF-8 text (invalid byte at offset {err.start})") from None
    text = text.replace("\r\n", "\n")
    blocks = re.split(r"\n[ \t]*\n", text) if re.search(r"\n[ \t]*\n", text) else text.split("\n")
    documents = [" ".join(block.split()) for block in blocks]
    documents = [d for d in documents if d]
    if not documents:
        raise CorpusError(f"--corpus {path}: has no documents (it is empty or only whitespace)")
    if len(documents) < MIN_DOCUMENTS:
        raise CorpusError(
            f"--corpus {path}: has {len(documents)} documents; the text experiment needs at least {MIN_DOCUMENTS} "
            "(a tenth is held out to measure perplexity on)"
        )
    return documents


def word_pairs(text: str) -> list[tuple[str, str]]:
    return list(itertools.pairwise(text.split()))


class TextWorld:
    def __init__(self, seed: int, shape: TinyShape, documents: Sequence[str]):
        self.seed, self.shape = seed, shape
        docs = list(documents)
        random.Random(seed).shuffle(docs)
        held = max(2, len(docs) // 10)
        self.held_out, self.train_docs = docs[:held][:200], docs[held:]
        self.tokenizer = tokenizer_for(self.train_docs, shape.vocab_size)
        self.rng = random.Random(seed)
        self.real = [self.row(d) for d in self.train_docs[:ROWS]]
        self.unused = self.train_docs[ROWS:] or self.train_docs
        self.human = [self.row(d) for d in self.held_out]
        counts = Counter(pair for d in self.train_docs for pair in word_pairs(d))
        self.rare = {pair for pair, count in counts.items() if count <= 2}
        self.judge: Any = None
        self.threshold = math.inf

    def row(self, document: str) -> Example:
        return encode(self.tokenizer, "", document, self.shape.max_len)

    def fresh_real(self, n: int) -> list[Example]:
        return [self.row(self.rng.choice(self.unused)) for _ in range(n)]

    def train(self, data: list[Example], generation: int) -> Any:
        model = train_model(self.tokenizer, data, self.shape, 1000 * self.seed + generation)
        if generation == 0:  # the verifier: the model of the human text, and its 90th-percentile loss
            self.judge = model
            self.threshold = float(np.percentile(token_losses(model, self.human), 90))
        return model

    def samples(self, model: Any, n: int, seed: int) -> list[str]:
        return sample(model, self.tokenizer, [""] * n, self.shape.max_len, 1.0, seed)

    def write(self, model: Any, generation: int, verify: bool) -> list[Example]:
        rows = [self.row(text) for text in self.samples(model, ROWS, 1000 * self.seed + generation) if text.strip()]
        if verify and rows:
            losses = token_losses(self.judge, rows)
            rows = [row for row, loss in zip(rows, losses, strict=True) if loss <= self.threshold]
        return rows

    def measure(self, model: Any, generation: int) -> dict[str, float]:
        perplexity = math.exp(float(np.mean(token_losses(model, self.human))))
        texts = self.samples(model, 200, 77 + generation)
        pairs = [pair for text in texts for pair in word_pairs(text)]
        rare_mass = sum(pair in self.rare for pair in pairs) / len(pairs) if pairs else 0.0
        return {"perplexity": perplexity, "distinct_2": distinct_n(texts, 2), "rare_pair_mass": rare_mass}


def text(
    strategy: Strategy,
    generations: int,
    seeds: int,
    corpus: Path | None = None,
    shape: TinyShape | None = None,
) -> dict[str, np.ndarray]:
    documents = load_corpus(corpus) if corpus else default_corpus()
    return run_generations(strategy, generations, seeds, lambda seed: TextWorld(seed, shape or TinyShape(), documents))
