"""The `vllm` teacher as the engine sees it. vLLM on a Ray cluster answers a whole step's calls in one
batch pass (`runners/ray_vllm.py`), which commits each answer to the response cache; the engine then
finds every answer there. What it does not find reaches this teacher, which has nothing to send: the
calls vLLM failed (kept as failed records with vLLM's error, sent again by `--resume`)."""

from __future__ import annotations

from synthloop.teachers.base import Teacher, TeacherError, TeacherRequest, TeacherResponse


class VLLMAnswers(Teacher):
    backend = "vllm"

    def __init__(self, model: str, structured_output: bool = False):
        self.model = model
        self.structured_output = structured_output
        self.failures: dict[str, str] = {}  # request key -> vLLM's error, for the step being written

    async def complete(self, request: TeacherRequest) -> TeacherResponse:
        error = self.failures.get(request.key(self.backend, self.model))
        raise TeacherError(f"vLLM: {error}" if error else "not answered by the vLLM pass", retryable=False)

    @property
    def supports_response_schema(self) -> bool:
        return self.structured_output
