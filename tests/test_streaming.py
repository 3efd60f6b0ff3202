"""Curation as a stream: rows are written while later ones are still unread, cross-row stages keep
their state on disk past a budget, and the verdicts are those of deciding everything in memory."""

import json
import random
from collections import Counter

import pyarrow.parquet as pq
import pytest

from synthloop.cli.main import main
from synthloop.config import load_curation
from synthloop.curation import groups
from synthloop.curation.base import question_key
from synthloop.curation.dedup import ExactDedup
from synthloop.curation.near_dedup import MinHashIndex, NearDedup
from synthloop.curation.pipeline import Context, curate_rows
from synthloop.curation.self_consistency import SelfConsistency, answer_key
from synthloop.records import Record
from synthloop.storage import spill
from synthloop.storage.shards import iter_records, read_records


def row(question: str, answer: str | None = "1", reference: str | None = None) -> Record:
    return Record("solution", "s", question, "synthetic", 1, answer=answer, reference_answer=reference)


def test_curation_writes_shards_before_the_input_ends(tmp_path):
    """The proof of streaming: by the time row 5,000 is read, shards of the first rows are on disk."""
    seen_on_disk: list[int] = []

    def rows():
        for i in range(6000):
            if i == 5000:
                seen_on_disk.append(len(list((tmp_path / "curated").glob("part-*.parquet"))))
            yield row(f"What is {i} + 1?", str(i + 1), str(i + 1))

    cfg = load_curation(None)
    summary = curate_rows(cfg, rows(), tmp_path, Context(), shard_size=1000)
    assert seen_on_disk[0] >= 3, "shards are written as they fill, not at the end"
    assert summary["rows"] == 6000 and summary["kept"] == 6000
    assert sum(1 for _ in iter_records(tmp_path / "curated")) == 6000
    assert not list(tmp_path.glob(".scratch-*")), "scratch files are removed when the stream is through"


def test_near_dedup_spilled_to_disk_decides_as_in_memory(tmp_path):
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(200)]
    docs = []
    for _ in range(300):
        base = [rng.choice(vocab) for _ in range(30)]
        docs.append(" ".join(base))
        for _ in range(rng.randint(0, 2)):
            edited = list(base)
            edited[rng.randrange(30)] = rng.choice(vocab)
            docs.append(" ".join(edited))
    rng.shuffle(docs)
    ids = [f"id{i}" for i in range(len(docs))]

    def matches(index: MinHashIndex) -> list[tuple[int, float]]:
        out = []
        for start in range(0, len(docs), 64):
            out += [
                (m.representative, m.similarity) for m in index.add(docs[start : start + 64], ids[start : start + 64])
            ]
        return out

    in_memory = MinHashIndex()
    on_disk = MinHashIndex(memory_mb=0.001, scratch_root=tmp_path)  # spills after every batch
    expected = matches(in_memory)
    assert matches(on_disk) == expected and on_disk.kept.db is not None
    assert sum(r != i for i, (r, _) in enumerate(expected)) > 50, "the corpus has near-duplicates across batches"
    rejected = [(i, r) for i, (r, _) in enumerate(expected) if r != i]
    assert all(on_disk.id_of(r) == ids[r] for _, r in rejected)

    stage = NearDedup(earlier=[("old", docs[0])], memory_mb=0.001, scratch_root=tmp_path)
    stage.batch_rows = 50
    out = list(stage.run([row(d) for d in docs]))
    assert out[0].parent_ids == ["old"] and not out[0].kept


def test_exact_dedup_across_batches_and_earlier_rounds(tmp_path):
    stage = ExactDedup([("What is 2?", "earlier-id")], scratch_root=tmp_path)
    stage.batch_rows = 3
    questions = ["What is 1?", "what is  1?", "What is 2?", "Q3", "Q4", "Q5", "q3", "Q6"]
    out = list(stage.run([row(q) for q in questions]))
    assert [r.kept for r in out] == [True, False, False, True, True, True, False, True]
    assert out[1].parent_ids == [out[0].id] and out[2].parent_ids == ["earlier-id"]
    assert out[6].parent_ids == [out[3].id], "a duplicate two batches later still finds its kept row"


def in_memory_votes(rows: list[Record], min_agreement: float) -> list[tuple[bool, str | None]]:
    """Self-consistency as plainly as it can be written, whole round in memory."""
    by_question: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_question.setdefault(question_key(r.question), []).append(i)
    out: list[tuple[bool, str | None]] = [(True, None)] * len(rows)
    for members in by_question.values():
        keys = [answer_key(rows[i].answer or "") for i in members]
        winner, count = Counter(keys).most_common(1)[0]
        for i, key in zip(members, keys, strict=True):
            if len(members) > 1 and count / len(members) < min_agreement:
                out[i] = (False, "low_agreement")
            elif len(members) > 1 and key != winner:
                out[i] = (False, "disagrees_with_majority")
    return out


def test_self_consistency_spilled_and_shuffled_votes_as_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(spill, "IN_MEMORY_ROWS", 7)  # rows go to Parquet after 7
    monkeypatch.setattr(groups, "WRITE_BATCH", 5)
    rng = random.Random(0)
    rows = [
        row(f"Question {q}", str(rng.choice([q, q, q + 1, q + 2]))) for q in range(60) for _ in range(rng.randint(1, 5))
    ]
    rng.shuffle(rows)  # a question's samples far apart in the stream
    stage = SelfConsistency(0.6)
    stage.scratch_root, stage.batch_members = tmp_path, 4
    out = list(stage.run(rows))
    assert [r.id for r in out] == [r.id for r in rows], "the order of the rows is kept"
    assert [(r.kept, r.reject_reason) for r in out] == in_memory_votes(rows, 0.6)
    voted = [r for r in out if r.kept and r.verdicts[-1].detail != "one sample: no vote"]
    assert voted and all(r.reference_answer is not None for r in voted), "the majority becomes the reference"
    assert not list(tmp_path.iterdir()), "scratch removed"


def test_curate_cli_streams_a_file_and_a_bad_line_leaves_nothing(tmp_path, capsys):
    path = tmp_path / "rows.jsonl"
    lines = [json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1), "reference_answer": str(i + 1)})
             for i in range(2500)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    assert main(["curate", str(path), "--out", str(tmp_path / "out")]) == 0
    assert len(read_records(tmp_path / "out" / "curated")) == 2500
    assert pq.ParquetFile(tmp_path / "out" / "curated" / "part-00002.parquet").metadata.num_rows == 500

    path.write_text("\n".join([*lines[:2000], "{not json", *lines[2000:]]) + "\n")
    assert main(["curate", str(path), "--out", str(tmp_path / "out2")]) == 2
    assert f"{path} line 2001" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists(), "a curation cut short by a bad line leaves no half of itself"


@pytest.mark.parametrize("stage_rows", [1, 3000])
def test_row_spill_gives_rows_back_in_order(tmp_path, stage_rows, monkeypatch):
    monkeypatch.setattr(spill, "IN_MEMORY_ROWS", 1000)
    scratch = spill.Scratch(tmp_path)
    rows = spill.RowSpill(scratch)
    for i in range(stage_rows):
        rows.append(row(f"q{i}"))
    assert [r.question for r in rows] == [f"q{i}" for i in range(stage_rows)]
    scratch.close()
    assert not list(tmp_path.iterdir())


def test_a_folder_of_bad_shards_is_an_error_naming_the_shard(tmp_path, capsys):
    import pyarrow as pa

    folder = tmp_path / "shards"
    folder.mkdir()
    pq.write_table(pa.table({"question": ["q"], "answer": ["1"]}), folder / "part-00000.parquet")
    assert main(["curate", str(folder), "--out", str(tmp_path / "out")]) == 2
    assert "part-00000.parquet is not a synthloop shard" in capsys.readouterr().err
    (folder / "part-00000.parquet").write_bytes(b"PAR1 not really")
    assert main(["curate", str(folder), "--out", str(tmp_path / "out")]) == 2
    assert "cannot read the shard" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_terminated_curation_leaves_nothing_and_a_killed_one_is_redone(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "rows.jsonl"
    lines = [json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1), "reference_answer": str(i + 1)})
             for i in range(200_000)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "synthloop.cli.main", "curate", str(path), "--out", str(out)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list((out / "curated").glob("part-*.parquet")):
            time.sleep(0.05)
        os.kill(proc.pid, sig)
        proc.wait()
        if sig == signal.SIGTERM:
            assert not out.exists(), "SIGTERM cleans up as Ctrl-C does"
    assert (out / "curated").exists(), "kill -9 leaves its shards"
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0 and "unfinished curation" in done.stderr, done.stderr
    assert json.loads((out / "summary.json").read_text())["rows"] == 200_000
    assert not list(out.glob(".scratch-*"))


def test_a_training_mix_shuffled_on_disk_holds_what_one_in_memory_holds(tmp_path, monkeypatch):
    from pathlib import Path

    from synthloop.grounding import mix
    from synthloop.storage.shards import read_marker

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text((Path(__file__).parent / "tiny_recipe.yaml").read_text().replace("rounds: 3", "rounds: 2"))
    assert main(["run", str(recipe), "--run-dir", str(tmp_path / "memory")]) == 0
    monkeypatch.setattr(mix, "BUCKET_ROWS", 30)  # round 2 (accumulate) mixes about 700 rows: 20-odd buckets
    monkeypatch.setattr(mix, "WAITING_ROWS", 50)
    assert main(["run", str(recipe), "--run-dir", str(tmp_path / "disk")]) == 0
    for number in ("01", "02"):
        memory, disk = (tmp_path / run / "rounds" / number / "train" for run in ("memory", "disk"))
        assert [r.id for r in iter_records(memory)] == [r.id for r in iter_records(disk)]  # sorted by the same keys
        assert all(r.messages for r in iter_records(disk))  # SFT conversations
        assert read_marker(memory) | {"seconds": 0} == read_marker(disk) | {"seconds": 0}  # counts and monitor
        assert not list(memory.parent.glob(".scratch-*")) and not list(disk.parent.glob(".scratch-*"))


def test_cross_row_decisions_applied_on_arrow_columns_match_those_applied_to_records():
    import numpy as np
    import pyarrow as pa

    from synthloop.records import from_table, to_table
    from synthloop.runners.ray_curate import POSITION, Rejections, apply_pending, decided_records

    rng = random.Random(5)
    rows = [row(f"q{i}", answer=str(i)) for i in range(300)]
    for r in rows:
        if rng.random() < 0.2:
            r.add_verdict("verify", False, "wrong_answer")  # already rejected: no later verdict
        elif rng.random() < 0.05:
            r.add_verdict("human", True, None, None, "accepted")
        else:
            r.add_verdict("verify", True)
    table = to_table(rows).append_column(POSITION, pa.array(range(1000, 1300), pa.int64()))
    exact = rng.sample(range(1000, 1300), 40)
    near = rng.sample(range(1000, 1300), 40)
    exact_parents, near_parents = (np.array([f"{name}{x}" for x in rows], dtype=object)
                                   for name, rows in (("p", exact), ("n", near)))  # fmt: skip
    pending = [
        Rejections("dedup", "duplicate", {POSITION: np.array(exact), "parent": exact_parents}),
        Rejections("near_dedup", "near_duplicate", {POSITION: np.array(near), "parent": near_parents,
                                                    "score": np.array([rng.random() for _ in near])}),
    ]  # fmt: skip
    on_records, _ = decided_records(table, pending)
    from_arrow = from_table(apply_pending(table, pending).drop_columns([POSITION]))
    assert [(r.verdicts, r.parent_ids) for r in from_arrow] == [(r.verdicts, r.parent_ids) for r in on_records]
    assert sum(not r.kept for r in from_arrow) > 60 and any(len(r.verdicts) == 3 for r in from_arrow)
    sliced = apply_pending(table.slice(100, 50), pending)  # a batch that starts inside the table
    assert [r.verdicts for r in from_table(sliced.drop_columns([POSITION]))] == [
        r.verdicts for r in on_records[100:150]
    ]


def test_kept_per_task_counted_from_arrow_batches_matches_counting_rows():
    import numpy as np

    from synthloop.prompt_rounds import UNVERIFIED, TaskTally
    from synthloop.records import to_table

    rng = random.Random(3)
    folders = [("write_problems", 40), ("exercises", 0), ("refusal", 25), ("self_instruct", 35)]
    rows = []
    for i in range(100):
        r = Record("solution", rng.choice(["addition", "logic"]), f"q{i}", "synthetic", 1, answer="1")
        r.add_verdict("verify", rng.random() < 0.7, None if rng.random() < 0.7 else "wrong_answer")
        if r.kept and rng.random() < 0.3:
            r.add_verdict(UNVERIFIED, True)
        rows.append(r)
    one_by_one, in_batches = (TaskTally(folders, ["addition", "logic"]) for _ in range(2))
    for r in rows:
        one_by_one.row(r)
    order = list(range(100))
    rng.shuffle(order)  # batches come in any order on Ray: the positions tell the origin
    for start in range(0, 100, 17):
        picked = order[start : start + 17]
        table = to_table([rows[i] for i in picked])
        in_batches.table(table, np.array(picked), np.array([rows[i].kept for i in picked]))
    assert in_batches.counts() == one_by_one.counts()
    assert one_by_one.counts()["kept_per_task"]["exercises"] == {"addition": 0, "logic": 0}
    assert set(one_by_one.counts()["unverified_per_task"]) == {"write_problems", "refusal", "self_instruct"}


def test_shard_folders_read_in_slices_give_the_rows_of_reading_them_whole(tmp_path):
    from synthloop.loop import unanswered_rejected
    from synthloop.storage.shards import ShardFolders, write_records

    for name, count in (("a", 23), ("b", 0), ("c", 31)):
        write_records(tmp_path / name, [row(f"{name}{i}", answer=None if i % 5 == 0 else "1") for i in range(count)], 7)
    folders = ShardFolders([tmp_path / n for n in "abc"], unanswered_rejected)
    whole = list(folders)
    slices = folders.slices(10)
    assert [s.rows for s in slices] == [14, 16, 14, 10]  # shards of 7 (and an empty one) joined up to 10 rows
    pieces = [r for piece in slices for r in folders.read_slice(piece)[0]]
    assert [(r.id, r.verdicts) for r in pieces] == [(r.id, r.verdicts) for r in whole]
    assert sum(not r.kept for r in whole) == 12  # every row without an answer, rejected on the way in


def test_live_rows_apply_pending_decisions_in_a_batch_with_a_reviewers_verdict():
    """A batch holding a reviewer's verdict is read from its records; the dedup decisions not yet applied
    still count there (a row exact dedup rejected must not be embedded or absorb another row), except on
    the row a reviewer decided, which stays as the reviewer said."""
    import numpy as np
    import pyarrow as pa

    from synthloop.records import to_table
    from synthloop.runners.ray_curate import POSITION, Rejections, live_rows

    reviewed, a, b, c, d = (row(f"q{i}") for i in range(5))
    reviewed.add_verdict("human", True, None, None, "accepted")
    d.add_verdict("human", True, None, None, "accepted")
    c.add_verdict("verify", False, "wrong_answer")
    table = to_table([reviewed, a, b, c, d]).append_column(POSITION, pa.array(range(10, 15), pa.int64()))
    pending = [Rejections("dedup", "duplicate", {POSITION: np.array([12, 14]), "parent": np.array(["x", "y"])})]
    assert live_rows(table).tolist() == [True, True, True, False, True]
    assert live_rows(table, pending).tolist() == [True, True, False, False, True]  # d: the reviewer kept it
    plain = table.slice(1, 3)  # no reviewer's verdict: read from the Arrow verdicts alone
    assert live_rows(plain, pending).tolist() == [True, False, False]
