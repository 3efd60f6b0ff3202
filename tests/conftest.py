import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def one_round(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-round run of tests/tiny_recipe.yaml, shared: tests that change it take `one_round_copy`."""
    root = tmp_path_factory.mktemp("one-round") / "run"
    tiny = Path(__file__).parent / "tiny_recipe.yaml"
    cmd = [sys.executable, "-m", "synthloop.cli.main", "run", str(tiny), "--run-dir", str(root), "--rounds", "1"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return root


@pytest.fixture
def one_round_copy(one_round: Path, tmp_path: Path) -> Path:
    """A copy of `one_round` of this test's own."""
    target = tmp_path / "run"
    shutil.copytree(one_round, target)
    return target


@pytest.fixture
def reviewed(one_round_copy: Path) -> dict:
    """A copy of `one_round` with three decisions: a kept row rejected, a rejected row accepted, and a kept
    row accepted with its answer edited to "edited 42"."""
    from synthloop.review.decisions import DecisionLog, new_decision
    from synthloop.storage.shards import read_records

    run = one_round_copy
    curated = read_records(run / "rounds" / "01" / "curated")
    rejected = [r for r in read_records(run / "rounds" / "01" / "rejected") if r.answer is not None]
    log = DecisionLog(run)
    log.append(new_decision(1, curated[0].id, "ann", "reject", "wrong_reasoning"))
    log.append(new_decision(1, rejected[0].id, "ann", "accept"))
    log.append(new_decision(1, curated[1].id, "ann", "accept", edit={"answer": "edited 42"}))
    return {"run": run, "curated": curated, "dropped": curated[0], "rescued": rejected[0], "edited": curated[1]}
