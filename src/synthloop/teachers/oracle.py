"""The skills oracle: a teacher that writes each problem's reference chain of thought.

With `noise` > 0 it corrupts that share of final answers (chosen by a hash of the problem and the
sample, so the same problem always gets the same answer): a stand-in for a fallible teacher that gives
verification real errors to catch, with exact labels."""

from __future__ import annotations

import hashlib
import random
import re

from synthloop.skills.answers import parse_number
from synthloop.teachers.base import Teacher, TeacherError, TeacherRequest, TeacherResponse


class OracleTeacher(Teacher):
    backend = "oracle"

    def __init__(self, model: str = "skills-reference", noise: float = 0.0, seed: int = 0):
        self.model, self.noise, self.seed = model, noise, seed

    async def complete(self, request: TeacherRequest) -> TeacherResponse:
        problem = request.problem
        if problem is None:
            raise TeacherError(
                "the oracle teacher answers only skill problems (request has no problem)", retryable=False
            )
        texts = []
        for sample in range(request.sampling.n):
            # Which answers are corrupted depends on the problem and the sample only, not on sampling
            # settings or model name, so changing those does not change the data.
            stream = f"{self.seed}/{problem.skill}/{problem.question}/{request.sample_index}/{sample}"
            rng = random.Random(int(hashlib.sha256(stream.encode()).hexdigest()[:16], 16))
            answer = corrupt(problem.answer, rng) if rng.random() < self.noise else problem.answer
            texts.append("\n".join((*problem.steps, f"#### {answer}")))
        prompt_words = sum(len(m.content.split()) for m in request.messages)
        return TeacherResponse(
            tuple(texts), prompt_tokens=prompt_words, completion_tokens=sum(len(t.split()) for t in texts)
        )


FLIPS = {"yes": "no", "no": "yes", "true": "false", "false": "true"}


def corrupt(answer: str, rng: random.Random) -> str:
    """A plausible wrong answer: a number nudged, a coordinate shifted, a yes/no flipped, a list reordered."""
    if answer in FLIPS:
        return FLIPS[answer]
    numbers = list(re.finditer(r"-?\d+(?:\.\d+)?(?:/\d+)?", answer))
    if len(numbers) > 1 and "," in answer and not answer.startswith("("):  # an ordered list: swap two
        parts = answer.split(", ")
        i = rng.randrange(len(parts) - 1)
        parts[i], parts[i + 1] = parts[i + 1], parts[i]
        return ", ".join(parts)
    target = numbers[rng.randrange(len(numbers))] if numbers else None
    if target is None:
        return answer + " (unsure)"
    value = parse_number(target.group())
    nudged = value + rng.choice([-2, -1, 1, 2, 10]) if value is not None else 1
    shown = str(nudged.numerator) if nudged.denominator == 1 else f"{nudged.numerator}/{nudged.denominator}"
    if "." in target.group():
        shown = str(float(nudged))
    return answer[: target.start()] + shown + answer[target.end() :]
