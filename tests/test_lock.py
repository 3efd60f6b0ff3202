"""One process per run directory: a second process refuses at once and names the holder; a holder
killed with kill -9 leaves nothing that blocks the next run."""

import json
import os
import signal
import subprocess
import sys
from contextlib import contextmanager

import pytest

from synthloop.cli.main import main
from synthloop.storage.lock import lock_run_dir
from synthloop.storage.rundir import RunDirError, open_manifest
from synthloop.testing import serve_in_thread
from synthloop.testing.simulated_server import SimulatedServer

HOLD = """
import sys, time
from pathlib import Path
from synthloop.storage.lock import lock_run_dir
from synthloop.storage.rundir import open_manifest
if sys.argv[2:] == ["lock"]:
    lock_run_dir(Path(sys.argv[1]))  # what a running job does first
else:
    open_manifest(Path(sys.argv[1]), "job", "abc", {}, resume=False)
print("holding", flush=True)
time.sleep(60)
"""


def hold(root, lock_only=False):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root), *(["lock"] if lock_only else [])],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline() == "holding\n"
    return proc


@contextmanager
def holding(root, lock_only=False):
    """Another process holding `root` for the block (then killed)."""
    holder = hold(root, lock_only)
    try:
        yield holder
    finally:
        holder.kill()
        holder.wait()


def refused_while_held(root, args, capsys, lock_only=True):
    """`synthloop ARGS` refuses, naming the process that holds `root` (as a running job would)."""
    with holding(root, lock_only) as holder:
        assert main(args) == 2
        assert f"in use by process {holder.pid}" in capsys.readouterr().err


def test_a_second_process_on_a_run_directory_refuses_naming_the_holder(tmp_path):
    root = tmp_path / "run"
    with holding(root) as holder:
        with pytest.raises(RunDirError, match=rf"in use by process {holder.pid} on .*since"):
            open_manifest(root, "job", "abc", {}, resume=True)
        with pytest.raises(RunDirError, match="in use by process"):
            open_manifest(root, "job", "abc", {}, resume=False)
        assert json.loads((root / ".lock").read_text())["pid"] == holder.pid


def test_a_holder_killed_with_kill_9_blocks_nobody(tmp_path):
    root = tmp_path / "run"
    holder = hold(root)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (root / ".lock").exists()  # left behind, and harmless
    manifest = open_manifest(root, "job", "abc", {}, resume=True)
    assert manifest["job_hash"] == "abc"


def test_generate_resume_refuses_while_a_run_holds_the_directory(tmp_path, capsys):
    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0, responder=lambda body: "# A section")
    root = tmp_path / "run"
    with serve_in_thread(server.app()) as url:
        job = tmp_path / "job.yaml"
        teacher = f"{{backend: openai, model: simulated, base_url: '{url}/v1'}}"
        job.write_text(f"name: j\nteacher: {teacher}\nsteps:\n  - {{name: s, task: textbook, inputs: [a, b]}}\n")
        assert main(["generate", str(job), "--run-dir", str(root)]) == 0
        calls = sum(server.completed.values())
        refused_while_held(root, ["generate", str(job), "--run-dir", str(root), "--resume"], capsys)
        assert sum(server.completed.values()) == calls  # nothing was sent by the refused process


def test_the_lock_is_reentrant_within_one_process(tmp_path):
    lock_run_dir(tmp_path)
    lock_run_dir(tmp_path)


def test_curate_into_a_directory_a_run_holds_refuses_naming_it_and_writes_nothing(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n" for i in range(5))
    )
    root = tmp_path / "run"
    refused_while_held(root, ["curate", str(rows), "--out", str(root)], capsys, lock_only=False)  # a run in it
    assert sorted(p.name for p in root.iterdir()) == [".lock", "manifest.json"]  # the holder's, untouched
    assert main(["curate", str(rows), "--out", str(root)]) == 0  # the holder gone, it goes ahead
    assert (root / "curated").is_dir() and not (root / ".lock").exists()


def test_a_running_generate_and_a_resume_of_it_never_both_run(tmp_path, capsys):
    """The issue's case, for real: `synthloop generate` running in another process; `--resume` on its
    directory refuses at once naming it, and no call is paid twice."""
    import time

    server = SimulatedServer(max_concurrent=1, seconds_per_token=0.02, output_tokens=20)  # 0.4 s a call
    root = tmp_path / "run"
    with serve_in_thread(server.app()) as url:
        job = tmp_path / "job.yaml"
        teacher = f"{{backend: openai, model: simulated, base_url: '{url}/v1'}}"
        inputs = ", ".join(f"subject {i}" for i in range(10))
        job.write_text(f"name: j\nteacher: {teacher}\nsteps:\n  - {{name: s, task: textbook, inputs: [{inputs}]}}\n")
        cmd = [sys.executable, "-m", "synthloop.cli.main", "generate", str(job), "--run-dir", str(root)]
        running = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(600):  # until it holds the lock (it imports, checks the teacher, then opens the run)
                if (root / ".lock").exists() and (root / "manifest.json").exists():
                    break
                time.sleep(0.05)
            assert main(["generate", str(job), "--run-dir", str(root), "--resume"]) == 2
            err = capsys.readouterr().err
            assert f"in use by process {running.pid} on " in err and "generate" in err and "since" in err
        finally:
            assert running.wait(timeout=120) == 0, running.stderr.read()[-2000:]
    assert len(server.completed) == 10 and set(server.completed.values()) == {1}  # every call paid once


def test_the_holder_is_named_before_any_check_reaches_the_teacher(tmp_path, capsys):
    import socket

    with socket.socket() as probe:  # a port nothing listens on: the teacher check would fail on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    job = tmp_path / "job.yaml"
    teacher = f"{{backend: openai, model: m, base_url: 'http://127.0.0.1:{port}/v1'}}"
    job.write_text(f"name: j\nteacher: {teacher}\nsteps:\n  - {{name: s, task: textbook, inputs: [a]}}\n")
    root = tmp_path / "run"
    refused_while_held(root, ["generate", str(job), "--run-dir", str(root), "--resume"], capsys)
