"""The run directory contract (DESIGN.md): paths, the manifest, and the resume check."""

from __future__ import annotations

import platform
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from synthloop.config import Recipe
from synthloop.storage.atomic import read_json, remove_temporaries, write_json


class RunDirError(RuntimeError):
    pass


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def cache(self) -> Path:
        return self.root / "cache" / "responses.sqlite"

    def round(self, number: int) -> Path:
        return self.root / "rounds" / f"{number:02d}"


PACKAGES = ("synthloop", "torch", "transformers", "tokenizers", "pyarrow", "pydantic")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def open_run(root: Path, recipe: Recipe, resume: bool) -> tuple[RunDir, dict[str, Any]]:
    """Create a new run directory, or reopen one for `--resume` after checking it is the same recipe."""
    run = RunDir(root)
    if resume:
        if not run.manifest.exists():
            raise RunDirError(f"nothing to resume in {root}: no manifest.json (start it without --resume)")
        manifest = read_json(run.manifest)
        if manifest.get("recipe_hash") != recipe.hash():
            raise RunDirError(
                f"{root} belongs to a different recipe (hash {manifest.get('recipe_hash')}, this one {recipe.hash()}); "
                "resume it with the recipe it was started with, or choose a new --run-dir"
            )
        remove_temporaries(root)
        return run, manifest
    if root.exists() and any(root.iterdir()):
        raise RunDirError(
            f"{root} already exists and is not empty; add --resume to continue it, or choose a new --run-dir"
        )
    manifest = {
        "run_id": uuid.uuid4().hex,  # tags this run's calls in a response cache shared across runs
        "recipe": recipe.model_dump(mode="json"),
        "recipe_hash": recipe.hash(),
        "versions": package_versions(),
        "rounds": {},
    }
    write_json(run.manifest, manifest)
    return run, manifest


def set_round_status(run: RunDir, manifest: dict[str, Any], number: int, status: str) -> None:
    manifest["rounds"][str(number)] = status
    write_json(run.manifest, manifest)
