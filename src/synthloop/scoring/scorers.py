"""The scorers a task names (`task.scorer`, per category `categories.<name>.scorer`), built by name.

| scorer | 1.0 when |
|---|---|
| `exact` | the final answer equals the reference (case, spacing, a closing full stop free; numbers by value) |
| `numeric` | the final answer is a number within `tolerance` of the reference (`values.py`) |
| `math` | the final answer equals the reference as mathematics, by math-verify (`symbolic.py`) |
| `choice` | the final answer names the reference's option of the item's `choices` (`choice.py`) |
| `regex` | the final answer fullmatches the reference, a regular expression (`pattern.py`) |
| `code` | the reply's code passes the item's `tests` in the sandbox (`code.py`) |
| `judge` | an LLM scores the reply against the reference at least `threshold` (`judge.py`) |

The final answer is found by `skills/final_answer.py` (every marking real models use; a hedge or a
negation states none and scores 0 with the reason)."""

from __future__ import annotations

from synthloop.config import ScorerConfig
from synthloop.registry import SCORERS
from synthloop.scoring.base import Scorer
from synthloop.scoring.context import ScoringContext


def make_scorer(config: ScorerConfig, context: ScoringContext | None = None) -> Scorer:
    """The scorer `config` names, with its settings. `context`: where a judge's calls are cached (see
    `ScoringContext`); None is a context of its own, uncached."""
    return SCORERS.get(config.name).from_config(config, context or ScoringContext())
