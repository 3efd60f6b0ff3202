"""Security tests for the code sandbox: every attack is contained, reported as a failed run, and the
host is untouched. Run at every isolation layer this machine has ("none" always exists)."""

import contextlib
import os
import socket
import threading

import pytest

from synthloop.curation.sandbox import SandboxLimits, available_isolation, run_python

LEVELS = available_isolation()
FAST = SandboxLimits(wall_s=5.0, cpu_s=1, memory_mb=256, processes=16, file_mb=1)


@pytest.fixture(params=LEVELS)
def level(request):
    return request.param


def test_ordinary_code_runs_and_its_output_is_kept(level):
    result = run_python("import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))", "1 2 3", FAST, level)
    assert result.ok and result.stdout == "6\n" and result.isolation == level


def test_fork_bomb(level):
    result = run_python("import os\nwhile True:\n    os.fork()", limits=FAST, isolation=level)
    assert not result.ok and result.reason == "policy"


def test_fork_bomb_through_subprocess(level):
    code = "import subprocess, sys\nwhile True:\n    subprocess.Popen([sys.executable, '-c', 'pass'])"
    result = run_python(code, limits=FAST, isolation=level)
    assert not result.ok and result.reason == "policy"


def test_memory_bomb(level):
    result = run_python(
        "blocks = []\nwhile True:\n    blocks.append(bytearray(50_000_000))", limits=FAST, isolation=level
    )
    assert not result.ok and result.reason == "memory"


def test_infinite_loop_is_stopped_by_cpu_time(level):
    result = run_python("while True:\n    pass", limits=FAST, isolation=level)
    assert not result.ok and result.reason in ("cpu_time", "timeout") and result.seconds < FAST.wall_s + 2


def test_sleeping_forever_is_stopped_by_the_wall_clock(level):
    limits = SandboxLimits(wall_s=1.0, cpu_s=5)
    result = run_python("import time\ntime.sleep(600)", limits=limits, isolation=level)
    assert not result.ok and result.reason == "timeout" and result.seconds < 3


def test_writing_outside_the_work_directory(level, tmp_path):
    targets = [tmp_path / "planted.txt", "/tmp/synthloop-sandbox-escape.txt"]
    code = "\n".join(f"open({str(t)!r}, 'w').write('escaped')" for t in targets)
    result = run_python(code, limits=FAST, isolation=level)
    assert not result.ok and result.reason == "policy"
    assert not any(os.path.exists(t) for t in targets)


def test_writing_inside_the_work_directory_is_allowed_and_thrown_away(level):
    result = run_python(
        "import os\nopen('notes.txt', 'w').write('x')\nprint(os.getcwd())", limits=FAST, isolation=level
    )
    assert result.ok and not os.path.exists(result.stdout.strip())


def test_huge_output_is_capped(level):
    result = run_python("while True:\n    print('x' * 10_000)", limits=FAST, isolation=level)
    assert not result.ok and result.reason in ("file_size", "cpu_time", "timeout")
    assert len(result.stdout) <= FAST.output_chars


def test_parent_secrets_are_not_in_the_environment(level, monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_TEST_SECRET", "hunter2-secret")
    code = (
        "import os\nprint(dict(os.environ))\n"
        "try:\n    print(open(f'/proc/{os.getppid()}/environ').read())\nexcept OSError as e:\n    print('denied', e)"
    )
    result = run_python(code, limits=FAST, isolation=level)
    assert "hunter2-secret" not in result.stdout + result.stderr


def test_network_connection(level):
    server = socket.create_server(("127.0.0.1", 0))
    port, accepted = server.getsockname()[1], []
    server.settimeout(3)

    def accept():
        with contextlib.suppress(OSError):  # nobody came: the timeout
            accepted.append(server.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'leak')"
    result = run_python(code, limits=FAST, isolation=level)
    thread.join()
    server.close()
    assert not result.ok and not accepted


def test_deleting_files(level, tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    code = f"import os, shutil\nos.remove({str(precious)!r})\nshutil.rmtree({str(tmp_path)!r})"
    result = run_python(code, limits=FAST, isolation=level)
    assert not result.ok and result.reason == "policy" and precious.read_text() == "keep me"


@pytest.mark.skipif("bwrap" not in LEVELS and "unshare" not in LEVELS, reason="no namespace isolation on this machine")
def test_namespaces_hold_without_the_policy_layer(tmp_path):
    """The audit hook is one layer; network and other users' files stay out of reach without it."""
    level = "bwrap" if "bwrap" in LEVELS else "unshare"
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    network = run_python("import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)", "", FAST, level, False)
    assert not network.ok and ("unreachable" in network.stderr or "Network" in network.stderr)
    delete = run_python(f"import os\nos.remove({str(precious)!r})", "", FAST, level, False)
    assert not delete.ok and precious.exists()
    forks = run_python("import os\nwhile True:\n    os.fork()", "", SandboxLimits(wall_s=2.0, cpu_s=1), level, False)
    assert not forks.ok and forks.reason == "process_limit"


def test_bad_code_is_a_failed_run_not_an_exception(level):
    for code in ["def broken(:\n", "raise SystemExit(3)", "\udcff invalid", "import nonexistent_module"]:
        result = run_python(code, limits=FAST, isolation=level)
        assert not result.ok and result.reason == "error"


def test_process_limit_holds_without_the_policy_layer(level):
    forks = run_python("import os\nwhile True:\n    os.fork()", "", SandboxLimits(wall_s=2.0, cpu_s=1), level, False)
    assert not forks.ok and forks.reason == "process_limit"
