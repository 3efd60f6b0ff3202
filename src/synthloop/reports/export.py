"""`synthloop export RUN --format hf|parquet|jsonl --out DIR`: a run's kept rows, human decisions applied,
as a dataset that loads with `datasets`, with its dataset card.

- hf: `datasets.Dataset.save_to_disk` (load with `load_from_disk(DIR)`);
- parquet: `DIR/data/train-00000-of-0000N.parquet` (load with `load_dataset("parquet", data_dir=DIR)`
  or `load_dataset(DIR)`: the card's header names the files);
- jsonl: `DIR/data/train.jsonl`.

The folder is built beside DIR and moved into place whole, so a killed export leaves no half dataset."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synthloop.records import SCHEMA, Record
from synthloop.reports.card import render_card
from synthloop.reports.dataset import dataset_facts, reviewed_run_rows
from synthloop.review.decisions import ReviewError
from synthloop.review.rounds import check_run, finished_rounds
from synthloop.storage.atomic import replace_dir
from synthloop.training.format import row_conversation

FORMATS = ("hf", "parquet", "jsonl")
PARQUET_ROWS = 100_000  # rows per Parquet file
EXPORTED = (  # the record's own columns a dataset keeps, with the record's types (records.SCHEMA)
    "id", "round", "source", "kind", "skill", "difficulty", "question", "reasoning", "answer", "reference_answer",
    "messages", "teacher_backend", "teacher_model", "task", "template_version", "recipe_hash", "request_id",
    "parent_ids", "verdicts",
)  # fmt: skip
EXPORT_SCHEMA = pa.schema(
    [SCHEMA.field(name) for name in EXPORTED]
    + [pa.field(name, pa.string()) for name in ("human_decision", "original_answer", "original_reasoning")]
)


BATCH_ROWS = 4096  # rows converted at a time: the export's memory
UNFINISHED = ".synthloop-export-unfinished"  # in an export's folders while it builds them


def export_row(row: Record, originals: dict[str, Record]) -> dict[str, Any]:
    """One dataset row: the record's provenance, its SFT conversation, and for an edited row its original."""
    data = asdict(row)
    human = row.human_verdict
    out = {name: data.get(name) for name in EXPORT_SCHEMA.names if name in data}
    out["messages"] = row_conversation(row)
    out["human_decision"] = None if human is None else ("edited" if human.reason == "edited" else "accepted")
    original = originals.get(row.parent_ids[0]) if out["human_decision"] == "edited" and row.parent_ids else None
    out["original_answer"] = original.answer if original else None
    out["original_reasoning"] = original.reasoning if original else None
    return out


def export_tables(run_root: Path, rounds: list[int], edits_to: str) -> Iterator[pa.Table]:
    """The dataset's rows as Arrow tables of at most BATCH_ROWS rows, read and converted as a stream (an
    edited row's original comes just before it; the originals are kept, the rest is not)."""
    originals: dict[str, Record] = {}
    batch: list[dict[str, Any]] = []
    for row in reviewed_run_rows(run_root, rounds, edits_to):
        if row.reject_reason == "replaced_by_edit":
            originals[row.id] = row
        if row.kept:
            batch.append(export_row(row, originals))
        if len(batch) >= BATCH_ROWS:
            yield pa.Table.from_pylist(batch, schema=EXPORT_SCHEMA)
            batch = []
    if batch:
        yield pa.Table.from_pylist(batch, schema=EXPORT_SCHEMA)


def check_out(out: Path) -> None:
    """A new or empty folder under one we can write to: said before anything is read or built."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReviewError(f"--out {out} exists and is not an empty folder; give a new or empty one")
    for parent in out.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ReviewError(f"--out {out}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ReviewError(f"--out {out}: {parent} cannot be written to; choose another folder")
            break


def export_run(run_root: Path, out: Path, fmt: str, only_round: int | None, license_: str = "other") -> dict[str, Any]:
    if fmt not in FORMATS:
        raise ReviewError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    manifest = check_run(run_root)
    check_out(out)
    clear_leftovers(out)
    done = finished_rounds(run_root)
    if not done:
        raise ReviewError(f"{run_root} has no round with finished curation: nothing to export yet")
    if only_round is not None and only_round not in done:
        raise ReviewError(f"round {only_round} of {run_root} has no finished curation; rounds to export: {done}")
    rounds = [only_round] if only_round is not None else done
    edits_to = (manifest["recipe"].get("grounding") or {}).get("human_edits", "golden")
    quiet_hub_logging()
    facts = dataset_facts(run_root, only_round)
    written = 0

    def build(tmp: Path) -> None:
        nonlocal written
        tmp.chmod(0o755)  # a temporary folder is private; the dataset is not
        (tmp / UNFINISHED).touch()  # says, if this export is killed, whose folder this is
        data_files, load, written = write_data(export_tables(run_root, rounds, edits_to), tmp, fmt, out)
        (tmp / "README.md").write_text(render_card(facts, license_, data_files, load))
        (tmp / "synthloop_facts.json").write_text(json.dumps(facts, indent=2, default=str) + "\n")
        (tmp / UNFINISHED).unlink()

    try:
        if out.exists():
            out.rmdir()  # empty (checked): replaced whole by the built folder
        replace_dir(out, build)
    except OSError as err:
        raise ReviewError(
            f"could not write the dataset to {out} ({err.strerror or err}); nothing was left there: choose a folder "
            "you can write to, new or empty"
        ) from None
    return {"rows": written, "rounds": rounds}


def clear_leftovers(out: Path) -> None:
    """Remove what a killed export to `out` left beside it: its half-built folder (`.OUT.` and eight
    random characters) and its scratch (`.OUT.export-` and eight), each known by the UNFINISHED file an
    export puts in it; a folder of yours with such a name is left alone."""
    leftover = re.compile(rf"\.{re.escape(out.name)}\.(export-)?[a-z0-9_]{{8}}")
    for path in out.absolute().parent.glob(f".{glob.escape(out.name)}.*"):
        if leftover.fullmatch(path.name) and not path.is_symlink() and (path / UNFINISHED).is_file():
            shutil.rmtree(path, ignore_errors=True)


def quiet_hub_logging() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the embedding model's loading bar
    hf_logging.set_verbosity_error()


def write_data(tables: Iterator[pa.Table], tmp: Path, fmt: str, out: Path) -> tuple[str | None, str, int]:
    """Write the rows a table at a time; return the card's data_files pattern, how to load them, and how
    many rows were written."""
    if fmt == "hf":
        import datasets

        datasets.disable_progress_bars()  # one line says what was written
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.export-", dir=tmp.parent) as scratch:
            (Path(scratch) / UNFINISHED).touch()
            parts, rows = write_parquet(tables, Path(scratch) / "data")
            if rows:  # read from the memory-mapped cache, not held in memory
                dataset = datasets.Dataset.from_parquet([str(p) for p in parts], cache_dir=str(Path(scratch) / "cache"))
                dataset.save_to_disk(str(tmp))
            else:  # `datasets` reads no Parquet file without rows, and loads no folder without a shard
                datasets.Dataset(EXPORT_SCHEMA.empty_table()).save_to_disk(str(tmp), num_shards=1)
        return None, f"from datasets import load_from_disk\nrows = load_from_disk({json.dumps(out.name)})", rows
    data = tmp / "data"
    if fmt == "parquet":
        _, rows = write_parquet(tables, data)
        load = f'from datasets import load_dataset\nrows = load_dataset({json.dumps(out.name)}, split="train")'
        return "data/train-*.parquet", load, rows
    data.mkdir()
    rows = 0
    with (data / "train.jsonl").open("w") as f:
        for table in tables:
            rows += table.num_rows
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in table.to_pylist())
    where = json.dumps(f"{out.name}/data/train.jsonl")
    load = f'from datasets import load_dataset\nrows = load_dataset("json", data_files={where}, split="train")'
    return "data/train.jsonl", load, rows


def write_parquet(tables: Iterator[pa.Table], data: Path) -> tuple[list[Path], int]:
    """`data/train-0000i-of-0000N.parquet` files of PARQUET_ROWS rows (one empty file for no row), written
    as the tables come and renamed once N is known."""
    data.mkdir()
    parts: list[Path] = []
    writer: pq.ParquetWriter | None = None
    in_part = rows = 0
    for table in tables:
        while table.num_rows:
            if writer is None or in_part == PARQUET_ROWS:
                if writer is not None:
                    writer.close()
                parts.append(data / f"train-{len(parts):05d}.parquet")
                writer, in_part = pq.ParquetWriter(parts[-1], EXPORT_SCHEMA, compression="zstd"), 0
            piece = table.slice(0, PARQUET_ROWS - in_part)
            writer.write_table(piece)
            in_part, rows, table = in_part + piece.num_rows, rows + piece.num_rows, table.slice(piece.num_rows)
    if writer is None:
        parts.append(data / "train-00000.parquet")
        pq.write_table(EXPORT_SCHEMA.empty_table(), parts[-1], compression="zstd")
    else:
        writer.close()
    named = [part.with_name(f"train-{i:05d}-of-{len(parts):05d}.parquet") for i, part in enumerate(parts)]
    for part, name in zip(parts, named, strict=True):
        part.rename(name)
    return named, rows
