"""LLM-as-judge through any teacher backend.

Pointwise (`LLMJudge`): the judge reads a rubric, the question and the written answer, and replies with
JSON `{"score": 1-10, "reason": "..."}`; rows scoring below `threshold` are rejected with the judge's
reason. Pairwise (`PairwiseJudge`): rows answering the same question are compared two at a time, each
pair in both orders (A/B, then B/A) so that a judge that favours a position cancels out; the rows that
win the most comparisons are kept.

A judge reply that is not the JSON asked for gets one repair request (the reply and the reason shown
back); if that fails too, the row gets a verdict saying so (`judge_unparsed`, rejected unless
`on_unparsed="keep"`). A judge call that fails after the engine's retries rejects the row with
`judge_failed`. Calls go through the engine, so they are cached, rate-limited and never paid twice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Literal

from synthloop.curation.base import BatchStage
from synthloop.curation.groups import Decision, GroupedStage, Member
from synthloop.records import Message, Record
from synthloop.tasks.base import parse_json, repair_request
from synthloop.teachers.base import SamplingParams, TeacherRequest, TeacherResponse, TeacherUnavailable
from synthloop.teachers.engine import Engine

DEFAULT_RUBRIC = (
    "10: correct, complete and clearly reasoned. 7: correct, with minor flaws in the explanation. "
    "4: partly wrong, or right by luck. 1: wrong, off-topic or harmful."
)
SCORE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 10},
        "reason": {"type": "string"},
    },
    "required": ["score", "reason"],
}
PAIRWISE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"winner": {"enum": ["A", "B", "tie"]}, "reason": {"type": "string"}},
    "required": ["winner", "reason"],
}
OnUnparsed = Literal["reject", "keep"]


def written_answer(record: Record) -> str:
    """What the student would learn from: the reasoning and the final answer."""
    final = f"Final answer: {record.answer}" if record.answer is not None else "(no final answer)"
    return f"{record.reasoning}\n{final}".strip()


def judge_request(instructions: str, user: str, schema: dict[str, Any], max_tokens: int) -> TeacherRequest:
    """A greedy request whose system message holds the instructions and the JSON shape to reply in."""
    return TeacherRequest(
        (Message("system", instructions), Message("user", user)),
        SamplingParams(temperature=0.0, max_tokens=max_tokens),
        response_schema=schema,
    )


def score_request(rubric: str, question: str, answer: str, max_tokens: int) -> TeacherRequest:
    instructions = (
        f"You grade answers to questions. Rubric (score 1 to 10):\n{rubric}\n"
        'Reply with only a JSON object: {"score": <integer 1-10>, "reason": "<one sentence>"}.'
    )
    return judge_request(instructions, f"Question:\n{question}\n\nAnswer:\n{answer}", SCORE_SCHEMA, max_tokens)


def pairwise_request(rubric: str, question: str, first: str, second: str, max_tokens: int) -> TeacherRequest:
    instructions = (
        f"You compare two answers to the same question. What makes an answer good:\n{rubric}\n"
        'Reply with only a JSON object: {"winner": "A" | "B" | "tie", "reason": "<one sentence>"}.'
    )
    user = f"Question:\n{question}\n\nAnswer A:\n{first}\n\nAnswer B:\n{second}"
    return judge_request(instructions, user, PAIRWISE_SCHEMA, max_tokens)


@dataclass(frozen=True)
class Reply:
    """A judge's parsed reply: `value` (the JSON object) or `failure` (why there is none)."""

    value: dict[str, Any] | None
    failure: str | None = None
    failed_call: bool = False  # the call itself failed (after retries), as opposed to an unusable reply
    text: str = ""  # the judge's words as returned
    unsent: bool = False  # a budget cap kept the call from being sent


def ask(engine: Engine, requests: Sequence[TeacherRequest], where: str = "curation.judge") -> list[Reply]:
    """One reply per request, in order. An unusable reply gets one repair request; what still fails is
    returned as a `Reply` with the reason, never raised. `where`: the recipe key of the judge's settings,
    named when its key is refused."""
    replies = [parse_reply(r, q) for q, r in zip(requests, _run(engine, requests, where), strict=True)]
    retry = [i for i, reply in enumerate(replies) if reply.value is None and not reply.failed_call]
    repairs = [
        repair_request(requests[i], replies[i].text, replies[i].failure or "", requests[i].response_schema or {})
        for i in retry
    ]
    for i, response in zip(retry, _run(engine, repairs, where), strict=True):
        repaired = parse_reply(response, requests[i])  # checked against the original request's schema
        if repaired.value is not None:
            replies[i] = repaired
    return replies


def _run(engine: Engine, requests: Sequence[TeacherRequest], where: str) -> list[TeacherResponse | None]:
    from synthloop.runners.local import run_engine

    try:
        return run_engine(engine, requests)[0] if requests else []
    except TeacherUnavailable as err:  # a key refused mid-curation: say it is the judge's, and which keys to fix
        raise TeacherUnavailable(judge_unavailable(str(err), where)) from None


def judge_unavailable(message: str, where: str = "curation.judge") -> str:
    """A teacher's one-line refusal, reworded for the judge (whose settings live under `where`)."""
    return message.replace("teacher.", f"{where}.teacher.").replace("the teacher", "the judge")


def parse_reply(response: TeacherResponse | None, request: TeacherRequest) -> Reply:
    if response is None:
        return Reply(None, "not sent: a budget cap was reached", failed_call=True, unsent=True)
    if response.text is None:
        return Reply(None, response.error or "the call failed", failed_call=True)
    value, failure = parse_json(response.text, request.response_schema or {})
    return Reply(value, failure, text=response.text)


def shown(text: str, limit: int = 160) -> str:
    """A reply quoted in a verdict's detail, on one line and cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class LLMJudge(BatchStage):
    """Pointwise judge: a score of 1-10 per row; rows below `threshold` are rejected. A batch's calls
    run concurrently (as many at once as the judge's teacher settings allow)."""

    name = "judge"
    batch_rows = 4096

    def __init__(
        self,
        engine: Engine,
        rubric: str = DEFAULT_RUBRIC,
        threshold: float = 7,
        on_unparsed: OnUnparsed = "reject",
        max_tokens: int = 256,
    ):
        self.engine, self.rubric, self.threshold = engine, rubric, threshold
        self.on_unparsed, self.max_tokens = on_unparsed, max_tokens
        self.abstained = 0  # replies that gave no score (kept or rejected per on_unparsed): never unseen

    def judge_batch(self, rows: list[Record]) -> None:
        requests = [score_request(self.rubric, r.question, written_answer(r), self.max_tokens) for r in rows]
        for record, reply in zip(rows, ask(self.engine, requests), strict=True):
            self.abstained += reply.value is None and not reply.failed_call
            record.add_verdict(self.name, *self.verdict(reply))

    def verdict(self, reply: Reply) -> tuple[bool, str | None, float | None, str]:
        if reply.failed_call:
            return False, "judge_failed", None, reply.failure or ""
        if reply.value is None:
            detail = f"{reply.failure}; the judge said: {shown(reply.text)}"
            return self.on_unparsed == "keep", "judge_unparsed", None, detail
        score, reason = float(reply.value["score"]), str(reply.value["reason"])
        if score < self.threshold:
            return False, "low_judge_score", score, reason
        return True, None, score, reason


@dataclass
class PairOutcome:
    """One pair judged in both orders. `winner`: 0 (the first row), 1 (the second) or None (a tie, or the
    two orders disagreed: the judge followed the position, not the content)."""

    winner: int | None
    orders_agree: bool
    reasons: list[str] = field(default_factory=list)
    unparsed: int = 0


def pair_outcome(forward: Reply, backward: Reply) -> PairOutcome:
    """`forward` saw (first, second) as (A, B); `backward` saw them as (B, A)."""
    picks: list[int | None] = []
    reasons, unparsed = [], 0
    for reply, order in ((forward, ("A", "B")), (backward, ("B", "A"))):
        if reply.value is None:
            picks.append(None)
            unparsed += 1
            continue
        winner = reply.value["winner"]
        picks.append(order.index(winner) if winner in order else None)
        reasons.append(str(reply.value["reason"]))
    agree = picks[0] == picks[1] and unparsed == 0
    return PairOutcome(picks[0] if agree else None, agree, reasons, unparsed)


def compare_pairs(
    engine: Engine, rubric: str, pairs: Sequence[tuple[str, str, str]], max_tokens: int = 256
) -> list[PairOutcome]:
    """Judge (question, first answer, second answer) triples, each in both orders."""
    requests = []
    for question, first, second in pairs:
        requests.append(pairwise_request(rubric, question, first, second, max_tokens))
        requests.append(pairwise_request(rubric, question, second, first, max_tokens))
    replies = ask(engine, requests)
    return [pair_outcome(replies[2 * i], replies[2 * i + 1]) for i in range(len(pairs))]


class PairwiseJudge(GroupedStage):
    """Rows answering the same question compete pairwise (every pair, both orders). A row's score is its
    share of comparisons won (a tie or a pair whose two orders disagree counts half); rows below the best
    score of their question are rejected (`lost_pairwise`). A question with one row is kept, with that said.
    The pairs of a batch of questions are judged concurrently."""

    name = "judge_pairwise"
    batch_members = 512

    def __init__(self, engine: Engine, rubric: str = DEFAULT_RUBRIC, max_tokens: int = 256):
        self.engine, self.rubric, self.max_tokens = engine, rubric, max_tokens
        self.pairs = self.orders_agreed = 0  # over every run: how often the judge ignored position
        self.abstained = 0  # questions with one answer: nothing to compare, kept unjudged

    def member(self, record: Record, position: int) -> Member | None:
        return Member(position, record.id, record.question, written_answer(record)) if record.kept else None

    def decide(self, groups: list[list[Member]]) -> list[list[Decision]]:
        index = [(g, i, j) for g in groups if len(g) > 1 for i, j in combinations(range(len(g)), 2)]
        triples = [(g[0].question, g[i].text, g[j].text) for g, i, j in index]
        outcomes = compare_pairs(self.engine, self.rubric, triples, self.max_tokens)
        points: dict[int, float] = {}  # by position
        agreed: dict[int, int] = {}
        for (group, i, j), outcome in zip(index, outcomes, strict=True):
            self.pairs += 1
            self.orders_agreed += outcome.orders_agree
            for side, m in ((0, group[i]), (1, group[j])):
                won = 0.5 if outcome.winner is None else float(outcome.winner == side)
                points[m.position] = points.get(m.position, 0.0) + won
                agreed[m.position] = agreed.get(m.position, 0) + outcome.orders_agree
        return [self.ranked(group, points, agreed) for group in groups]

    def ranked(self, group: list[Member], points: dict[int, float], agreed: dict[int, int]) -> list[Decision]:
        if len(group) == 1:
            self.abstained += 1
            return [Decision(True, None, None, "one answer: nothing to compare")]
        games = len(group) - 1
        best = max(points[m.position] for m in group)
        out = []
        for m in group:
            won = points[m.position]
            detail = f"won {won:g} of {games} comparisons; both orders agreed on {agreed[m.position]}"
            out.append(Decision(won >= best, None if won >= best else "lost_pairwise", won / games, detail))
        return out
