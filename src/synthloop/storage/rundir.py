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


class EmptyOutputError(RuntimeError):
    """A round that kept no row, or a generate step with no usable row: stopped, never "done"."""


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
    from synthloop.curation.pipeline import curation_warnings

    content = {
        "recipe": recipe.model_dump(mode="json"),
        "versions": package_versions(),
        "warnings": curation_warnings(recipe.curation),
        "rounds": {},
    }
    return RunDir(root), open_manifest(root, "recipe", recipe.hash(), content, resume)


def open_manifest(root: Path, what: str, identity: str, content: dict[str, Any], resume: bool) -> dict[str, Any]:
    """The manifest of a run or job directory: written fresh (with a new run id, the identity hash
    under `<what>_hash` and `content`), or read back for `--resume` after checking the identity."""
    from synthloop.storage.lock import lock_run_dir, unlock_run_dir

    if root.exists() and not root.is_dir():
        raise RunDirError(f"{root} is a file, not a run directory; choose another --run-dir")
    if root.exists():
        lock_run_dir(root)  # a live run in it is named before anything else is said
    try:
        return read_or_write_manifest(root, what, identity, content, resume)
    except BaseException:
        unlock_run_dir(root)  # refused: the directory is left as it was
        raise


def read_or_write_manifest(
    root: Path, what: str, identity: str, content: dict[str, Any], resume: bool
) -> dict[str, Any]:
    from synthloop.storage.lock import LOCK_NAME, lock_run_dir

    path, key = root / "manifest.json", f"{what}_hash"
    if resume:
        if not path.exists():
            raise RunDirError(f"nothing to resume in {root}: no manifest.json (start it without --resume)")
        manifest = read_manifest(path)
        if manifest.get(key) != identity:
            raise RunDirError(
                f"{root} belongs to a different {what} (hash {manifest.get(key)}, this one {identity}); "
                f"resume it with the {what} it was started with, or choose a new --run-dir"
            )
        remove_temporaries(root)
        return manifest
    lock_run_dir(root)  # first: a run that started and finished meanwhile is seen below
    if any(p.name != LOCK_NAME for p in root.iterdir()):
        raise RunDirError(
            f"{root} already exists and is not empty; add --resume to continue it, or choose a new --run-dir"
        )
    # run_id tags this run's calls in a response cache shared across runs.
    manifest = {"run_id": uuid.uuid4().hex, key: identity, **content}
    write_json(path, manifest)
    return manifest


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = read_json(path)
    except (OSError, ValueError) as err:
        manifest = err
    if not isinstance(manifest, dict) or not isinstance(manifest.get("rounds", {}), dict):
        why = f" ({' '.join(str(manifest).split())[:120]})" if isinstance(manifest, Exception) else ""
        raise RunDirError(
            f"{path} is damaged{why}; restore it, or start a new --run-dir with --cache {path.parent}/cache/"
            "responses.sqlite to reuse the answers already paid for"
        )
    return manifest


def set_round_status(run: RunDir, manifest: dict[str, Any], number: int, status: str) -> None:
    manifest["rounds"][str(number)] = status
    write_json(run.manifest, manifest)
