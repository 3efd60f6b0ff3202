"""How a problem and its solution become student text. Training and evaluation share this, so the
prompt the student is tested on is exactly the prompt it was trained to continue."""

from __future__ import annotations


def student_prompt(question: str) -> str:
    return f"Q: {question}\nA:"


def student_completion(reasoning: str, answer: str) -> str:
    body = f"{reasoning}\n#### {answer}" if reasoning else f"#### {answer}"
    return f" {body}"
