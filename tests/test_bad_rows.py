"""Bad input never crashes a stage: empty text, a 10 MB row and undecodable bytes each get a verdict
(judges answering in prose and code that never ends are covered in test_judges and test_sandbox)."""

import time

import pytest

from synthloop.curation.decontaminate import Decontaminate
from synthloop.curation.dedup import ExactDedup
from synthloop.curation.near_dedup import NearDedup
from synthloop.curation.pii import RedactPII
from synthloop.curation.quality import QualityFilter
from synthloop.curation.self_consistency import SelfConsistency
from synthloop.curation.semantic_dedup import SemanticDedup
from synthloop.curation.verify import VerifyAnswers
from synthloop.records import Record
from synthloop.storage.shards import read_records, write_records

HUGE = "lorem ipsum dolor sit amet " * 400_000  # about 10 MB


def bad_rows():
    undecodable = b"caf\xe9 costs 3 \xff\xfe euros".decode("utf-8", errors="surrogateescape")
    return [
        Record("solution", "addition", "", "synthetic", 1, answer="", reference_answer="4"),
        Record(
            "solution", "addition", "What is 2 + 2?", "synthetic", 1, reasoning=HUGE, answer="4", reference_answer="4"
        ),
        Record("solution", "addition", HUGE, "synthetic", 1, answer=HUGE, reference_answer="4"),
        Record(
            "solution", "", undecodable, "synthetic", 1, reasoning=undecodable, answer=undecodable, reference_answer="3"
        ),
        Record("solution", "unknown_skill", "What is x?", "synthetic", 1, answer=None, reference_answer="x"),
    ]


STAGES = [
    VerifyAnswers,
    SelfConsistency,
    RedactPII,
    QualityFilter,
    lambda: Decontaminate({"probes": ["What is the sum of two and two when you add them together?"]}),
    ExactDedup,
    lambda: NearDedup(field="all"),
    lambda: SemanticDedup(field="all"),
]


@pytest.mark.parametrize("make_stage", STAGES)
def test_every_stage_gives_every_bad_row_a_verdict(make_stage):
    stage = make_stage()
    start = time.perf_counter()
    out = list(stage.run(bad_rows()))
    assert len(out) == 5
    for row in out:
        mine = [v for v in row.verdicts if v.stage == stage.name]
        if not row.kept:
            assert any(v.reason for v in mine), f"{stage.name} rejected a row without a reason"
        if stage.name == "self_consistency" and row.answer is None:
            continue  # no answer, no vote: the verifier rejects it (parse_error)
        assert mine, f"{stage.name} left a row without a verdict: {row.question[:40]!r}"
    assert time.perf_counter() - start < 120, "a 10 MB row must not stall a stage"


def test_bad_rows_are_stored_and_read_back(tmp_path):
    rows = list(VerifyAnswers().run(bad_rows()))
    write_records(tmp_path / "rows", rows, 10)
    back = read_records(tmp_path / "rows")
    assert [r.id for r in back] == [r.id for r in rows]
    assert back[3].question == "caf\ufffd costs 3 \ufffd\ufffd euros"
    assert [r.reject_reason for r in back] == ["wrong_answer", None, "wrong_answer", None, "parse_error"]


def test_copies_of_a_text_are_duplicates_at_threshold_one_whatever_their_last_bits():
    """One text embedded in different batches differs in its last bits (cosine 0.9999999 with itself):
    with `threshold: 1.0` its copies are still duplicates, on either engine."""
    pytest.importorskip("faiss", reason="the 'semantic' extra is not installed")
    import numpy as np

    from synthloop.curation.semantic_dedup import greedy_semantic_matches

    rng = np.random.default_rng(0)
    text = rng.normal(size=384).astype(np.float32)
    other = rng.normal(size=384).astype(np.float32)
    copies = [text + rng.normal(scale=2e-3, size=384).astype(np.float32) for _ in range(3)]
    vectors = np.stack([*copies, other])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert 1 - 1e-5 < float(vectors[0] @ vectors[1]) < 1 - 1e-7  # not bit-identical
    matches = greedy_semantic_matches(vectors, 1.0)
    assert [m.representative for m in matches] == [0, 0, 0, 3]
