"""Ray Data LLM's own vLLM processor, built from the recipe as in a real run, with its one stage that
needs a GPU and vLLM (the engine stage) played by a stand-in, so that `teacher.backend: vllm` runs end
to end on a machine with neither.

Everything else is Ray's and real: `build_processor` with the recipe's `vLLMEngineProcessorConfig`;
the chat template, tokenizer and detokenizer stages, with the model's own tokenizer (`teacher.model` is
a small local model, `synthloop.testing.tiny_model`); the `Processor` that wraps the preprocess and
postprocess, carries the columns, keeps rows in order and lets failed rows bypass the later stages.
The stand-in takes what vLLM's engine stage takes (`tokenized_prompt`, `sampling_params`) and gives
what it gives (`vLLMOutputData`: `generated_tokens` and the counts), or for a failed call the row it
gives with `should_continue_on_error`.

Its replies are the simulated server's (`reply_text`: words, not JSON), except that a row with
structured outputs, and a repair request, get the smallest JSON value their schema allows. A prompt
containing `FAIL` fails (a failed call), as does the repair request of one containing `BREAKS REPAIRS`;
one containing `CRASH` raises (the engine fails). Each row
it answers is appended to `log_path` when given (one line: the prompt, spaces squeezed), so a test
counts what was sent. Every stage asks for a quarter CPU here, so that all fit a 2-CPU Ray."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from typing import Any

from synthloop.config import VLLMTeacherConfig
from synthloop.runners.ray_vllm import VLLMEngines
from synthloop.testing.simulated_server import reply_text

ENGINE_STAGE = "vLLMEngineStage"


class StandInEngines(VLLMEngines):
    def __init__(self, cfg: VLLMTeacherConfig, log_path: str | None, seconds_per_row: float = 0.0):
        super().__init__(cfg)
        self.log_path, self.seconds_per_row = log_path, seconds_per_row

    def check(self, ray: Any) -> None:
        """No GPU to look for."""

    def processor(self, preprocess: Any, postprocess: Any) -> Any:
        processor = super().processor(preprocess, postprocess)
        for stage in processor.stages.values():
            stage.map_batches_kwargs["num_cpus"] = 0.25
        processor.preprocess_map_kwargs["num_cpus"] = processor.postprocess_map_kwargs["num_cpus"] = 0.25
        processor.stages[ENGINE_STAGE] = stand_in_stage(
            self.cfg.model, self.log_path, self.seconds_per_row, self.cfg.replicas
        )
        return processor


def stand_in_stage(model: str, log_path: str | None, seconds_per_row: float, replicas: int) -> Any:
    from ray.llm._internal.batch.stages.base import StatefulStage, StatefulStageUDF
    from ray.llm._internal.batch.stages.vllm_engine_stage import vLLMOutputData

    class StandInUDF(StatefulStageUDF):
        def __init__(self, data_column: str, expected_input_keys: list[str], model: str, log_path: str | None,
                     seconds: float):  # fmt: skip
            from transformers import AutoTokenizer

            super().__init__(data_column, expected_input_keys)
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.log_path, self.seconds = log_path, seconds

        async def udf(self, batch: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
            import asyncio

            for row in batch:
                await asyncio.sleep(self.seconds)
                prompt, ids = row["prompt"], list(row["tokenized_prompt"])
                self.log(prompt)
                if "CRASH" in prompt:  # not a failed call: the engine itself fails, as a model that cannot load
                    raise RuntimeError("the stand-in engine crashed")
                said = {self.IDX_IN_BATCH_COLUMN: row[self.IDX_IN_BATCH_COLUMN], "request_id": 0, "batch_uuid": "0",
                        "time_taken_llm": self.seconds, "params": str(row["sampling_params"])}  # fmt: skip
                repairing = "Your reply could not be used" in prompt
                if "FAIL" in prompt or ("BREAKS REPAIRS" in prompt and repairing):  # vLLM's row for a failed call
                    empty = vLLMOutputData(prompt=prompt, prompt_token_ids=None, num_input_tokens=0).model_dump()
                    yield empty | said | {"__inference_error__": "ValueError: the stand-in was told to fail"}
                    continue
                text = self.reply(prompt, row["sampling_params"])
                tokens = self.tokenizer.encode(text, add_special_tokens=False)
                out = vLLMOutputData(prompt=prompt, prompt_token_ids=ids, num_input_tokens=len(ids),
                                     generated_tokens=tokens, num_generated_tokens=len(tokens))  # fmt: skip
                yield out.model_dump() | said | {"__inference_error__": ""}

        def reply(self, prompt: str, sampling: dict[str, Any]) -> str:
            if "Your reply could not be used" in prompt:
                schema = re.search(r"JSON schema:\n(.*)", prompt)
                return json.dumps(example_of(json.loads(schema.group(1))))
            if structured := sampling.get("structured_outputs"):
                return json.dumps(example_of(json.loads(structured["json"])))
            return reply_text(prompt, max(1, sampling["max_tokens"] // 4))

        def log(self, prompt: str) -> None:
            if self.log_path:
                with open(self.log_path, "a") as log:
                    log.write(" ".join(prompt.split()) + "\n")
                    log.flush()
                    os.fsync(log.fileno())

    class StandInStage(StatefulStage):
        def get_required_input_keys(self) -> dict[str, str]:
            return {"tokenized_prompt": "the prompt's token ids", "sampling_params": "vLLM's sampling parameters"}

    return StandInStage(
        fn=StandInUDF,
        fn_constructor_kwargs={"model": model, "log_path": log_path, "seconds": seconds_per_row},
        map_batches_kwargs={"concurrency": replicas, "num_cpus": 0.25},
    )


def example_of(schema: dict[str, Any]) -> Any:
    """The smallest value of the JSON schemas tasks use (objects, arrays, strings)."""
    kind = schema.get("type")
    if kind == "object":
        return {key: example_of(schema["properties"][key]) for key in schema.get("required", [])}
    if kind == "array":
        return [example_of(schema["items"])] * max(1, schema.get("minItems", 1))
    if kind in ("number", "integer"):
        return 1
    if kind == "boolean":
        return True
    return "stand-in"
