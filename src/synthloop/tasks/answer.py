"""`answer`: the teacher answers an instruction that has no response yet (what `self_instruct` and
`evol_instruct` write, or an exercise's problem), so that the pair can be trained on.

With `reasoning` (the default, and always inside the loop) the teacher reasons step by step and ends with
`#### <final answer>`, like `solve`: the final answer is what self-consistency votes on when the
instruction is answered several times, and a reply without one is a parse failure kept as data. Without
`reasoning` the whole reply is the response (open-ended instructions, verified by a judge if at all)."""

from __future__ import annotations

from synthloop.skills.answers import extract_final_answer
from synthloop.tasks.base import Item, Parsed
from synthloop.tasks.prompted import PromptTask

SYSTEM_REASONING = (
    "Answer the instruction. Reason step by step, one short step per line, and end with a last line of the "
    "form '#### <final answer>'."
)
SYSTEM_PLAIN = "Answer the instruction helpfully, correctly and completely."


class AnswerTask(PromptTask):
    name, kind, input_field, template_version = "answer", "response", "instruction", "answer-v1"
    system = SYSTEM_REASONING
    default_template = "{instruction}"

    def parse(self, text: str) -> Parsed:
        body = text.strip()
        if not body:
            return Parsed(failure="the reply is empty")
        answer = extract_final_answer(text)
        if answer is None:
            return Parsed([Item(None, body)], "no final answer ('#### ...') in the output")
        return Parsed([Item(None, text.split("####")[0].strip(), answer)])


class PlainAnswerTask(PromptTask):
    """`reasoning: false`: the whole reply is the response."""

    name, kind, input_field, template_version = "answer", "response", "instruction", "answer-plain-v1"
    system = SYSTEM_PLAIN
    default_template = "{instruction}"
