"""`synthloop curate` and user data files as hostile input: oversize fields, line separators inside
strings, rows without answers, an --out that is a file, holds an earlier curation or overlaps the
input, a curation-only recipe, and judge calls never sent twice. Real CLI, real files."""

import json
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthloop.cli.main import main
from synthloop.curation.audit import read_labelled
from synthloop.storage.input_files import MAX_FIELD_BYTES, InputFileError, read_rows
from synthloop.storage.shards import read_records


def write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


ROWS = [{"question": f"What is {i} + 1?", "answer": str(i + 1), "reference_answer": str(i + 1)} for i in range(20)]


def test_unicode_line_separators_inside_strings_are_valid_json(tmp_path):
    text = "".join(json.dumps({"question": f"a{sep}b", "answer": "1"}, ensure_ascii=False) + "\n"
                   for sep in ("\u2028", "\u2029", "\u0085", "\x0c"))  # fmt: skip
    (tmp_path / "rows.jsonl").write_text(text, encoding="utf-8")
    rows = read_rows(tmp_path / "rows.jsonl", "rows")
    assert [row["question"][1] for row, _ in rows] == ["\u2028", "\u2029", "\u0085", "\x0c"]


def test_an_oversize_field_is_skipped_in_a_golden_or_eval_set_and_rejected_in_curate(tmp_path, capsys):
    big = "x" * (MAX_FIELD_BYTES + 10)
    path = write_rows(tmp_path / "rows.jsonl", [*ROWS[:3], {"question": "q", "answer": big}, ROWS[3]])
    assert len(read_rows(path, "golden set")) == 4
    assert "1 rows skipped with a field over" in capsys.readouterr().err
    labelled = read_labelled(path, keep_oversize=True)
    assert [item.record.reject_reason for item in labelled] == [None, None, None, "oversize_field", None]
    assert main(["curate", str(path), "--out", str(tmp_path / "out")]) == 0
    rejected = read_records(tmp_path / "out" / "rejected")
    assert [r.reject_reason for r in rejected] == ["oversize_field"]
    assert "line 4" in rejected[0].verdicts[-1].detail and big not in str(rejected[0].verdicts)


def test_an_oversize_line_is_never_parsed(tmp_path):
    path = tmp_path / "rows.jsonl"
    with open(path, "w") as handle:
        handle.write(json.dumps(ROWS[0]) + "\n")
        handle.write('{"question": "' + "y" * (20 << 20) + '"}\n')  # 20 MB on one line
        handle.write(json.dumps(ROWS[1]) + "\n")
    rows = read_rows(path, "rows", keep_oversize=True)
    assert rows[1][0] == {"_oversize": f"a line of {(20 << 20) + 17} bytes"} and rows[2][0] == ROWS[1]


def test_oversize_parquet_cells_are_found_in_arrow(tmp_path):
    table = pa.table({"question": ["a", "b" * (MAX_FIELD_BYTES + 1), "c"], "answer": ["1", "2", "3"]})
    pq.write_table(table, tmp_path / "rows.parquet")
    rows = read_rows(tmp_path / "rows.parquet", "rows", keep_oversize=True)
    assert rows[1][0] == {"_oversize": f"field 'question' of {MAX_FIELD_BYTES + 1} bytes"}
    assert [row["question"] for row, _ in (rows[0], rows[2])] == ["a", "c"]


def test_rows_without_answers_are_an_error(tmp_path, capsys):
    path = write_rows(tmp_path / "rows.jsonl", [{"question": "q1"}, {"question": "q2", "answer": ""}])
    assert main(["curate", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "no row has an 'answer'" in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["file", "earlier", "inside", "contains"])
def test_an_out_folder_we_must_not_fill_is_refused(case, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    path = write_rows(data / "rows.jsonl", ROWS)
    out = {"file": path, "earlier": tmp_path / "out", "contains": tmp_path}.get(case)
    if case == "inside":  # a folder of shards as input, the output inside it
        assert main(["curate", str(path), "--out", str(tmp_path / "first")]) == 0
        path, out = tmp_path / "first" / "curated", tmp_path / "first" / "curated" / "again"
    if case == "earlier":
        assert main(["curate", str(path), "--out", str(out)]) == 0
        capsys.readouterr()
        before = sorted(p.name for p in (out / "rejected").iterdir())
    assert main(["curate", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert {"file": "is a file", "earlier": "choose an empty folder", "inside": "overlap", "contains": "overlap"}[
        case
    ] in err
    if case == "earlier":
        assert sorted(p.name for p in (out / "rejected").iterdir()) == before


def test_a_curation_only_recipe_is_enough(tmp_path, capsys):
    path = write_rows(tmp_path / "rows.jsonl", ROWS)
    (tmp_path / "curation.yaml").write_text("curation:\n  verify: true\n  dedup: true\n")
    assert main(["curate", str(path), "--recipe", str(tmp_path / "curation.yaml"), "--out", str(tmp_path / "o")]) == 0
    (tmp_path / "bad.yaml").write_text("curation:\n  verfy: true\n")
    assert main(["curate", str(path), "--recipe", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "p")]) == 2
    assert "unknown key 'curation.verfy'" in capsys.readouterr().err


def test_a_corrupt_response_cache_is_one_line(tmp_path, capsys):
    path = write_rows(tmp_path / "rows.jsonl", ROWS)
    cache = tmp_path / "junk.sqlite"
    cache.write_bytes(b"this is not a database" * 100)
    assert main(["curate", str(path), "--out", str(tmp_path / "out"), "--cache", str(cache)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("synthloop: error:") and "move it aside" in err and "\n" not in err


def test_input_file_errors_still_name_the_line(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"question": "a", "answer": "1"}\n{not json}\n')
    with pytest.raises(InputFileError, match="line 2: not valid JSON"):
        read_rows(tmp_path / "rows.jsonl", "rows")


def test_the_curate_cache_is_a_real_sqlite_file(tmp_path):
    path = write_rows(tmp_path / "rows.jsonl", ROWS)
    assert main(["curate", str(path), "--out", str(tmp_path / "out")]) == 0
    with sqlite3.connect(tmp_path / "out" / "cache" / "responses.sqlite") as db:
        assert db.execute("select count(*) from responses").fetchone() == (0,)  # no judge: nothing to cache


def test_a_second_curate_of_the_same_rows_sends_no_judge_call(tmp_path):
    from synthloop.testing import serve_in_thread
    from synthloop.testing.judges import reference_judge
    from synthloop.testing.simulated_server import SimulatedServer

    path = write_rows(tmp_path / "rows.jsonl", ROWS[:6])
    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0,
                             responder=reference_judge({r["question"]: r["answer"] for r in ROWS}))  # fmt: skip
    with serve_in_thread(server.app()) as url:
        recipe = f"curation:\n  judge:\n    teacher: {{backend: openai, model: simulated, base_url: '{url}/v1'}}\n"
        (tmp_path / "judge.yaml").write_text(recipe)
        cache = tmp_path / "judge-cache.sqlite"
        for out in ("first", "second"):
            args = ["curate", str(path), "--recipe", str(tmp_path / "judge.yaml"), "--cache", str(cache)]
            assert main([*args, "--out", str(tmp_path / out)]) == 0
            if out == "first":
                paid = sum(server.completed.values())
    assert paid == 6 and sum(server.completed.values()) == paid


NO_VERIFY = "curation:\n  verify: false\n  dedup: true\n"  # nothing downstream would notice a missing answer


def test_a_row_without_an_answer_is_rejected_naming_its_line(tmp_path):
    rows = [ROWS[0], {"question": "q2"}, {"question": "q3", "answer": "  "}, {"question": "q4", "answer": None}]
    path = write_rows(tmp_path / "rows.jsonl", rows)
    (tmp_path / "recipe.yaml").write_text(NO_VERIFY)
    assert main(["curate", str(path), "--recipe", str(tmp_path / "recipe.yaml"), "--out", str(tmp_path / "o")]) == 0
    assert [r.answer for r in read_records(tmp_path / "o" / "curated")] == ["1"]
    rejected = read_records(tmp_path / "o" / "rejected")
    assert [(r.reject_reason, r.verdicts[-1].detail) for r in rejected] == [
        ("missing_answer", f"{path} line {n}: no 'answer'") for n in (2, 3, 4)
    ]


def test_a_shard_row_without_an_answer_is_rejected(tmp_path):
    from synthloop.records import Record
    from synthloop.storage.shards import write_records

    records = [Record("solution", "user", f"q{i}", "synthetic", 1, answer=a) for i, a in enumerate(["1", None])]
    write_records(tmp_path / "shards", records, 10)
    (tmp_path / "recipe.yaml").write_text(NO_VERIFY)
    args = ["curate", str(tmp_path / "shards"), "--recipe", str(tmp_path / "recipe.yaml")]
    assert main([*args, "--out", str(tmp_path / "o")]) == 0
    assert [r.reject_reason for r in read_records(tmp_path / "o" / "rejected")] == ["missing_answer"]


def test_an_answer_that_is_not_text_is_one_line_but_a_number_is_text(tmp_path, capsys):
    path = write_rows(tmp_path / "rows.jsonl", [{"question": "q1", "answer": 4}, {"question": "q2", "answer": ["4"]}])
    assert main(["curate", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err == f"synthloop: error: {path} line 2: 'answer' must be text or a number, not a list\n"
    assert not (tmp_path / "o").exists()
    path = write_rows(tmp_path / "rows.jsonl", [{"question": "q1", "answer": 4, "reasoning": "2 + 2"}])
    assert main(["curate", str(path), "--out", str(tmp_path / "o")]) == 0
    assert [r.answer for r in read_records(tmp_path / "o" / "curated")] == ["4"]


def test_an_out_under_a_file_and_rows_that_are_a_fifo_are_one_line(tmp_path, capsys):
    import os

    path = write_rows(tmp_path / "rows.jsonl", ROWS)
    (tmp_path / "notes.txt").write_text("not a folder")
    assert main(["curate", str(path), "--out", str(tmp_path / "notes.txt" / "out")]) == 2
    assert "is a file; choose another folder" in capsys.readouterr().err
    os.mkfifo(tmp_path / "fifo.jsonl")  # opening it to read would wait for a writer forever
    assert main(["curate", str(tmp_path / "fifo.jsonl"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"synthloop: error: rows is not a regular file: {tmp_path / 'fifo.jsonl'}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo.jsonl", "notes.txt", "rows.jsonl"]
