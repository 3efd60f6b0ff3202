"""What scorers need besides their settings: for a judge scorer, where its calls are cached and whether to
check its model answers when it is built."""

from __future__ import annotations

from dataclasses import dataclass, field

from synthloop.storage.response_cache import ResponseCache
from synthloop.teachers.base import Teacher


@dataclass
class ScoringContext:
    """Built before the task source, so a judge model that cannot be reached fails before anything is
    written; `attach` the run's response cache once the run directory is open (judge calls made before
    that are not cached). `check=False` builds a judge without calling it (a dry run sends nothing)."""

    cache: ResponseCache | None = None
    run_id: str = ""
    check: bool = True
    judges: dict[str, Teacher] = field(default_factory=dict)  # built judge models, by their settings (one each)

    def attach(self, cache: ResponseCache | None, run_id: str) -> None:
        self.cache, self.run_id = cache, run_id
