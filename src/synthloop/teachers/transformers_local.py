"""`transformers`: a local Hugging Face causal LM in this process, with batched generation.

Requests that arrive together are generated together (up to `batch_size`, same sampling settings),
in a worker thread so the event loop keeps accepting. The model is a Hub id already in the local
cache or a local path; nothing is downloaded when `HF_HUB_OFFLINE=1`. The prompt is the tokenizer's
chat template when it has one, else a plain "Role: text" rendering."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import torch

from synthloop.config import error_line
from synthloop.teachers.base import Teacher, TeacherError, TeacherRequest, TeacherResponse, TeacherUnavailable
from synthloop.teachers.checkpoints import (
    builtin_names,
    rendered_template_problem,
    resolve_model,
    teacher_checkpoint_problem,
)
from synthloop.teachers.openai_http import render_prompt

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class TransformersTeacher(Teacher):
    backend = "transformers"

    def __init__(self, model: str, device: str = "auto", batch_size: int = 16, dtype: str = "auto"):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model, self.batch_size, self.device = model, batch_size, pick_device(device)
        try:
            path = resolve_model(model)
        except ValueError as err:
            raise TeacherUnavailable(f"teacher.model: {err}") from None
        problem = teacher_checkpoint_problem(path)
        if problem:
            raise TeacherUnavailable(f"cannot load teacher model: {problem}")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            torch_dtype = DTYPES.get(dtype, "auto")
            self.lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, local_files_only=True)
            self.lm = self.lm.to(self.device).eval()
        except Exception as err:  # a malformed tokenizer.json or generation_config.json raises anything
            raise TeacherUnavailable(
                f"cannot load teacher model {model!r} ({type(err).__name__}: {error_line(err)}); give a local folder, "
                f"a model already in the Hugging Face cache, or {builtin_names()}"
            ) from None
        problem = rendered_template_problem(path, self.tokenizer)
        if problem:
            raise TeacherUnavailable(f"cannot load teacher model: {problem}")
        self.start_queue()

    def start_queue(self) -> None:
        """Left padding for batched generation, and the queue requests wait in to be batched."""
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._waiting: deque[tuple[TeacherRequest, asyncio.Future]] = deque()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None

    async def complete(self, request: TeacherRequest) -> TeacherResponse:
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.get_loop() is not loop or self._worker.done():
            self._wake = asyncio.Event()
            self._worker = loop.create_task(self._batches())
        future: asyncio.Future = loop.create_future()
        self._waiting.append((request, future))
        self._wake.set()
        return await future

    async def aclose(self) -> None:
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        self._worker = None

    async def _batches(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # let requests issued in the same tick join this batch
            while self._waiting:
                batch = self._take_batch()
                try:
                    results = await asyncio.to_thread(self._generate, [r for r, _ in batch])
                except Exception as err:
                    results = [TeacherError(f"generation failed: {type(err).__name__}: {err}", retryable=False)] * len(
                        batch
                    )
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # the engine gave up on it (timeout)
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)

    def _take_batch(self) -> list[tuple[TeacherRequest, asyncio.Future]]:
        """Up to `batch_size` waiting requests with the same sampling settings as the oldest one."""
        first = self._waiting.popleft()
        batch, rest = [first], deque()
        while self._waiting and len(batch) < self.batch_size:
            entry = self._waiting.popleft()
            (batch if entry[0].sampling == first[0].sampling else rest).append(entry)
        self._waiting.extendleft(reversed(rest))
        return [entry for entry in batch if not entry[1].done()] or [first]

    def prompt(self, request: TeacherRequest) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": m.role, "content": m.content} for m in request.messages]
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return render_prompt(request)

    def max_positions(self) -> int:
        config = self.lm.config
        for name in ("n_positions", "max_position_embeddings"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return 1 << 30

    @torch.inference_mode()
    def _generate(self, requests: list[TeacherRequest]) -> list[Any]:
        sampling = requests[0].sampling
        inputs = self.tokenizer(
            [self.prompt(r) for r in requests], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.device)
        width = inputs["input_ids"].shape[1]
        room = self.max_positions() - width  # a model with learned positions cannot go past its last one
        kwargs: dict[str, Any] = {
            "max_new_tokens": max(1, min(sampling.max_tokens, room)),
            "num_return_sequences": sampling.n,
        }
        if sampling.temperature > 0:
            kwargs |= {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p}
        else:
            kwargs |= {"do_sample": False}
        out = self.lm.generate(**inputs, **kwargs, pad_token_id=self.tokenizer.pad_token_id)
        new = out[:, width:]
        results = []
        for i in range(len(requests)):
            rows = new[i * sampling.n : (i + 1) * sampling.n]
            texts = tuple(self.tokenizer.decode(row, skip_special_tokens=True) for row in rows)
            completion = int((rows != self.tokenizer.pad_token_id).sum())
            prompt_tokens = int(inputs["attention_mask"][i].sum())
            results.append(TeacherResponse(texts, None, prompt_tokens, completion))
        return results
