import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthloop.grounding.golden import GoldenSetError, load_golden_file
from synthloop.grounding.mix import golden_count, mix
from synthloop.records import Record


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_loads_jsonl_and_parquet(tmp_path):
    rows = [{"question": "2+2?", "answer": "4", "reasoning": "add"}, {"question": "3+3?", "answer": "6"}]
    jsonl = write_lines(tmp_path / "g.jsonl", [json.dumps(r) for r in rows])
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "g.parquet")
    for path in (jsonl, tmp_path / "g.parquet"):
        records = load_golden_file(path)
        assert [r.answer for r in records] == ["4", "6"]
        assert all(r.source == "human" for r in records)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"question": "a", "answer": "1"}', "{not json"], "g.jsonl line 2: not valid JSON"),
        (['{"question": "a", "answer": "1"}', "", '{"question": "b"}'], "g.jsonl line 3: missing or empty 'answer'"),
        (['["a", "b"]'], "g.jsonl line 1: each line must be a JSON object"),
        ([""], "has no rows"),
    ],
)
def test_bad_jsonl_names_file_and_line(tmp_path, lines, message):
    with pytest.raises(GoldenSetError, match=message):
        load_golden_file(write_lines(tmp_path / "g.jsonl", lines))


def test_unreadable_files(tmp_path):
    with pytest.raises(GoldenSetError, match="not found"):
        load_golden_file(tmp_path / "missing.jsonl")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(GoldenSetError, match="cannot read golden set"):
        load_golden_file(tmp_path / "bad.parquet")
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(GoldenSetError, match="cannot read golden set"):
        load_golden_file(tmp_path / "bin.jsonl")


def rows(n, source):
    return [Record(kind="solution", skill="s", question=f"{source}{i}", source=source, round=1) for i in range(n)]


@pytest.mark.parametrize(("n", "ratio"), [(800, 0.2), (100, 0.5), (10, 0.0), (1000, 0.05)])
def test_mix_hits_the_ratio_and_labels_every_row(n, ratio):
    out = mix(rows(n, "synthetic"), rows(30, "reference"), ratio, seed=0)
    golden = sum(r.source == "reference" for r in out)
    assert golden == golden_count(n, ratio)
    assert abs(golden / len(out) - ratio) < 0.01
    assert sum(r.source == "synthetic" for r in out) == n


def test_a_mix_bigger_than_a_bucket_is_shuffled_on_disk_and_loses_nothing(tmp_path, monkeypatch):
    from synthloop.grounding import mix as mixing

    synthetic, golden = rows(1000, "synthetic"), rows(30, "reference")
    in_memory = mix(synthetic, golden, 0.2, 7)  # one bucket, no disk
    monkeypatch.setattr(mixing, "BUCKET_ROWS", 40)  # 1000 rows: 29 buckets with their golden share
    monkeypatch.setattr(mixing, "WAITING_ROWS", 25)  # rows go to the buckets' files after 25
    tables, counts = mixing.mix_tables(synthetic, golden, 0.2, 7, len(synthetic), tmp_path)
    first = next(tables)
    assert [p.name[: len(".scratch-")] for p in tmp_path.iterdir()] == [".scratch-"]  # spilled, in scratch
    out = [r for table in [first, *tables] for r in mixing.from_table(table)]
    assert not list(tmp_path.iterdir())  # scratch removed once read
    assert counts == {"synthetic": 1000, "golden": golden_count(1000, 0.2), "edited": 0}
    assert sorted(r.id for r in out if r.source == "synthetic") == sorted(r.id for r in synthetic)
    assert [r.id for r in in_memory] == [r.id for r in out]  # the same rows in the same order, golden ones too
    assert [r.id for r in out if r.source == "synthetic"] != [r.id for r in synthetic]  # shuffled
    again, _ = mixing.mix_tables(synthetic, golden, 0.2, 7, len(synthetic), tmp_path)
    assert [r.id for t in again for r in mixing.from_table(t)] == [r.id for r in out]  # seeded


def test_the_shuffle_through_buckets_gives_every_order_alike(monkeypatch):
    from synthloop.grounding import mix as mixing

    monkeypatch.setattr(mixing, "BUCKET_ROWS", 2)  # 4 rows in 2 buckets
    four = rows(4, "synthetic")
    seen = Counter()
    for seed in range(1200):
        tables, _ = mixing.mix_tables(four, [], 0.0, seed, 4)
        seen[tuple(r.question for t in tables for r in mixing.from_table(t))] += 1
    assert len(seen) == 24 and all(25 < n < 85 for n in seen.values()), seen  # 50 expected each


def test_buckets_stay_within_the_open_files_allowed():
    import subprocess
    import sys

    script = """
import resource
from synthloop.grounding import mix
mix.BUCKET_ROWS = 10
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (300, hard))
assert mix.bucket_count(10 * 40) == 40  # within the limit
if hard == resource.RLIM_INFINITY or hard >= 5000 + mix.SPARE_FILES:
    assert mix.bucket_count(10 * 5000) == 5000  # the soft limit raised to what is needed
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 5000 + mix.SPARE_FILES
resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))  # a hard limit too low: bigger buckets instead
assert mix.bucket_count(10 * 5000) == 300 - mix.SPARE_FILES
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr  # in a process of its own: a lowered hard limit stays lowered


def test_golden_rows_from_a_file_are_not_counted_as_reviewers_edits(tmp_path):
    """A golden file's rows are `source: human`, as a reviewer's edited rows are: the mix counts the
    edits before the golden rows join it."""
    from pathlib import Path

    from synthloop.cli.main import main
    from synthloop.storage.shards import iter_records, read_marker

    golden = [json.dumps({"question": f"What is {i}+{i}?", "answer": str(2 * i)}) for i in range(30)]
    path = write_lines(tmp_path / "golden.jsonl", golden)
    recipe = (Path(__file__).parent / "tiny_recipe.yaml").read_text().replace("rounds: 3", "rounds: 1")
    recipe = recipe.replace("golden: {size: 40}", f"golden: {{path: {path}}}")
    (tmp_path / "r.yaml").write_text(recipe)
    assert main(["run", str(tmp_path / "r.yaml"), "--run-dir", str(tmp_path / "run")]) == 0
    train = tmp_path / "run" / "rounds" / "01" / "train"
    marker = read_marker(train)
    assert marker["golden"] > 0 and marker["golden"] == sum(r.source == "human" for r in iter_records(train))
    assert marker["human_edited"] == 0 and marker["review_decisions"] == 0
