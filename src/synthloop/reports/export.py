"""`synthloop export RUN --format hf|parquet|jsonl --out DIR`: a run's kept rows, human decisions applied,
as a dataset that loads with `datasets`, with its dataset card.

- hf: `datasets.Dataset.save_to_disk` (load with `load_from_disk(DIR)`);
- parquet: `DIR/data/train-00000-of-0000N.parquet` (load with `load_dataset("parquet", data_dir=DIR)`
  or `load_dataset(DIR)`: the card's header names the files);
- jsonl: `DIR/data/train.jsonl`.

The folder is built beside DIR and moved into place whole, so a killed export leaves no half dataset."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synthloop.records import SCHEMA, Record
from synthloop.reports.card import render_card
from synthloop.reports.dataset import dataset_facts, exported_rows
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


def export_row(row: Record) -> dict[str, Any]:
    """One dataset row: the record's provenance, its SFT conversation, and for an edited row its original."""
    data = asdict(row)
    human = row.human_verdict
    out = {name: data.get(name) for name in EXPORT_SCHEMA.names if name in data}
    out["messages"] = row_conversation(row)
    out["human_decision"] = None if human is None else ("edited" if human.reason == "edited" else "accepted")
    out["original_answer"] = out["original_reasoning"] = None
    return out


def export_table(rows: list[Record], originals: dict[str, Record]) -> pa.Table:
    records = []
    for row in rows:
        data = export_row(row)
        if data["human_decision"] == "edited" and row.parent_ids and row.parent_ids[0] in originals:
            original = originals[row.parent_ids[0]]
            data["original_answer"], data["original_reasoning"] = original.answer, original.reasoning
        records.append(data)
    return pa.Table.from_pylist(records, schema=EXPORT_SCHEMA)


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
    done = finished_rounds(run_root)
    if not done:
        raise ReviewError(f"{run_root} has no round with finished curation: nothing to export yet")
    if only_round is not None and only_round not in done:
        raise ReviewError(f"round {only_round} of {run_root} has no finished curation; rounds to export: {done}")
    rounds = [only_round] if only_round is not None else done
    edits_to = (manifest["recipe"].get("grounding") or {}).get("human_edits", "golden")
    rows = exported_rows(run_root, rounds, edits_to)
    edited_parents = {
        r.parent_ids[0] for r in rows if r.parent_ids and r.human_verdict and r.human_verdict.reason == "edited"
    }
    originals = {}
    if edited_parents:
        from synthloop.storage.shards import read_records

        for number in rounds:
            rdir = run_root / "rounds" / f"{number:02d}"
            for directory in ("curated", "rejected"):
                originals |= {r.id: r for r in read_records(rdir / directory) if r.id in edited_parents}
    table = export_table(rows, originals)
    quiet_hub_logging()
    facts = dataset_facts(run_root, only_round)

    def build(tmp: Path) -> None:
        tmp.chmod(0o755)  # a temporary folder is private; the dataset is not
        data_files, load = write_data(table, tmp, fmt, out)
        (tmp / "README.md").write_text(render_card(facts, license_, data_files, load))
        (tmp / "synthloop_facts.json").write_text(json.dumps(facts, indent=2, default=str) + "\n")

    try:
        if out.exists():
            out.rmdir()  # empty (checked): replaced whole by the built folder
        replace_dir(out, build)
    except OSError as err:
        raise ReviewError(
            f"could not write the dataset to {out} ({err.strerror or err}); nothing was left there: choose a folder "
            "you can write to, new or empty"
        ) from None
    return {"rows": table.num_rows, "rounds": rounds}


def quiet_hub_logging() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the embedding model's loading bar
    hf_logging.set_verbosity_error()


def write_data(table: pa.Table, tmp: Path, fmt: str, out: Path) -> tuple[str | None, str]:
    """Write the rows; return the card's data_files pattern and how to load them."""
    if fmt == "hf":
        import datasets

        datasets.disable_progress_bars()  # one line says what was written
        datasets.Dataset(table).save_to_disk(str(tmp))
        return None, f"from datasets import load_from_disk\nrows = load_from_disk({json.dumps(out.name)})"
    data = tmp / "data"
    data.mkdir()
    if fmt == "parquet":
        parts = max(1, -(-table.num_rows // PARQUET_ROWS))
        for i in range(parts):
            chunk = table.slice(i * PARQUET_ROWS, PARQUET_ROWS)
            pq.write_table(chunk, data / f"train-{i:05d}-of-{parts:05d}.parquet", compression="zstd")
        load = f'from datasets import load_dataset\nrows = load_dataset({json.dumps(out.name)}, split="train")'
        return "data/train-*.parquet", load
    with (data / "train.jsonl").open("w") as f:
        for row in table.to_pylist():
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    where = json.dumps(f"{out.name}/data/train.jsonl")
    load = f'from datasets import load_dataset\nrows = load_dataset("json", data_files={where}, split="train")'
    return "data/train.jsonl", load
