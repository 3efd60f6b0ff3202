"""A round's training state in its `work` folder, so a kill mid-round resumes mid-round.

The state is kept with a digest of what the round is made from (its rows, the student it continues,
the student settings and seed); a state made from anything else is ignored and the round starts over."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from synthloop.records import Record
from synthloop.storage.atomic import atomic_write

STATE = "train_state.pt"


def round_digest(recipe: Any, rows: Sequence[Record], previous: Path | None, seed: int) -> str:
    h = hashlib.sha256()
    h.update(recipe.student.model_dump_json().encode())
    h.update(f"seed={seed}\n".encode())
    h.update(folder_digest(previous).encode())
    for row in rows:
        h.update(json.dumps([row.id, row.question, row.reasoning, row.answer]).encode() + b"\n")
    return h.hexdigest()


def folder_digest(folder: Path | None) -> str:
    """The previous student by its files' names, sizes and modification times (its weights are not re-read)."""
    if folder is None:
        return "none"
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    listing = [(str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return hashlib.sha256(json.dumps([str(folder), listing]).encode()).hexdigest()


class FolderCheckpoints:
    """trainer.Checkpoints kept as one file in `work`, replaced atomically at each save."""

    def __init__(self, work: Path, inputs: str) -> None:
        self.path, self.inputs = Path(work) / STATE, inputs

    def load(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # a damaged state (torch raises many kinds): start the round over
            return None
        return saved["state"] if isinstance(saved, dict) and saved.get("inputs") == self.inputs else None

    def save(self, state: dict[str, Any]) -> None:
        atomic_write(self.path, lambda tmp: torch.save({"inputs": self.inputs, "state": state}, tmp))
