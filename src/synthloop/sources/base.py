"""What every task source gives the loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from synthloop.scoring.item import Score, TaskItem


class TaskSource(Protocol):
    kind: str  # "skills" or "dataset"
    notices: list[str]  # what the user must be told once (a missing category column, an eval-only category)

    def categories(self) -> dict[str, str]:
        """Every evaluated category with its description (what the teacher writes exercises from)."""
        ...

    def eval_items(self) -> list[TaskItem]:
        """The fixed held-out items the student is evaluated on every round; never trained on, never
        shown to the teacher."""
        ...

    def score(self, outputs: Sequence[str], items: Sequence[TaskItem]) -> list[Score]:
        """Each output scored against its item with the item's category's scorer."""
        ...
