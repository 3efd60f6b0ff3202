"""Rows a user hands us (golden sets, evaluation sets, labelled audit samples) from JSONL or Parquet.
A bad file or line raises `InputFileError` naming the file and line, before anything uses it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class InputFileError(ValueError):
    pass


def read_rows(path: str | Path, what: str) -> list[tuple[dict[str, Any], str]]:
    """Each row with where it came from ("FILE line N" / "FILE row N"). `what` names the file's role in errors."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{what} not found: {path}")
    if path.suffix == ".parquet":
        rows = read_parquet_rows(path, what)
    elif path.suffix in (".jsonl", ".json"):
        rows = read_jsonl_rows(path, what)
    else:
        raise InputFileError(f"{what} {path}: use a .jsonl or .parquet file")
    if not rows:
        raise InputFileError(f"{what} {path} has no rows")
    return rows


def read_jsonl_rows(path: Path, what: str) -> list[tuple[dict[str, Any], str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputFileError(f"cannot read {what} {path}: {err}") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputFileError(f"{where}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise InputFileError(f"{where}: each line must be a JSON object")
        rows.append((row, where))
    return rows


def read_parquet_rows(path: Path, what: str) -> list[tuple[dict[str, Any], str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise InputFileError(f"cannot read {what} {path}: {err}") from None
    return [(row, f"{path} row {i + 1}") for i, row in enumerate(table.to_pylist())]


def text_field(row: dict[str, Any], where: str, fields: tuple[str, ...]) -> str:
    """The first of `fields` the row has as non-empty text."""
    for name in fields:
        value = row.get(name)
        if isinstance(value, str) and value.strip():
            return value
    raise InputFileError(f"{where}: needs one of {', '.join(repr(f) for f in fields)} as non-empty text")
