"""Ray Data LLM's own processor, with the one stage that needs a GPU and vLLM played by a stand-in, so
that `teacher.backend: vllm` runs end to end on a machine with neither.

Everything around the stand-in is Ray's: the `Processor` that wraps the preprocess and postprocess,
carries the columns, keeps rows in order and lets failed rows bypass the postprocess; the recipe's
`vLLMEngineProcessorConfig`, validated by Ray. The stand-in takes what vLLM's chat template stage takes
(`messages`) and what its engine stage takes (`sampling_params`), and gives what its engine and
detokenize stages give (`generated_text`, `num_input_tokens`, `num_generated_tokens`), or for a failed
row `__inference_error__` as the engine stage does with `should_continue_on_error`.

Its replies are the simulated server's (`reply_text`: words, not JSON), except that a row with
structured outputs, and a repair request, get the smallest JSON value their schema allows, and a last
message containing `FAIL` fails (a failed call), and one containing `CRASH` raises (the engine fails).
Each row it answers is appended to `log_path` when given (one line: the last message), so a test
counts what was sent."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

from synthloop.config import VLLMTeacherConfig
from synthloop.runners.ray_vllm import processor_config
from synthloop.testing.simulated_server import reply_text


class StandInEngines:
    def __init__(self, cfg: VLLMTeacherConfig, log_path: str | None, seconds_per_row: float = 0.0):
        self.cfg, self.log_path, self.seconds_per_row = cfg, log_path, seconds_per_row

    def check(self, ray: Any) -> None:
        """No GPU to look for."""

    def processor(self, preprocess: Any, postprocess: Any) -> Any:
        from ray.llm._internal.batch.processor.base import Processor

        stage = stand_in_stage(self.log_path, self.seconds_per_row, self.cfg.replicas)
        return Processor(processor_config(self.cfg), [stage], preprocess=preprocess, postprocess=postprocess)


def stand_in_stage(log_path: str | None, seconds_per_row: float, replicas: int) -> Any:
    from ray.llm._internal.batch.stages.base import StatefulStage, StatefulStageUDF
    from ray.llm._internal.batch.stages.vllm_engine_stage import vLLMOutputData

    class StandInUDF(StatefulStageUDF):
        def __init__(self, data_column: str, expected_input_keys: list[str], log_path: str | None, seconds: float):
            super().__init__(data_column, expected_input_keys)
            self.log_path, self.seconds = log_path, seconds

        async def udf(self, batch: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
            import asyncio

            for row in batch:
                await asyncio.sleep(self.seconds)
                last = row["messages"][-1]["content"]
                if self.log_path:
                    with open(self.log_path, "a") as log:
                        log.write(last.replace("\n", " ")[:200] + "\n")
                        log.flush()
                        os.fsync(log.fileno())
                if "CRASH" in last:  # not a failed call: the engine itself fails, as a model that cannot load
                    raise RuntimeError("the stand-in engine crashed")
                out = {self.IDX_IN_BATCH_COLUMN: row[self.IDX_IN_BATCH_COLUMN], "__inference_error__": ""}
                if "FAIL" in last:  # the row vLLM's stage gives for a failed call
                    empty = vLLMOutputData(prompt=last, prompt_token_ids=None, num_input_tokens=0).model_dump()
                    said = {"request_id": -1, "batch_uuid": "0", "time_taken_llm": -1, "params": ""}
                    yield out | empty | said | {"__inference_error__": "ValueError: the stand-in was told to fail"}
                    continue
                structured = row["sampling_params"].get("structured_outputs")
                if "Your reply could not be used" in last:
                    text = json.dumps(example_of(json.loads(last.split("JSON schema:\n", 1)[1])))
                elif structured:
                    text = json.dumps(example_of(json.loads(structured["json"])))
                else:
                    text = reply_text(last, row["sampling_params"]["max_tokens"] // 4 or 1)
                yield out | {"prompt": last, "generated_text": text, "num_input_tokens": len(last.split()),
                             "num_generated_tokens": len(text.split())}  # fmt: skip

    class StandInStage(StatefulStage):
        def get_required_input_keys(self) -> dict[str, str]:
            return {"messages": "OpenAI-style messages", "sampling_params": "vLLM's sampling parameters"}

    return StandInStage(
        fn=StandInUDF,
        fn_constructor_kwargs={"log_path": log_path, "seconds": seconds_per_row},
        map_batches_kwargs={"concurrency": replicas},
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
