"""A user's own task as a task source: a train split and a held-out eval split, with categories and a
scorer per category.

Files are JSONL, Parquet or a folder written by `datasets.save_to_disk`, with `question`, `answer`, and
optionally `reasoning`, `category`, `tests` (code) and `choices`. Either a train and an eval file, or one
file split by a seed (per category, so every category is evaluated). A bad row fails with the file and
line before anything is written; so does a reference the category's scorer cannot use.

The eval split is held out: it is never trained on and never shown to the teacher, train items that
repeat an eval question are dropped from train, and generated rows are always decontaminated against it."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthloop.config import DatasetTaskConfig, RecipeError, ScorerConfig, error_line
from synthloop.curation.decontaminate import NgramIndex
from synthloop.records import content_id
from synthloop.scoring.base import Scorer, score_by_category
from synthloop.scoring.item import Score, TaskItem
from synthloop.storage.input_files import MAX_FIELD_BYTES, OVERSIZE, InputFileError, read_rows

ONE_CATEGORY = "all"  # the category of every item when the eval file has no category column
MAX_CATEGORY_CHARS = 100
MAX_CHOICES = 26


MakeScorer = Callable[[ScorerConfig], Scorer]


@dataclass
class DatasetSource:
    train: list[TaskItem]
    eval: list[TaskItem]
    descriptions: dict[str, str]
    scorers: dict[str, Scorer]  # per category
    notices: list[str] = field(default_factory=list)
    kind: str = "dataset"

    def categories(self) -> dict[str, str]:
        return {c: self.descriptions.get(c, "") for c in sorted({item.category for item in self.eval})}

    def eval_items(self) -> list[TaskItem]:
        return self.eval

    def train_by_category(self) -> dict[str, list[TaskItem]]:
        grouped: dict[str, list[TaskItem]] = {}
        for item in self.train:
            grouped.setdefault(item.category, []).append(item)
        return grouped

    def score(self, outputs: Sequence[str], items: Sequence[TaskItem]) -> list[Score]:
        return score_by_category(outputs, items, self.scorers.__getitem__)


def load_dataset_source(cfg: DatasetTaskConfig, make_scorer: MakeScorer, seed: int) -> DatasetSource:
    """Read, check and split the task's files; every problem is a one-line `RecipeError` or `InputFileError`."""
    notices: list[str] = []
    if cfg.path is not None:
        rows = read_task_rows(cfg.path, "task.path")
        one_category = not any(has_category(row) for row, _ in rows)
        items = once_each([task_item(row, where, one_category) for row, where in rows], "task.path", notices)
        train, evaluation = split(items, cfg.eval_share, cfg.split_seed)
        notices.append(
            f"task.path {cfg.path}: split with seed {cfg.split_seed} into {len(train)} train and "
            f"{len(evaluation)} eval items ({cfg.eval_share:.0%} of each category held out)"
        )
    else:
        assert cfg.train is not None and cfg.eval is not None  # the config checks it
        eval_rows = read_task_rows(cfg.eval, "task.eval")
        one_category = not any(has_category(row) for row, _ in eval_rows)
        evaluation = once_each([task_item(row, where, one_category) for row, where in eval_rows], "task.eval", notices)
        train = [task_item(row, where, one_category) for row, where in read_task_rows(cfg.train, "task.train")]
    if one_category:
        notices.append(
            f"the eval data has no 'category' column: the whole task is one category {ONE_CATEGORY!r}"
            + (" (train categories are ignored)" if cfg.path is None else "")
        )
    scorers = category_scorers(cfg, {item.category for item in evaluation}, make_scorer)
    for item, where in ((i, "eval") for i in evaluation):
        check_reference(scorers[item.category], item, where)
    held_out = NgramIndex()  # the curation's decontamination rule: light edits of an eval question count
    held_out.add("eval", [item.question for item in evaluation])
    kept_train = [item for item in train if held_out.find(item.question, item.question) is None]
    if len(kept_train) < len(train):
        notices.append(
            f"{len(train) - len(kept_train)} train items repeat an eval question (or a light edit of one): "
            "dropped from train"
        )
    train = kept_train
    for item in train:
        if item.category in scorers:
            check_reference(scorers[item.category], item, "train")
    evaluation = limit_per_category(evaluation, cfg.eval_per_category, seed)
    train_categories, eval_categories = {i.category for i in train}, {i.category for i in evaluation}
    if eval_only := sorted(eval_categories - train_categories):
        notices.append(
            f"categories in eval but not in train: {', '.join(eval_only)}; they get topic-driven exercises only"
        )
    if train_only := sorted(train_categories - eval_categories):
        notices.append(f"categories in train but not in eval: {', '.join(train_only)}; not evaluated, no budget")
    descriptions = {name: spec.description for name, spec in cfg.categories.items()}
    return DatasetSource(train, evaluation, descriptions, scorers, notices)


def once_each(items: list[TaskItem], what: str, notices: list[str]) -> list[TaskItem]:
    """Rows that repeat another (same question, answer and category) kept once: scored twice, they would
    weigh double in their category's accuracy."""
    unique = list({item.id: item for item in items}.values())
    if len(unique) < len(items):
        notices.append(f"{what}: {len(items) - len(unique)} rows repeat another row; each is kept once")
    return unique


def read_task_rows(path: str, what: str) -> list[tuple[dict[str, Any], str]]:
    folder = Path(path)
    if folder.is_dir():
        return read_saved_dataset(folder, what)
    try:
        return read_rows(path, what, keep_oversize=True)
    except InputFileError as err:
        raise InputFileError(f"{err} (a task file is JSONL, Parquet, or a datasets.save_to_disk folder)") from None


def read_saved_dataset(folder: Path, what: str) -> list[tuple[dict[str, Any], str]]:
    """A folder written by `Dataset.save_to_disk` (one split; a DatasetDict names its splits)."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(folder))
    except (FileNotFoundError, ValueError, OSError) as err:
        reason = error_line(err)
        raise InputFileError(
            f"{what} {folder}: a folder must be written by datasets' save_to_disk ({reason})"
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        splits = ", ".join(str(folder / name) for name in loaded)
        raise InputFileError(f"{what} {folder} holds several splits; give the folder of one: {splits}")
    rows = []
    for number, row in enumerate(loaded, start=1):
        where = f"{folder} row {number}"
        big = next((k for k, v in row.items() if isinstance(v, str) and len(v.encode()) > MAX_FIELD_BYTES), None)
        rows.append(({OVERSIZE: f"field {big!r} over {MAX_FIELD_BYTES} bytes"} if big else row, where))
    if not rows:
        raise InputFileError(f"{what} {folder} has no rows")
    return rows


def has_category(row: dict[str, Any]) -> bool:
    return row.get("category") not in (None, "")


def task_item(row: dict[str, Any], where: str, one_category: bool) -> TaskItem:
    if OVERSIZE in row:
        raise InputFileError(f"{where}: {row[OVERSIZE]}, over the {MAX_FIELD_BYTES}-byte cap on one field")
    question = row.get("question")
    if question is not None and not isinstance(question, str):
        raise InputFileError(f"{where}: 'question' must be text, got {type(question).__name__}")
    if not isinstance(question, str) or not question.strip():
        raise InputFileError(f"{where}: missing or empty 'question' (a task row needs 'question' and 'answer')")
    answer = row.get("answer")
    if isinstance(answer, float) and not math.isfinite(answer):  # pandas' missing value, JSON NaN, 1e999
        raise InputFileError(f"{where}: 'answer' is {answer} (a missing value?); every row needs a real answer")
    if isinstance(answer, int | float) and not isinstance(answer, bool):
        answer = str(answer)  # a JSON number: 72 is the answer "72"
    if answer is not None and not isinstance(answer, str):
        raise InputFileError(f"{where}: 'answer' must be text or a number, got {type(answer).__name__}")
    if not isinstance(answer, str) or not answer.strip():
        raise InputFileError(f"{where}: missing or empty 'answer' (a task row needs 'question' and 'answer')")
    reasoning = optional_text(row, "reasoning", where) or ""
    tests = optional_text(row, "tests", where)
    category = ONE_CATEGORY if one_category else row_category(row, where)
    return TaskItem(
        id=content_id("task", category, question, answer),
        question=question,
        answer=answer.strip(),
        category=category,
        reasoning=reasoning,
        tests=tests,
        choices=row_choices(row, where),
    )


def optional_text(row: dict[str, Any], key: str, where: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputFileError(f"{where}: {key!r} must be text, got {type(value).__name__}")
    return value


def row_category(row: dict[str, Any], where: str) -> str:
    value = row.get("category")
    if value in (None, ""):
        raise InputFileError(f"{where}: no 'category', but the eval data has categories; give every row one")
    if not isinstance(value, str) or len(value) > MAX_CATEGORY_CHARS or not value.strip():
        raise InputFileError(f"{where}: 'category' must be a name of 1 to {MAX_CATEGORY_CHARS} characters")
    if not value.isprintable():  # a line break in a name would forge lines in the log and the teacher's prompt
        raise InputFileError(f"{where}: 'category' {value[:40]!r} holds a line break or control character")
    return value.strip()


def row_choices(row: dict[str, Any], where: str) -> tuple[str, ...] | None:
    value = row.get("choices")
    if value is None:
        return None
    if not isinstance(value, list) or not 2 <= len(value) <= MAX_CHOICES:
        raise InputFileError(f"{where}: 'choices' must be a list of 2 to {MAX_CHOICES} options")
    if not all(isinstance(option, str) and option.strip() for option in value):
        raise InputFileError(f"{where}: every one of 'choices' must be non-empty text")
    return tuple(value)


def category_scorers(cfg: DatasetTaskConfig, categories: set[str], make_scorer: MakeScorer) -> dict[str, Scorer]:
    if unknown := sorted(set(cfg.categories) - categories):
        known = ", ".join(sorted(categories))
        raise RecipeError(f"task.categories: {', '.join(unknown)} not in the eval data (its categories: {known})")
    built: dict[str, Scorer] = {}
    scorers = {}
    for category in sorted(categories):
        spec = cfg.categories.get(category)
        config = spec.scorer if spec is not None and spec.scorer is not None else cfg.scorer
        key = config.model_dump_json()
        if key not in built:
            built[key] = make_scorer(config)
        scorers[category] = built[key]
    return scorers


def check_reference(scorer: Scorer, item: TaskItem, split_name: str) -> None:
    problem = scorer.check_reference(item)
    if problem:
        raise InputFileError(f"{split_name} item {item.question[:60]!r} (category {item.category}): {problem}")


def split(items: list[TaskItem], eval_share: float, seed: int) -> tuple[list[TaskItem], list[TaskItem]]:
    """Per category: a seeded shuffle, `eval_share` held out (at least one item, and at least one left
    to train on where the category has two or more)."""
    grouped: dict[str, list[TaskItem]] = {}
    for item in items:
        grouped.setdefault(item.category, []).append(item)
    train, evaluation = [], []
    for category in sorted(grouped):
        group = grouped[category][:]
        random.Random(f"split/{seed}/{category}").shuffle(group)
        held = max(1, round(len(group) * eval_share))
        if len(group) > 1:
            held = min(held, len(group) - 1)
        evaluation += group[:held]
        train += group[held:]
    return train, evaluation


def limit_per_category(items: list[TaskItem], limit: int | None, seed: int) -> list[TaskItem]:
    if limit is None:
        return items
    grouped: dict[str, list[TaskItem]] = {}
    for item in items:
        grouped.setdefault(item.category, []).append(item)
    kept = []
    for category in sorted(grouped):
        group = grouped[category]
        kept += group if len(group) <= limit else random.Random(f"eval/{seed}/{category}").sample(group, limit)
    return kept
