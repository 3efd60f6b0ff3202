"""User data files (golden sets, eval sets, curate rows, generate inputs) as hostile input: text nested in
lists and objects counts toward the size cap, in JSONL and in Parquet (lists, maps, structs, dictionary
columns), a lone surrogate or a number Python will not convert is one line naming the line, a byte-order
mark is not an error, a Parquet column of bytes that are not UTF-8 is one line, and plain-text inputs are
split on newlines only and bounded. Real files, the real readers and the real CLI."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from synthloop.cli.main import main
from synthloop.config import RecipeError
from synthloop.generate import load_job, read_inputs
from synthloop.grounding.golden import GoldenSetError, load_golden_file
from synthloop.storage.input_files import MAX_FIELD_BYTES, OVERSIZE, InputFileError, read_rows
from synthloop.storage.shards import read_records

BIG = "x" * (MAX_FIELD_BYTES + 1)
HALF = "y" * (MAX_FIELD_BYTES // 2 + 1)  # two of them in one field are over the cap, neither alone


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def row(i, **extra):
    return json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1), **extra})


def test_text_nested_in_a_jsonl_field_counts_toward_the_cap(tmp_path, capsys):
    path = write_lines(
        tmp_path / "golden.jsonl",
        [row(0), row(1, reasoning=[HALF, HALF]), row(2, meta={"notes": {"long": BIG}}), row(3, meta={"k": "v"})],
    )
    rows = load_golden_file(path)
    assert [r.question for r in rows] == ["What is 0 + 1?", "What is 3 + 1?"]
    assert "2 rows skipped with a field over" in capsys.readouterr().err
    assert main(["curate", str(path), "--out", str(tmp_path / "out")]) == 0
    rejected = read_records(tmp_path / "out" / "rejected")
    assert [(r.reject_reason, r.verdicts[-1].detail.split(": ", 1)[1]) for r in rejected] == [
        ("oversize_field", f"field 'reasoning' of {2 * len(HALF)} bytes"),
        ("oversize_field", f"field 'meta' of {len(BIG) + len('notes') + len('long')} bytes"),
    ]


def test_nested_parquet_cells_are_measured_in_arrow_across_batches(tmp_path):
    n = 2500  # three batches of 1,024 rows, two row groups
    big_at = {"msgs": 5, "labels": 1100, "meta": 2047, "category": 2499}
    columns = {
        "question": [f"q{i}" for i in range(n)],
        "answer": ["1"] * n,
        "msgs": [[HALF, HALF] if i == big_at["msgs"] else ["hi"] for i in range(n)],
        "labels": pa.array(
            [[("verify", BIG)] if i == big_at["labels"] else [("verify", "keep")] for i in range(n)],
            type=pa.map_(pa.string(), pa.string()),
        ),
        "meta": [{"a": HALF, "b": HALF} if i == big_at["meta"] else {"a": "x", "b": None} for i in range(n)],
        "category": pa.array([BIG if i == big_at["category"] else "c" for i in range(n)]).dictionary_encode(),
    }
    pq.write_table(pa.table(columns), tmp_path / "rows.parquet", row_group_size=2000)
    rows = read_rows(tmp_path / "rows.parquet", "rows", keep_oversize=True)
    assert len(rows) == n
    oversize = {where: found[OVERSIZE].split()[1] for found, where in rows if OVERSIZE in found}
    assert oversize == {f"{tmp_path / 'rows.parquet'} row {i + 1}": repr(name) for name, i in big_at.items()}
    assert rows[6][0] == {"question": "q6", "answer": "1", "msgs": ["hi"], "labels": [("verify", "keep")],
                          "meta": {"a": "x", "b": None}, "category": "c"}  # fmt: skip
    assert rows[2498][1].endswith("row 2499") and rows[2498][0]["question"] == "q2498"


def test_parquet_text_that_is_not_utf8_is_one_line(tmp_path, capsys):
    offsets = pa.py_buffer(bytes([0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0]))
    questions = pa.Array.from_buffers(pa.string(), 2, [None, offsets, pa.py_buffer(b"ok\xff\xfe")])  # unchecked
    pq.write_table(pa.table({"question": questions, "answer": ["1", "2"]}), tmp_path / "rows.parquet")
    with pytest.raises(InputFileError, match="not UTF-8"):
        read_rows(tmp_path / "rows.parquet", "rows")
    assert main(["curate", str(tmp_path / "rows.parquet"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("synthloop: error: cannot read rows") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"question": "\\ud800 what?", "answer": "1"}', r"line 2: field 'question' holds a lone surrogate"),
        ('{"question": "q", "answer": "1", "x": {"\\udfff": 1}}', r"line 2: field 'x' holds a lone surrogate"),
        ('{"question": "q", "answer": ' + "7" * 5000 + "}", r"line 2: a number of over \d+ digits"),
    ],
    ids=["surrogate", "surrogate-key", "long-number"],
)
def test_valid_json_that_is_not_usable_text_is_one_line(line, message, tmp_path, capsys):
    path = write_lines(tmp_path / "rows.jsonl", [row(0), line])
    with pytest.raises(GoldenSetError, match=message):
        load_golden_file(path)
    assert main(["curate", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("synthloop: error:") and err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_a_byte_order_mark_is_not_part_of_the_first_row(tmp_path):
    (tmp_path / "rows.jsonl").write_bytes(b"\xef\xbb\xbf" + (row(0) + "\n" + row(1) + "\n").encode())
    assert [r.answer for r in load_golden_file(tmp_path / "rows.jsonl")] == ["1", "2"]


def job_with_inputs(tmp_path, name):
    job = {
        "name": "course",
        "teacher": {"backend": "openai", "model": "simulated", "base_url": "http://127.0.0.1:9/v1"},
        "steps": [{"name": "book", "task": "textbook", "inputs_file": name}],
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    return tmp_path / "job.yaml"


def test_plain_text_inputs_split_on_newlines_only(tmp_path):
    (tmp_path / "topics.txt").write_bytes("graphs\u2028and trees\nsets\u0085 and maps\r\n\nloops\n".encode())
    load_job(job_with_inputs(tmp_path, "topics.txt"))  # the job's check reads them the same way
    topics = read_inputs(tmp_path / "topics.txt", "topic")
    assert topics == ["graphs\u2028and trees", "sets\u0085 and maps", "loops"]


@pytest.mark.parametrize("content, message", [
    (b"fine\n" + b"z" * (MAX_FIELD_BYTES + 1) + b"\n", rf"line 2: {MAX_FIELD_BYTES + 1} bytes, over the"),
    (b"fine\n\xff\xfe topic\n", r"line 2: not UTF-8 \(byte 0\)"),
], ids=["oversize-line", "not-utf8"])  # fmt: skip
def test_plain_text_inputs_are_bounded_and_checked(content, message, tmp_path, capsys):
    (tmp_path / "topics.txt").write_bytes(content)
    with pytest.raises(RecipeError, match=message):
        load_job(job_with_inputs(tmp_path, "topics.txt"))
    assert main(["generate", str(tmp_path / "job.yaml"), "--run-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not (tmp_path / "run").exists()
