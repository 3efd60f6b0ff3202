"""`student.trainer: command`: an external trainer (axolotl, LLaMA-Factory, torchtune, a script of yours).

synthloop writes the round's rows as chat-format JSONL (`{"messages": [user, assistant]}`) at {data},
runs the command with {data}, {base} (the model to start from) and {out} substituted, shell-quoted,
streams its output to the log, and requires a Hugging Face checkpoint (config.json and weights) in
{out}. A failure stops the round with one line; the round's data stays in the work folder, and
`synthloop run --resume` runs the round again."""

from __future__ import annotations

import collections
import json
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from synthloop.records import Record
from synthloop.training.format import row_conversation

PLACEHOLDERS = ("data", "base", "out")
TAIL_LINES = 3


class TrainerFailed(RuntimeError):
    """The external trainer failed; the CLI prints this as a one-line user error."""


def fill(template: str, **values: str) -> str:
    """The command with each {placeholder} replaced by its shell-quoted value (other braces left alone)."""
    for name in PLACEHOLDERS:
        template = template.replace("{" + name + "}", shlex.quote(values[name]))
    return template


def write_chat_jsonl(rows: Sequence[Record], path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps({"messages": row_conversation(row)}) + "\n")


def run_command(template: str, data: Path, base: str, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Run the trainer; its stdout and stderr go to `log` line by line. Returns its exit status and seconds."""
    command = fill(template, data=str(data), base=base, out=str(out))
    log(f"trainer: {command}")
    start = time.perf_counter()
    process = subprocess.Popen(
        command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace"
    )
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    threads = [
        threading.Thread(target=relay, args=(process.stdout, log, None), daemon=True),
        threading.Thread(target=relay, args=(process.stderr, log, tail), daemon=True),
    ]
    for thread in threads:
        thread.start()
    status = process.wait()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    retry = f"nothing is lost (the round's data is in {data}); `synthloop run --resume` retries the round"
    if status != 0:
        said = " | ".join(tail) or "no output on stderr"
        raise TrainerFailed(f"student.command exited with status {status} ({said}); {retry}")
    problem = checkpoint_problem(out)
    if problem is not None:
        raise TrainerFailed(f"student.command exited with status 0 but {problem}; {retry}")
    return {"status": status, "seconds": seconds}


def checkpoint_problem(out: Path) -> str | None:
    """Why `out` is not a usable causal-LM checkpoint, or None. Cheap: the config, the model built on the
    meta device, and the weight files' headers (names and shapes), never the weights themselves."""
    from transformers import AutoConfig

    from synthloop.config import RecipeError, error_line
    from synthloop.training.checkpoint import has_checkpoint
    from synthloop.training.preflight import check_causal, meta_model

    if not has_checkpoint(out):
        return (
            f"left no Hugging Face checkpoint (config.json and weights) in {out}; save the trained model with "
            "save_pretrained to {out}"
        )
    try:
        config = AutoConfig.from_pretrained(str(out), local_files_only=True)
    except Exception as err:  # OSError, ValueError, KeyError, and strict-dataclass errors for wrong types
        return f"its config.json in {out} cannot be read ({error_line(err)})"
    try:
        check_causal(str(out), config)
        model = meta_model(config)
    except RecipeError:
        kind = ", ".join(getattr(config, "architectures", None) or [type(config).__name__])
        return f"its checkpoint in {out} is a {kind}, not a causal language model"
    except Exception as err:  # a config.json with values no model can be built from (0 heads, "abc" width)
        return f"its config.json in {out} describes no model that can be built ({error_line(err)})"
    try:
        stored = stored_tensors(out)
    except Exception as err:  # a truncated or garbage weight file: safetensors, torch and json all differ
        return f"its weights in {out} cannot be read ({error_line(err)})"
    # Parameters, not the state dict: a tied lm_head is the embedding, saved once or not at all.
    expected = {name: tuple(p.shape) for name, p in model.named_parameters()}
    missing = [name for name in expected if stored_shape(stored, name) is None]
    wrong = [name for name in expected if name not in missing and stored_shape(stored, name) != expected[name]]
    if missing:
        return (
            f"its weights in {out} lack {len(missing)} of the {len(expected)} parameters its config.json needs "
            f"(e.g. {missing[0]})"
        )
    if wrong:
        name = wrong[0]
        shape = stored_shape(stored, name)
        return f"its weights in {out} do not fit its config.json ({name} has shape {shape}, not {expected[name]})"
    return None


def stored_tensors(out: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes in `out`'s weight files: safetensors headers, or PyTorch files memory-mapped
    (weights_only: nothing is unpickled but tensors)."""
    import torch
    from safetensors import safe_open

    safetensors = (out / "model.safetensors.index.json").is_file() or (out / "model.safetensors").is_file()
    stem = "model.safetensors" if safetensors else "pytorch_model.bin"
    index = out / f"{stem}.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else [stem]
    if outside := [name for name in files if Path(name).name != name]:
        raise ValueError(f"{index.name} names a file outside the folder: {outside[0]}")
    shapes: dict[str, tuple[int, ...]] = {}
    for name in files:
        if safetensors:
            with safe_open(str(out / name), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (a safetensors handle is not iterable)
                    shapes[key] = tuple(handle.get_slice(key).get_shape())
            continue
        try:
            tensors = torch.load(out / name, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # the legacy (non-zip) format cannot be memory-mapped
            tensors = torch.load(out / name, map_location="cpu", weights_only=True)
        shapes.update((key, tuple(value.shape)) for key, value in tensors.items())
    return shapes


def stored_shape(stored: dict[str, tuple[int, ...]], name: str) -> tuple[int, ...] | None:
    """The stored shape of parameter `name`, saved as it is, without the base model's prefix
    (`transformer.h.0...` as `h.0...`), or with an extra one."""
    if name in stored:
        return stored[name]
    _, _, rest = name.partition(".")
    if "." in rest and rest in stored:
        return stored[rest]
    return next((shape for key, shape in stored.items() if key.endswith("." + name)), None)


def relay(stream: IO[str] | None, log: Callable[[str], None], tail: collections.deque[str] | None) -> None:
    for line in stream or ():
        line = line.rstrip("\n")
        log(f"trainer: {line}")
        if tail is not None and line.strip():
            tail.append(line.strip()[:200])
