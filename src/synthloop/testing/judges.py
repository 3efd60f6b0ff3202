"""Judges with known behaviour, served by `SimulatedServer(responder=...)` over real HTTP: they know
each question's correct answer, so a test (or an audit demonstration) knows exactly what a perfect
judge would say, and can make the judge worse on purpose: wrong some share of the time, biased
towards the first position, or answering in prose instead of JSON."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Literal

from synthloop.skills.answers import normalize_text


def final_answer(text: str) -> str:
    match = re.search(r"Final answer:\s*(.*)", text)
    return normalize_text(match.group(1)) if match else ""


def _chance(body: dict, salt: str) -> float:
    digest = hashlib.sha256((salt + json.dumps(body.get("messages"), sort_keys=True)).encode()).hexdigest()
    return int(digest[:12], 16) / 16**12


def reference_judge(
    references: dict[str, str],
    error_rate: float = 0.0,
    position_bias: float = 0.0,
    prose: Literal["never", "first", "always"] = "never",
) -> Callable[[dict], str]:
    """A responder for pointwise and pairwise judge prompts. `references` maps each question to its
    correct answer. `error_rate`: share of pointwise replies that flip the verdict; `position_bias`: share
    of pairwise replies that say "A" whatever the answers; `prose`: reply in sentences instead of JSON
    always, or only the first time (a repair request then gets JSON)."""
    wanted = {normalize_text(q): normalize_text(a) for q, a in references.items()}

    def respond(body: dict) -> str:
        messages = body["messages"]
        user = next(m["content"] for m in messages if m["role"] == "user")
        repair = len(messages) > 2
        question = re.search(r"Question:\n(.*?)\n\n", user, re.DOTALL)
        correct = wanted.get(normalize_text(question.group(1)) if question else "", "\0")
        if "Answer A:" in user:
            first, second = user.split("Answer A:", 1)[1].split("Answer B:", 1)
            a_ok, b_ok = final_answer(first) == correct, final_answer(second) == correct
            winner = "A" if a_ok > b_ok else "B" if b_ok > a_ok else "tie"
            if _chance(body, "bias") < position_bias:
                winner = "A"
            reply = {"winner": winner, "reason": "compared the final answers with the correct one"}
        else:
            ok = final_answer(user) == correct
            if _chance(body, "error") < error_rate:
                ok = not ok
            reply = {"score": 9 if ok else 2, "reason": "the final answer is " + ("right" if ok else "wrong")}
        if prose == "always" or (prose == "first" and not repair):
            return f"I think this deserves about {reply.get('score', reply.get('winner'))}. {reply['reason']}."
        return json.dumps(reply)

    return respond


def grading_judge(prose: Literal["never", "first", "always"] = "never", fail: float = 0.0) -> Callable[[dict], str]:
    """A responder for the judge scorer's reference-aware prompts: it reads the reference answer and the
    student's answer from the prompt itself, and scores 9 when the student's final answer equals the
    reference, 2 when not. `prose`: as `reference_judge`; `fail`: the share of calls that are a server error
    (1.0: every one; the same prompt always fails or always succeeds)."""
    from synthloop.skills.final_answer import extract_final_answer

    def respond(body: dict) -> str:
        if _chance(body, "fail") < fail:
            raise RuntimeError("the judge's server failed")
        messages = body["messages"]
        user = next(m["content"] for m in messages if m["role"] == "user")
        reference = re.search(r"Reference answer:\n(.*?)\n\nStudent's answer:\n", user, re.DOTALL)
        student = user.split("Student's answer:\n", 1)[-1]
        stated = extract_final_answer(student)
        ok = reference is not None and stated is not None and normalize_text(stated) == normalize_text(reference[1])
        reply = {"score": 9 if ok else 2, "reason": "matches the reference" if ok else "differs from the reference"}
        if prose == "always" or (prose == "first" and len(messages) <= 2):
            return f"I would give it {reply['score']}. {reply['reason']}."
        return json.dumps(reply)

    return respond
