"""`teacher: {backend: student}`: the student of round N teaches round N+1.

The student is asked in the format it was trained in (its chat template, or the plain `Q: ...\\nA:`),
with the problem alone: it has only ever seen questions, not the teacher's instructions. It answers
problems; it does not write them (the recipe refuses a dataset task with this teacher). Its name on
every row and in the response cache is `student:round-N:<digest of the checkpoint files>`, so a retrained
student is never served another student's cached answers."""

from __future__ import annotations

from pathlib import Path

from synthloop.config import Recipe
from synthloop.teachers.base import TeacherError, TeacherRequest, TeacherResponse
from synthloop.teachers.transformers_local import TransformersTeacher
from synthloop.training import checkpoint as ckpt
from synthloop.training.device import resolve_device, resolve_dtype
from synthloop.training.format import chat_prompt, format_of, student_prompt


class StudentTeacher(TransformersTeacher):
    backend = "student"

    def __init__(self, checkpoint: Path, recipe: Recipe, name: str, batch_size: int = 64):
        device = resolve_device(recipe.student.device)
        self.lm, self.tokenizer = ckpt.eval_student(
            Path(checkpoint), recipe, device, resolve_dtype(recipe.student.dtype, device)
        )
        self.fmt = format_of(self.tokenizer, recipe.student.chat_template)
        self.model, self.batch_size, self.device = name, batch_size, device
        self.start_queue()

    async def complete(self, request: TeacherRequest) -> TeacherResponse:
        if request.response_schema is not None or not any(m.role == "user" for m in request.messages):
            raise TeacherError(
                "a student teacher answers problems only; it cannot write problems or fill a schema", retryable=False
            )
        return await super().complete(request)

    def prompt(self, request: TeacherRequest) -> str:
        question = next(m.content for m in reversed(request.messages) if m.role == "user")
        if self.fmt == "chat_template":
            return chat_prompt(self.tokenizer, question)
        return (self.tokenizer.bos_token or "") + student_prompt(question)
