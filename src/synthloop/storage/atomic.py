"""Atomic writes: a reader (or a resumed run) sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary path beside `path`, fsync it, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if err.filename is not None:
            raise
        # Writers such as Arrow's say "File too large" or "No space left" without the file: name it, so
        # the one line a full disk gets says where.
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n"))


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def replace_dir(target: Path, build: Callable[[Path], None]) -> None:
    """Build a directory under a temporary name, then rename it to `target` (replacing any old one)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def remove_temporaries(directory: Path) -> int:
    """Delete what a killed writer left behind (hidden `.*.tmp` files and `.name.*` dirs)."""
    removed = 0
    if not directory.exists():
        return 0
    for leftover in directory.rglob(".*"):
        if leftover.is_dir() and leftover.name.count(".") >= 2:
            shutil.rmtree(leftover, ignore_errors=True)
            removed += 1
        elif leftover.is_file() and leftover.name.endswith(".tmp"):
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed
