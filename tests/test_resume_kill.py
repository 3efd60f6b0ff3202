"""kill -9 a real `synthloop run` at random moments, resume each time, and compare the result with
an uninterrupted run: the same rows in every stage of every round, none duplicated, none lost."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthloop.storage.shards import read_records

TINY = Path(__file__).parent / "tiny_recipe.yaml"
pytestmark = pytest.mark.slow


def start(run_dir: Path, resume: bool) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "synthloop.cli.main", "run", str(TINY), "--run-dir", str(run_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*cmd, "--resume"] if resume else cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )


def files_in(root: Path) -> int:
    """Files and folders under `root`; os.walk skips what vanishes mid-walk (the run renames things)."""
    return sum(len(dirs) + len(files) for _, dirs, files in os.walk(root))


def snapshot(root: Path) -> dict:
    """Everything a consumer of the run directory relies on, per round and stage."""
    out = {"metrics_rounds": [r["round"] for r in json.loads((root / "metrics.json").read_text())["rounds"]]}
    for rdir in sorted((root / "rounds").iterdir()):
        for stage in ("generated", "curated", "rejected", "train"):
            rows = read_records(rdir / stage)
            out[f"{rdir.name}/{stage}"] = sorted((r.skill, r.index, r.id, r.reject_reason) for r in rows)
        out[f"{rdir.name}/plan"] = json.loads((rdir / "plan.json").read_text())["counts"]
    return out


def test_kill_nine_at_random_moments_then_resume(tmp_path):
    reference = tmp_path / "reference"
    assert start(reference, resume=False).wait(timeout=300) == 0

    run_dir, rng, kills = tmp_path / "killed", random.Random(7), 0
    proc = start(run_dir, resume=False)
    deadline = time.monotonic() + 600
    while True:
        target = files_in(run_dir) + rng.randint(4, 40)  # kill after this much more progress
        while proc.poll() is None and files_in(run_dir) < target:
            time.sleep(0.002)
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        assert time.monotonic() < deadline
        proc = start(run_dir, resume=True)
    assert proc.returncode == 0, proc.stderr.read().decode()
    assert kills >= 3, "the run should have been interrupted several times"

    assert snapshot(run_dir) == snapshot(reference)
    for rdir in (run_dir / "rounds").iterdir():
        generated = read_records(rdir / "generated")
        assert len({(r.skill, r.index) for r in generated}) == len(generated) == 400, "no duplicate, none lost"
    assert not [p for p in run_dir.rglob(".*")], "no temporary file left behind"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["rounds"] == {"1": "done", "2": "done", "3": "done"}
