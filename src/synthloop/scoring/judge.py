"""`judge`: an LLM grades the student's answer against the reference, through the engine (cached,
rate-limited, never paid twice) and the curation judge's machinery (`curation/judge.py`: a JSON reply
`{"score": 1-10, "reason": ...}`, one repair request for a reply that is not that JSON).

The judge sees the rubric, the question, the reference answer and the student's whole reply. A score at
or above `threshold` is 1.0, below it 0.0; the judge's reason is the detail. A reply that stays
unusable after the repair, or a call that fails after the engine's retries, scores 0 with the reason and
is marked unscored (counted in eval.json and the log). When more than a tenth of a round's answers are
unscored, the task source stops the run instead (`refuse_unscored`): `--resume` asks the judge again for
those only. A refused key stops it too (one line naming `task.scorer.judge.teacher`), since every
later call would fail the same way, and so does a budget cap of the judge's (`BudgetExhausted`: the run
stops cleanly and resumes without paying again), since unscored answers would read as wrong ones."""

from __future__ import annotations

from collections.abc import Sequence

from synthloop.config import JudgeConfig, RecipeError, ScorerConfig
from synthloop.curation.judge import SCORE_SCHEMA, Reply, ask, judge_request, judge_unavailable, shown
from synthloop.scoring.context import ScoringContext
from synthloop.scoring.item import Score, TaskItem
from synthloop.skills.final_answer import extract_final_answer
from synthloop.teachers.base import Teacher, TeacherRequest, TeacherUnavailable
from synthloop.teachers.engine import BudgetExhausted, Engine

WHERE = "task.scorer.judge"
MAX_SHOWN_CHARS = 20_000  # of the question, the reference and the reply, each: a judge prompt has a bound
INSTRUCTIONS = (
    "You grade a student's answer to a question against the reference answer, which is correct. "
    "Rubric (score 1 to 10):\n{rubric}\n"
    "An answer that reaches a different final result than the reference, hedges between several answers, "
    "or states none is wrong, however well it is explained. "
    'Reply with only a JSON object: {{"score": <integer 1-10>, "reason": "<one sentence>"}}.'
)


def grading_request(rubric: str, item: TaskItem, reply: str, max_tokens: int) -> TeacherRequest:
    user = (
        f"Question:\n{item.question[:MAX_SHOWN_CHARS]}\n\n"
        f"Reference answer:\n{item.answer[:MAX_SHOWN_CHARS]}\n\n"
        f"Student's answer:\n{reply[-MAX_SHOWN_CHARS:]}"
    )
    return judge_request(INSTRUCTIONS.format(rubric=rubric), user, SCORE_SCHEMA, max_tokens)


class JudgeScorer:
    name = "judge"

    def __init__(self, config: JudgeConfig, teacher: Teacher, context: ScoringContext):
        self.config, self.teacher, self.context = config, teacher, context

    @classmethod
    def from_config(cls, config: ScorerConfig, context: ScoringContext) -> JudgeScorer:
        from synthloop.teachers.factory import check_teacher, make_teacher

        judge = config.judge
        if judge is None:  # the recipe refuses this; a hand-made config still gets one line
            raise RecipeError(f"scorer judge needs {WHERE}: {{teacher: {{backend: openai, base_url: ..., model: ..}}}}")
        key = judge.teacher.model_dump_json()
        if key not in context.judges:
            try:
                teacher = make_teacher(judge.teacher)
                if context.check:
                    check_teacher(teacher)  # an unreachable judge fails now, before anything is written
            except TeacherUnavailable as err:
                raise TeacherUnavailable(judge_unavailable(str(err), WHERE)) from None
            context.judges[key] = teacher
        return cls(judge, context.judges[key], context)

    def engine(self) -> Engine:
        """Made per batch from the context, so calls land in the run's cache once the loop attaches it."""
        from synthloop.teachers.factory import engine_settings

        run_id = f"{self.context.run_id}/scorer-judge"
        return Engine(self.teacher, engine_settings(self.config.teacher), self.context.cache, run_id)

    def score(self, outputs: Sequence[str], items: Sequence[TaskItem]) -> list[Score]:
        pairs = list(zip(outputs, items, strict=True))
        asked = [(i, o, item) for i, (o, item) in enumerate(pairs) if o.strip()]
        scores = [Score(0.0, None, "an empty answer")] * len(pairs)
        requests = [grading_request(self.config.rubric, item, o, self.config.max_tokens) for _, o, item in asked]
        replies = ask(self.engine(), requests, WHERE) if requests else []
        if any(reply.unsent for reply in replies):  # zeros would read as a weak student: stop, resumable
            raise BudgetExhausted(f"a budget cap under {WHERE}.teacher stopped the judge scorer's calls")
        for (i, output, _), reply in zip(asked, replies, strict=True):
            scores[i] = self.graded(reply, extract_final_answer(output))
        return scores

    def graded(self, reply: Reply, extracted: str | None) -> Score:
        if reply.failed_call:
            return Score(0.0, extracted, f"judge call failed: {shown(reply.failure or 'no reply')}", unscored=True)
        if reply.value is None:
            said = f"judge reply unusable ({reply.failure}); the judge said: {shown(reply.text)}"
            return Score(0.0, extracted, said, unscored=True)
        score, reason = float(reply.value["score"]), str(reply.value["reason"])
        passed = score >= self.config.threshold
        return Score(float(passed), extracted, f"judge score {score:g} (threshold {self.config.threshold:g}): {reason}")

    def check_reference(self, item: TaskItem) -> str | None:
        return None if item.answer.strip() else "an empty reference answer (the judge compares with it)"
