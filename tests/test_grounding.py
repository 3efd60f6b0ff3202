import json

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
