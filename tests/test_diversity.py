"""The round's diversity signals move the way collapse moves them: repeated rows lower distinct-n and
raise the compression ratio."""

from synthloop.monitoring.diversity import compression_ratio, distinct_n, diversity
from synthloop.records import Record


def rows(questions: list[str]) -> list[Record]:
    made = dict(kind="solution", skill="s", source="synthetic", round=1)
    return [Record(question=q, answer=str(i), reasoning=f"work {i}", **made) for i, q in enumerate(questions)]


VARIED = [f"What is {a} + {b}? Then subtract {a * b % 17} and say it in words." for a in range(20) for b in range(5)]
REPEATED = ["What is 1 + 1? Then subtract 0 and say it in words."] * 100


def test_repeated_rows_have_less_distinct_n_and_compress_better():
    assert distinct_n(VARIED, 2) > distinct_n(REPEATED, 2) and distinct_n(REPEATED, 3) < 0.2
    assert compression_ratio(REPEATED) > 3 * compression_ratio(VARIED) > 3
    assert compression_ratio([]) == 0.0 and distinct_n([], 2) == 0.0


def test_the_monitor_reports_the_synthetic_rows_only():
    human = [Record(kind="solution", skill="s", question="x y z", answer="1", source="human", round=1)] * 50
    varied, repeated = diversity(rows(VARIED) + human), diversity(rows(REPEATED) + human)
    assert varied["synthetic_share_of_train"] == repeated["synthetic_share_of_train"] == round(100 / 150, 4)
    assert varied["distinct_3_texts"] > repeated["distinct_3_texts"]
    assert varied["compression_ratio"] < repeated["compression_ratio"]


def test_a_seeded_sample_of_a_stream_is_the_same_in_any_order_and_takes_twins():
    from synthloop.monitoring.diversity import SeededSample

    rows = [Record(kind="solution", skill="s", question=f"q{i % 300}", source="synthetic", round=1) for i in range(600)]
    forward, backward = SeededSample(3, 50), SeededSample(3, 50)
    for row in rows:
        forward.offer(row)
    for row in reversed(rows):
        backward.offer(row)
    assert [r.id for r in forward.rows()] == [r.id for r in backward.rows()]  # rows with one id come in twos
    assert len(forward.rows()) == 50 and len({r.id for r in forward.rows()}) == 25
    other = SeededSample(4, 50)
    for row in rows:
        other.offer(row)
    assert {r.id for r in other.rows()} != {r.id for r in forward.rows()}  # another seed, another sample
