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
    from synthloop.training.checkpoint import has_checkpoint

    if not has_checkpoint(out):
        raise TrainerFailed(
            f"student.command exited with status 0 but left no Hugging Face checkpoint (config.json and weights) "
            f"in {out}; save the trained model with save_pretrained to {{out}}; {retry}"
        )
    return {"status": status, "seconds": seconds}


def relay(stream: IO[str] | None, log: Callable[[str], None], tail: collections.deque[str] | None) -> None:
    for line in stream or ():
        line = line.rstrip("\n")
        log(f"trainer: {line}")
        if tail is not None and line.strip():
            tail.append(line.strip()[:200])
