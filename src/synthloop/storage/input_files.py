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
BOM = b"\xef\xbb\xbf"


def read_rows(path: str | Path, what: str, keep_oversize: bool = False) -> list[tuple[dict[str, Any], str]]:
    """Each row with where it came from ("FILE line N" / "FILE row N"). `what` names the file's role in
    errors. A row with a field over `MAX_FIELD_BYTES` is never held whole: it is skipped with a warning
    line, or with `keep_oversize` returned as a stand-in `{OVERSIZE: why}` so the caller can reject it
    with a reason."""
    path = Path(path)
    rows = list(iter_rows(path, what))
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


def iter_rows(path: Path, what: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Each row with where it came from, read as it is needed (a file of any size is read with the
    memory of one batch); a row with a field over `MAX_FIELD_BYTES` comes as a stand-in `{OVERSIZE: why}`.
    The path is checked now; a bad line raises when it is reached."""
    if not path.is_file():
        problem = "is not a regular file" if path.exists() else "not found"  # a fifo or device: never opened
        raise InputFileError(f"{what} {problem}: {path}")
    if path.suffix == ".parquet":
        return parquet_rows(path, what)
    if path.suffix in (".jsonl", ".json"):
        return jsonl_rows(path, what)
    raise InputFileError(f"{what} {path}: use a .jsonl or .parquet file")


def read_jsonl_rows(path: Path, what: str) -> list[tuple[dict[str, Any], str]]:
    return list(jsonl_rows(path, what))


def jsonl_rows(path: Path, what: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Lines split on b"\\n" only (U+2028, U+2029 and NEL are valid inside JSON strings), each read with
    a bounded readline."""
    try:
        with open(path, "rb") as handle:
            for number, line in enumerate(bounded_lines(handle), start=1):
                where = f"{path} line {number}"
                if isinstance(line, int):
                    yield {OVERSIZE: f"a line of {line} bytes"}, where
                    continue
                if number == 1:
                    line = line.removeprefix(BOM)  # editors on Windows write one; it is not part of the row
                if line.strip():
                    yield parse_line(line, f"cannot read {what} {where}"), where
    except OSError as err:
        raise InputFileError(f"cannot read {what} {path}: {err}") from None


def read_text_lines(path: Path, what: str) -> list[tuple[str, str]]:
    """Each non-blank line of a plain-text file, stripped, with where it came from: split on b"\\n" only,
    read with a bounded readline, a line over `MAX_FIELD_BYTES` refused before it is decoded."""
    lines = []
    try:
        with open(path, "rb") as handle:
            for number, line in enumerate(bounded_lines(handle), start=1):
                where = f"{path} line {number}"
                size = line if isinstance(line, int) else len(line)
                if size > MAX_FIELD_BYTES:
                    raise InputFileError(f"{what} {where}: {size} bytes, over the {MAX_FIELD_BYTES}-byte cap on a line")
                try:
                    text = line.removeprefix(BOM if number == 1 else b"").decode("utf-8").strip()
                except UnicodeDecodeError as err:
                    raise InputFileError(f"{what} {where}: not UTF-8 (byte {err.start})") from None
                if text:
                    lines.append((text, where))
    except OSError as err:
        raise InputFileError(f"cannot read {what} {path}: {err}") from None
    return lines


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
    except ValueError:  # the one other thing json.loads raises: an integer Python will not convert
        raise InputFileError(f"{where}: a number of over {sys.get_int_max_str_digits()} digits") from None
    if not isinstance(row, dict):
        raise InputFileError(f"{where}: each line must be a JSON object")
    for key, value in row.items():
        size = value_size(value, f"{where}: field {key!r}")
        if size > MAX_FIELD_BYTES:
            return {OVERSIZE: f"field {key!r} of {size} bytes"}
    return row


def value_size(value: Any, where: str) -> int:
    """UTF-8 bytes of the text in a parsed JSON value, nested lists and objects included (their keys too).
    A lone surrogate escape ("\\ud800") is valid JSON but not text: refused, never silently replaced."""
    try:
        if isinstance(value, str):
            return len(value.encode("utf-8"))
        if isinstance(value, list):
            return sum(value_size(item, where) for item in value)
        if isinstance(value, dict):
            return sum(value_size(key, where) + value_size(item, where) for key, item in value.items())
    except UnicodeEncodeError as err:
        raise InputFileError(f"{where} holds a lone surrogate ({err.object[err.start]!a}), not text") from None
    except RecursionError:
        raise InputFileError(f"{where} is nested too deeply") from None
    return 8  # a number, true, false or null


def parquet_rows(
    path: Path, what: str, row_groups: list[int] | None = None, first_row: int = 0
) -> Iterator[tuple[dict[str, Any], str]]:
    """Read in batches of each row group (the given ones, `first_row` rows into the file, or all); the
    text in every cell (nested lists, maps and structs included) is measured in Arrow, and only the rows
    under the cap become Python objects."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synthloop.storage.shards import parquet_batches

    done = first_row
    try:
        with pq.ParquetFile(path) as parquet:
            for batch in parquet_batches(parquet, PARQUET_BATCH_ROWS, row_groups=row_groups):
                rows = batch_rows(batch, path, done)
                done += len(rows)
                yield from rows
    except (OSError, pa.ArrowException) as err:
        raise InputFileError(f"cannot read {what} {path}: {err}") from None
    except UnicodeDecodeError:  # Parquet does not check that its text columns hold UTF-8
        raise InputFileError(f"cannot read {what} {path}: text that is not UTF-8 in rows {done + 1} on") from None


PARQUET_BATCH_ROWS = 1024  # rows decoded at a time: an oversize cell is held at most with its batch


def batch_rows(batch: Any, path: Path, first: int) -> list[tuple[dict[str, Any], str]]:
    import numpy as np

    reasons: dict[int, str] = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        sizes = cell_sizes(column)
        for index in np.flatnonzero(sizes > MAX_FIELD_BYTES):
            reasons.setdefault(int(index), f"field {name!r} of {int(sizes[index])} bytes")
    keep = np.ones(batch.num_rows, dtype=bool)
    keep[list(reasons)] = False
    kept = iter(batch.filter(keep).to_pylist())
    return [
        ({OVERSIZE: reasons[index]} if index in reasons else next(kept), f"{path} row {first + index + 1}")
        for index in range(batch.num_rows)
    ]


def cell_sizes(array: Any) -> Any:
    """Bytes of text (string and binary values) in each cell of an Arrow array, nested values summed."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if pa.types.is_map(kind):  # a map is a list of key/value structs
        array, kind = array.cast(pa.list_(pa.struct([kind.key_field, kind.item_field]))), None
    if kind is None or pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        parents = pc.list_parent_indices(array).to_numpy(zero_copy_only=False)
        inner = cell_sizes(pc.list_flatten(array))
        return np.bincount(parents, weights=inner, minlength=len(array)).astype(np.int64)
    if pa.types.is_dictionary(kind):  # each cell is an index into the distinct values
        if len(array.dictionary) == 0:
            return np.zeros(len(array), np.int64)
        sizes = cell_sizes(array.dictionary)[pc.fill_null(array.indices, 0).to_numpy(zero_copy_only=False)]
        return np.where(array.is_null().to_numpy(zero_copy_only=False), 0, sizes)
    if pa.types.is_struct(kind):
        return sum((cell_sizes(child) for child in array.flatten()), np.zeros(len(array), np.int64))
    if any(test(kind) for test in text_types()):
        return pc.fill_null(pc.binary_length(array), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    return np.zeros(len(array), np.int64)


def text_types() -> tuple[Any, ...]:
    import pyarrow as pa

    names = ("is_string", "is_large_string", "is_binary", "is_large_binary", "is_string_view", "is_binary_view")
    return tuple(getattr(pa.types, name) for name in names if hasattr(pa.types, name))


def text_field(row: dict[str, Any], where: str, fields: tuple[str, ...]) -> str:
    """The first of `fields` the row has as non-empty text."""
    for name in fields:
        value = row.get(name)
        if isinstance(value, str) and value.strip():
            return value
    raise InputFileError(f"{where}: needs one of {', '.join(repr(f) for f in fields)} as non-empty text")
