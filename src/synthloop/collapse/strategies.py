"""Data strategies of the collapse lab, by name: what each generation trains on.

- `replace`: only the newest generation's synthetic data (the setting where models collapse);
- `accumulate`: the real data and every generation's synthetic data so far;
- `mix:F`: a fraction F of fresh real data, the rest the newest synthetic data;
- `accumulate-subsample`: accumulate, but train on a fixed-size random sample of the pool;
- `verify+S` (any of the above as S; `verify` alone is `verify+replace`): only the synthetic data a
  verifier passes is kept (the experiments with a verifier: skills and text)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

NAMES = ("replace", "accumulate", "mix:F", "accumulate-subsample", "verify", "verify+accumulate")


class StrategyError(ValueError):
    """An unknown or malformed strategy name; the message suggests the closest one."""


class CorpusError(ValueError):
    """A corpus the text experiment cannot use; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Strategy:
    kind: str  # replace, accumulate, mix, accumulate-subsample
    fresh_real: float = 0.0  # mix: the share of each generation's data that is fresh real data
    verify: bool = False  # only verified synthetic data is kept

    @property
    def name(self) -> str:
        base = f"mix:{self.fresh_real:g}" if self.kind == "mix" else self.kind
        return f"verify+{base}" if self.verify else base


def parse_strategy(text: str) -> Strategy:
    name = text.strip()
    if name == "verify":
        return Strategy("replace", verify=True)
    if name.startswith("verify+"):
        inner = parse_strategy(name[len("verify+") :])
        if inner.verify:
            raise StrategyError(f"strategy {text!r}: verify appears twice")
        return Strategy(inner.kind, inner.fresh_real, verify=True)
    if name in ("replace", "accumulate", "accumulate-subsample"):
        return Strategy(name)
    if name.startswith("mix:"):
        try:
            share = float(name[4:])
        except ValueError:
            share = -1.0
        if not 0.0 < share <= 1.0:
            raise StrategyError(f"strategy {text!r}: mix:F needs F, the share of fresh real data, in (0, 1]")
        return Strategy("mix", share)
    close = difflib.get_close_matches(name, NAMES, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise StrategyError(f"unknown strategy {text!r}{hint} known: {', '.join(NAMES)}")
