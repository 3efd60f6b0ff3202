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
