"""synthloop export: a dataset that loads with `datasets`, human decisions applied, with its dataset card;
and the report's sections that help decide what to do next."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "synthloop.cli.main", *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("fmt", ["hf", "parquet", "jsonl"])
def test_export_loads_with_datasets_and_applies_the_decisions(reviewed: dict, tmp_path: Path, fmt: str) -> None:
    import datasets

    out, cache = tmp_path / "out", tmp_path / "hf-cache"  # a cache of this test's own: never an earlier export
    done = cli("export", str(reviewed["run"]), "--format", fmt, "--out", str(out), "--license", "cc-by-4.0")
    assert done.returncode == 0, done.stderr
    if fmt == "hf":
        rows = datasets.load_from_disk(str(out))
    elif fmt == "parquet":
        rows = datasets.load_dataset(str(out), split="train", cache_dir=str(cache))  # the card's header names the files
    else:
        rows = datasets.load_dataset(
            "json", data_files=str(out / "data" / "train.jsonl"), split="train", cache_dir=str(cache)
        )
    assert rows.num_rows == len(reviewed["curated"])  # one dropped, one rescued; the edit replaces its original
    ids = set(rows["id"])
    assert reviewed["dropped"].id not in ids and reviewed["rescued"].id in ids and reviewed["edited"].id not in ids
    edited = [r for r in rows if r["human_decision"] == "edited"]
    assert len(edited) == 1 and edited[0]["answer"] == "edited 42" and edited[0]["source"] == "human"
    assert edited[0]["original_answer"] == reviewed["edited"].answer
    assert edited[0]["parent_ids"] == [reviewed["edited"].id]
    assert edited[0]["messages"][-1]["role"] == "assistant" and "edited 42" in edited[0]["messages"][-1]["content"]
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert header["license"] == "cc-by-4.0" and header["size_categories"] == ["n<1K"]
    assert "text-generation" in header["task_categories"]
    for needed in ("Natural vs Synthetic", "| Availability |", "| Cost |", "| Privacy", "| Accuracy |",
                   "| Diversity |", "| Structure |", "## Provenance", "## Curation", "## Human review",
                   "Decontamination: against the run's held-out probes", "PII policy: redact"):  # fmt: skip
        assert needed in card, needed
    assert "3 rows decided (2 accepted, 1 rejected, 1 edited" in card


def test_export_refuses_a_used_folder_and_a_run_without_rounds(one_round: Path, tmp_path: Path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    done = cli("export", str(one_round), "--format", "jsonl", "--out", str(used))
    assert done.returncode == 2 and "is not an empty folder" in done.stderr
    assert (used / "keep.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.json").write_text(json.dumps({"recipe": {}, "rounds": {}}))
    done = cli("export", str(empty), "--format", "jsonl", "--out", str(tmp_path / "new"))
    assert done.returncode == 2 and "nothing to export yet" in done.stderr
    done = cli("export", str(one_round), "--format", "jsonl", "--out", str(tmp_path / "new"), "--round", "7")
    assert done.returncode == 2 and "rounds to export: [1]" in done.stderr


def test_the_report_tells_what_to_do_next(reviewed: dict) -> None:
    from synthloop.reports.html import write_report
    from synthloop.storage.rundir import RunDir

    run = RunDir(reviewed["run"])
    write_report(run)
    page = run.report.read_text()
    for needed in ("Teacher calls, tokens and cost", "Examples of kept and rejected rows", "wrong_answer",
                   "The student's answers on probes", "Training loss", "<polyline", "Natural vs Synthetic",
                   "Human review", "Cohen&#x27;s kappa", "The recipe", "What the figures measure", "n=6<"):  # fmt: skip
        assert needed in page, needed
    metrics = json.loads(run.metrics.read_text())["rounds"][0]
    low, high, n = metrics["eval"]["per_skill_ci"]["addition"]
    assert 0.0 <= low <= metrics["eval"]["per_skill"]["addition"] <= high <= 1.0 and n == 6
    assert len(metrics["train"]["loss_curve"]) == 6  # 6 steps: every one read


@pytest.mark.parametrize("fmt", ["hf", "parquet", "jsonl"])
def test_an_export_in_small_batches_and_files_holds_the_same_rows(
    reviewed: dict, tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    from synthloop.reports import export

    def exported(out: Path) -> list[dict]:
        assert export.export_run(reviewed["run"], out, fmt, None)["rows"] == len(reviewed["curated"])
        if fmt == "hf":
            return datasets.load_from_disk(str(out)).to_list()
        files = {"parquet": "data/*.parquet", "jsonl": "data/train.jsonl"}[fmt]
        kind = "json" if fmt == "jsonl" else "parquet"
        return datasets.load_dataset(kind, data_files=str(out / files), split="train", cache_dir=str(out.parent / "c"))

    whole = exported(tmp_path / "whole")
    monkeypatch.setattr(export, "BATCH_ROWS", 7)  # converted 7 rows at a time
    monkeypatch.setattr(export, "PARQUET_ROWS", 10)
    small = exported(tmp_path / "small")
    assert list(small) == list(whole) and any(r["original_answer"] for r in small)
    if fmt == "parquet":
        names = sorted(p.name for p in (tmp_path / "small" / "data").iterdir())
        parts = -(-len(whole) // 10)
        assert names == [f"train-{i:05d}-of-{parts:05d}.parquet" for i in range(parts)] and parts > 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left beside the dataset


def test_an_export_with_no_rows_loads_and_a_killed_exports_leftovers_are_cleared(
    one_round: Path, tmp_path: Path
) -> None:
    import datasets

    from synthloop.reports import export

    empty = tmp_path / "empty"
    empty.mkdir()
    files, _, rows = export.write_data(iter([]), empty, "hf", empty)  # every row rejected by a reviewer
    assert rows == 0 and files is None and datasets.load_from_disk(str(empty)).num_rows == 0
    out = tmp_path / "data"
    left = [tmp_path / ".data.k2j_x9a1", tmp_path / ".data.export-0a1b2c3d"]  # a killed export's build and scratch
    for folder in left:
        (folder / "data").mkdir(parents=True)
        (folder / export.UNFINISHED).touch()
    mine = [tmp_path / ".data.notes", tmp_path / ".data.20261206"]  # yours, the second named like a build: kept
    for folder in mine:
        (folder / "notes.txt").parent.mkdir()
        (folder / "notes.txt").write_text("precious")
    assert export.export_run(one_round, out, "hf", None)["rows"] > 0
    assert not any(folder.exists() for folder in left) and all((f / "notes.txt").is_file() for f in mine)
    assert not (out / export.UNFINISHED).exists() and datasets.load_from_disk(str(out)).num_rows > 0
