"""How a problem and its solution become the student's tokens. Training and evaluation share this, so the
prompt the student is tested on is exactly (token for token) the prompt it was trained to continue.

Two formats: `chat_template`, the tokenizer's own chat template (a Hub student's native format), used
when the tokenizer has one and the recipe leaves `student.chat_template: auto`; and `plain`, the
`Q: ...\\nA:` text the scratch student learns (BOS before it, EOS after the answer). In both, the
assistant's turn is the reasoning then `#### answer`, and only the completion is trained on."""

from __future__ import annotations

import warnings
from typing import Any, Literal

Format = Literal["chat_template", "plain"]


def student_prompt(question: str) -> str:
    return f"Q: {question}\nA:"


# Rows whose answer is the whole response (a textbook section, a refusal, a correction): no final answer
# to mark, so the assistant's turn is the text itself rather than `#### text`.
PROSE_KINDS = frozenset({"textbook", "refusal", "misinformation"})


def assistant_text(reasoning: str, answer: str | None, kind: str = "solution") -> str:
    if kind in PROSE_KINDS:
        return answer or ""
    return f"{reasoning}\n#### {answer or ''}" if reasoning else f"#### {answer or ''}"


def student_completion(reasoning: str, answer: str, kind: str = "solution") -> str:
    return f" {assistant_text(reasoning, answer, kind)}"


def conversation(question: str, reasoning: str, answer: str | None, kind: str = "solution") -> list[dict[str, str]]:
    """The SFT-ready messages of one training row (what the train shards' `messages` column holds)."""
    assistant = assistant_text(reasoning, answer, kind)
    return [{"role": "user", "content": question}, {"role": "assistant", "content": assistant}]


def row_conversation(row: Any) -> list[dict[str, str]]:
    """A training record's conversation (its question, reasoning, answer and kind)."""
    return conversation(row.question, row.reasoning, row.answer, row.kind)


def sft_ready(row: Any) -> Any:
    """The record with the student's conversation in `messages` (the teacher's prompt stays in curated/)."""
    from synthloop.records import Message

    row.messages = [Message(**turn) for turn in row_conversation(row)]
    return row


def student_format(source: Any) -> Format:
    """The format a recipe's student (or a tokenizer, with `chat_template: auto`) trains and answers in."""
    if hasattr(source, "student"):
        student = source.student
        if student.chat_template == "plain" or student.base == "scratch":
            return "plain"  # the run's own tokenizer has no chat template
        from transformers import AutoTokenizer

        source = AutoTokenizer.from_pretrained(student.base, local_files_only=True)
    return format_of(source, "auto")


def format_of(tokenizer: Any, setting: str) -> Format:
    return "chat_template" if setting == "auto" and getattr(tokenizer, "chat_template", None) else "plain"


def prompt_ids(tokenizer: Any, fmt: Format, question: str) -> list[int]:
    """The tokens the student continues: the chat template's user turn and generation prompt, or BOS + `Q: ...\\nA:`."""
    if fmt == "plain":
        bos = [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]
        return bos + tokenizer(student_prompt(question), add_special_tokens=False)["input_ids"]
    return tokenizer(chat_prompt(tokenizer, question), add_special_tokens=False)["input_ids"]


def completion_ids(
    tokenizer: Any, fmt: Format, question: str, reasoning: str, answer: str | None, kind: str = "solution"
) -> list[int]:
    """The tokens trained on: the assistant's turn as the template closes it (or the plain answer), ending in EOS."""
    if fmt == "plain":
        text = student_completion(reasoning, answer or "", kind)
    else:
        prompt = chat_prompt(tokenizer, question)
        full = tokenizer.apply_chat_template(conversation(question, reasoning, answer, kind), tokenize=False)
        if not full.startswith(prompt):
            warnings.warn(
                "the chat template renders the user turn differently once an assistant turn follows; the student is "
                "trained on the text after the common part",
                stacklevel=2,
            )
        text = full[common_prefix(prompt, full) :]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    return ids if eos is None or eos in ids else [*ids, eos]  # the student must learn to stop


def chat_prompt(tokenizer: Any, question: str) -> str:
    messages = [{"role": "user", "content": question}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n
