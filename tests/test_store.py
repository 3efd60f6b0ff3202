import json

import pytest

from synthloop.records import Message, Record, Verdict, from_table, to_table
from synthloop.storage.atomic import atomic_write, remove_temporaries, write_json
from synthloop.storage.shards import is_complete, mark_complete, read_records, write_records


def sample_records(n: int) -> list[Record]:
    return [
        Record(
            kind="solution",
            skill="addition",
            question=f"What is {i} + 1?",
            source="synthetic",
            round=1,
            difficulty=1,
            messages=[Message("user", f"What is {i} + 1?")],
            reasoning="add one",
            answer=str(i + 1),
            reference_answer=str(i + 1),
            parent_ids=["p"] if i % 2 else [],
            verdicts=[Verdict("verify", True, None, 1.0)],
            seed=0,
            index=i,
        )
        for i in range(n)
    ]


def test_record_id_is_stable_content_address():
    a, b = sample_records(1)[0], sample_records(1)[0]
    assert a.id == b.id and len(a.id) == 20
    assert sample_records(2)[1].id != a.id


def test_parquet_round_trip(tmp_path):
    records = sample_records(25)
    write_records(tmp_path / "d", records, shard_size=10)
    assert sorted(p.name for p in (tmp_path / "d").glob("*.parquet")) == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    assert read_records(tmp_path / "d") == records
    assert from_table(to_table(records)) == records


def test_rejection_reason_and_kept():
    r = sample_records(1)[0]
    assert r.kept and r.reject_reason is None
    r.add_verdict("dedup", False, "duplicate")
    assert not r.kept and r.reject_reason == "duplicate"


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "x.json"
    write_json(path, {"v": 1})

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_completion_marker_and_leftover_cleanup(tmp_path):
    d = tmp_path / "d"
    write_records(d, sample_records(3), 10)
    assert not is_complete(d)
    mark_complete(d, {"rows": 3})
    assert is_complete(d)
    (d / ".part-00001.parquet.abc.tmp").write_text("partial")
    (d / ".student.xyz").mkdir()
    assert remove_temporaries(tmp_path) == 2
    assert len(read_records(d)) == 3
