"""Rows a user hands us (golden sets, evaluation sets, labelled audit samples) from JSONL or Parquet.
A bad file or line raises `InputFileError` naming the file and line, before anything uses it."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO


class InputFileError(ValueError):
    pass


MAX_FIELD_BYTES = 1 << 20  # one field of a user's row; a bigger one is a mistake or an attack, never data
MAX_LINE_BYTES = 8 << 20  # one JSONL line (several fields); a longer one is not even parsed
OVERSIZE = "_oversize"  # key of the stand-in row for an oversize one: what was too big


def read_rows(path: str | Path, what: str, keep_oversize: bool = False) -> list[tuple[dict[str, Any], str]]:
    """Each row with where it came from ("FILE line N" / "FILE row N"). `what` names the file's role in
    errors. A row with a field over `MAX_FIELD_BYTES` is never held whole: it is skipped with a warning
    line, or with `keep_oversize` returned as a stand-in `{OVERSIZE: why}` so the caller can reject it
    with a reason."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{what} not found: {path}")
    if path.suffix == ".parquet":
        rows = read_parquet_rows(path, what)
    elif path.suffix in (".jsonl", ".json"):
        rows = read_jsonl_rows(path, what)
    else:
        raise InputFileError(f"{what} {path}: use a .jsonl or .parquet file")
    oversize = [(row, where) for row, where in rows if OVERSIZE in row]
    if oversize and not keep_oversize:
        print(
            f"synthloop: warning: {what} {path}: {len(oversize)} rows skipped with a field over {MAX_FIELD_BYTES} "
            f"bytes (first: {oversize[0][1]}, {oversize[0][0][OVERSIZE]})",
            file=sys.stderr,
        )
        rows = [(row, where) for row, where in rows if OVERSIZE not in row]
    if not rows:
        raise InputFileError(f"{what} {path} has no rows")
    return rows


def read_jsonl_rows(path: Path, what: str) -> list[tuple[dict[str, Any], str]]:
    """Lines split on b"\\n" only (U+2028, U+2029 and NEL are valid inside JSON strings), each read with
    a bounded readline."""
    rows = []
    try:
        with open(path, "rb") as handle:
            for number, line in enumerate(bounded_lines(handle), start=1):
                where = f"{path} line {number}"
                if isinstance(line, int):
                    rows.append(({OVERSIZE: f"a line of {line} bytes"}, where))
                    continue
                if line.strip():
                    rows.append((parse_line(line, f"cannot read {what} {where}"), where))
    except OSError as err:
        raise InputFileError(f"cannot read {what} {path}: {err}") from None
    return rows


def bounded_lines(handle: BinaryIO) -> Iterator[bytes | int]:
    """Each line without its newline, or, for a line over `MAX_LINE_BYTES`, its length (read through
    and dropped)."""
    while line := handle.readline(MAX_LINE_BYTES + 1):
        if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
            yield line.rstrip(b"\n").rstrip(b"\r")
            continue
        size = len(line)
        while (rest := handle.readline(1 << 20)) and not rest.endswith(b"\n"):
            size += len(rest)
        yield size + len(rest)


def parse_line(line: bytes, where: str) -> dict[str, Any]:
    try:
        row = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise InputFileError(f"{where}: not UTF-8 (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise InputFileError(f"{where}: not valid JSON ({err.msg})") from None
    except RecursionError:
        raise InputFileError(f"{where}: nested too deeply") from None
    if not isinstance(row, dict):
        raise InputFileError(f"{where}: each line must be a JSON object")
    big = [(key, len(value.encode("utf-8", "replace"))) for key, value in row.items() if isinstance(value, str)]
    if too_big := [(key, size) for key, size in big if size > MAX_FIELD_BYTES]:
        return {OVERSIZE: f"field {too_big[0][0]!r} of {too_big[0][1]} bytes"}
    return row


def read_parquet_rows(path: Path, what: str) -> list[tuple[dict[str, Any], str]]:
    """String lengths are checked in Arrow, per row, before anything becomes a Python object."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise InputFileError(f"cannot read {what} {path}: {err}") from None
    too_big = pa.array([False] * table.num_rows)
    reasons: dict[int, str] = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or pa.types.is_binary(column.type):
            sizes = pc.fill_null(pc.binary_length(column), 0)
            over = pc.greater(sizes, MAX_FIELD_BYTES)
            for index in pc.indices_nonzero(over).to_pylist():
                reasons.setdefault(index, f"field {name!r} of {sizes[index].as_py()} bytes")
            too_big = pc.or_(too_big, over)
    kept = table.filter(pc.invert(too_big)).to_pylist()
    rows, kept_rows = [], iter(kept)
    for i in range(table.num_rows):
        where = f"{path} row {i + 1}"
        rows.append(({OVERSIZE: reasons[i]}, where) if i in reasons else (next(kept_rows), where))
    return rows


def text_field(row: dict[str, Any], where: str, fields: tuple[str, ...]) -> str:
    """The first of `fields` the row has as non-empty text."""
    for name in fields:
        value = row.get(name)
        if isinstance(value, str) and value.strip():
            return value
    raise InputFileError(f"{where}: needs one of {', '.join(repr(f) for f in fields)} as non-empty text")
