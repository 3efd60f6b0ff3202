"""The collapse lab's language-model experiments: `skills` (the student promoted to teacher) and `text`
(a tiny LM on a human corpus). The runs here are shrunk to seconds; the figures are in bench/RESULTS.md."""

import numpy as np
import pytest

from synthloop.cli.main import main
from synthloop.collapse import lm_experiments
from synthloop.collapse.strategies import CorpusError, parse_strategy
from synthloop.collapse.tiny_lm import TinyShape

SMALL = TinyShape(hidden_size=16, layers=1, heads=2, vocab_size=300, steps=3, batch_size=4)
SMALL_FINE_TUNE = TinyShape(max_len=160, steps=3, batch_size=4, learning_rate=3e-4)


@pytest.fixture
def few_rows(monkeypatch):
    monkeypatch.setattr(lm_experiments, "ROWS", 12)
    monkeypatch.setattr(lm_experiments, "PROBES", 4)


def test_the_default_corpus_is_human_prose_shipped_with_python():
    documents = lm_experiments.default_corpus()
    assert len(documents) > 1000 and all(len(d.split()) >= 8 for d in documents)
    assert any("attribute" in d for d in documents)


def test_skills_experiment_measures_accuracy_and_diversity_per_generation(few_rows):
    """Generation 0 is the classroom teacher; later ones continue training it (here for 3 steps)."""
    figures = lm_experiments.skills(parse_strategy("verify+accumulate"), 2, 1, shape=SMALL_FINE_TUNE)
    assert set(figures) == {"accuracy", "answer_distinct_2", "synthetic_rows"}
    rows = figures.pop("synthetic_rows")
    assert rows[0, 0] == 0 and (rows[1:] <= 12).all() and rows[1, 0] >= 6  # the teacher is mostly right
    assert figures["accuracy"][0, 0] >= 0.5  # generation 0 is the shipped teacher, not a fresh model
    for values in figures.values():
        assert values.shape == (3, 1) and np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()


def test_text_experiment_measures_perplexity_diversity_and_rare_mass(few_rows, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"document {i} says the {i % 7} quick fox jumped {i} times" for i in range(40)))
    figures = lm_experiments.text(parse_strategy("replace"), 1, 2, corpus=corpus, shape=SMALL)
    assert set(figures) == {"perplexity", "distinct_2", "rare_pair_mass", "synthetic_rows"}
    assert figures["perplexity"].shape == (2, 2) and (figures["perplexity"] > 1).all()


def test_training_data_follows_the_strategy():
    pools = lm_experiments.Pools(real=[([1], 0)] * 4, synthetic=[[([2], 0)] * 4, [([3], 0)] * 4])
    rng = __import__("random").Random(0)
    fresh = lambda n: [([9], 0)] * n  # noqa: E731
    assert lm_experiments.training_data(parse_strategy("replace"), pools, fresh, rng) == [([3], 0)] * 4
    nothing_kept = lm_experiments.Pools(real=[([1], 0)] * 4, synthetic=[[]])
    assert lm_experiments.training_data(parse_strategy("verify"), nothing_kept, fresh, rng) == []  # not real data
    assert len(lm_experiments.training_data(parse_strategy("accumulate"), pools, fresh, rng)) == 12
    mixed = lm_experiments.training_data(parse_strategy("mix:0.5"), pools, fresh, rng)
    assert mixed.count(([9], 0)) == round(0.5 * lm_experiments.ROWS) and ([3], 0) in mixed


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "has no documents"),
        (b"   \n\n  \n", "has no documents"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "holds NUL bytes"),
        (b"caf\xe9 au lait\n" * 30, "is not UTF-8 text (invalid byte at offset 3)"),
        (b"one document\n\nanother one\n", "has 2 documents; the text experiment needs at least 20"),
        ("text\n\n".encode("utf-16") * 30, "is UTF-16; convert it to UTF-8"),
    ],
)
def test_a_bad_corpus_is_one_line_and_writes_nothing(tmp_path, capsys, content, message):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    out = tmp_path / "lab"
    assert main(["collapse", "--experiment", "text", "--corpus", str(corpus), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(corpus) in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_missing_corpus_names_the_path(tmp_path):
    with pytest.raises(CorpusError, match="cannot be read"):
        lm_experiments.load_corpus(tmp_path / "nope.txt")


@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "folder"])
def test_a_corpus_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path, special):
    import os

    path = {"fifo": tmp_path / "fifo", "folder": tmp_path}.get(special, special)
    if special == "fifo":
        os.mkfifo(path)
    with pytest.raises(CorpusError, match="is not a regular file"):
        lm_experiments.load_corpus(path)


def test_a_corpus_too_large_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(lm_experiments, "MAX_CORPUS_BYTES", 100)
    big = tmp_path / "big.txt"
    big.write_text("word " * 100)
    with pytest.raises(CorpusError, match="reads at most 100"):
        lm_experiments.load_corpus(big)


def test_a_utf8_bom_is_not_part_of_the_first_document(tmp_path):
    corpus = tmp_path / "bom.txt"
    corpus.write_bytes("\ufeff".encode() + "\n".join(f"line {i} here" for i in range(25)).encode())
    assert lm_experiments.load_corpus(corpus)[0] == "line 0 here"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--experiment", "all", "--corpus", "/dev/null"], "is not a regular file"),
        (["--experiment", "gaussian", "--strategies", ""], "--strategies is empty"),
        (["--experiment", "gaussian", "--strategies", ",,"], "--strategies is empty"),
        (["--experiment", "gaussian", "--strategies", "replace,replace"], "given twice"),
        (["--experiment", "gaussian", "--generations", "100000000"], "is too large for one run"),
        (["--experiment", "gaussian", "--out", "/proc/nope"], "cannot create or write in"),
    ],
)
def test_every_input_is_checked_before_anything_runs(tmp_path, capsys, args, message):
    out = ["--out", str(tmp_path / "lab")] if "--out" not in args else []
    assert main(["collapse", *args, *out]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "lab").exists()


def test_all_checks_each_experiments_folder_first(tmp_path, capsys):
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "text").write_text("x")
    assert main(["collapse", "--experiment", "all", "--out", str(tmp_path / "lab")]) == 2
    assert "text is a file" in capsys.readouterr().err and sorted(p.name for p in (tmp_path / "lab").iterdir()) == [
        "text"
    ]


def test_out_that_is_a_file_is_refused_first(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["collapse", "--experiment", "gaussian", "--out", str(afile)]) == 2
    assert "is a file" in capsys.readouterr().err and afile.read_text() == "x"


def test_one_document_per_line_when_there_are_no_blank_lines(tmp_path):
    corpus = tmp_path / "lines.txt"
    corpus.write_text("\n".join(f"line {i} of the corpus" for i in range(25)))
    assert len(lm_experiments.load_corpus(corpus)) == 25
