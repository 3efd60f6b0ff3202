"""A sandbox for untrusted generated Python code, in layers:

1. policy: an audit hook in the child refuses network, new processes, native code and writes or
   deletions outside the work directory (`sandbox_guard.py`);
2. resources: CPU-time, address-space, process-count, file-size and open-file limits, a wall-clock
   timeout that kills the whole process group, output captured to size-capped files;
3. the caller's world: a fresh temporary work directory, an empty environment (no secrets), and, when
   we are root, another user (nobody) so that no file of ours can be changed;
4. isolation, the strongest the machine allows, detected at run time: `bubblewrap` (read-only root, own
   /tmp, no network, own PID namespace), else `unshare` (no network, own PID namespace), else none.

Every outcome is a `SandboxResult` with a reason; nothing the code does raises in the caller."""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Isolation = Literal["auto", "bwrap", "unshare", "none"]
GUARD = Path(__file__).with_name("sandbox_guard.py")
NOBODY = 65534


@dataclass(frozen=True)
class SandboxLimits:
    wall_s: float = 10.0
    cpu_s: int = 5
    memory_mb: int = 512
    processes: int = 32
    file_mb: int = 16
    open_files: int = 64
    output_chars: int = 20_000  # kept of stdout and of stderr


@dataclass(frozen=True)
class SandboxResult:
    ok: bool
    reason: str | None  # None when ok; else timeout, cpu_time, memory, file_size, process_limit, policy, error, killed
    exit_code: int | None
    stdout: str
    stderr: str
    seconds: float
    isolation: str  # the layer actually used: bwrap | unshare | none


def run_python(
    code: str,
    stdin: str = "",
    limits: SandboxLimits = SandboxLimits(),
    isolation: Isolation = "auto",
    policy: bool = True,
) -> SandboxResult:
    """Run `code` as a Python program in a throwaway directory; return what happened. `policy=False`
    leaves out the audit hook (tests use it to show what the operating-system layers hold alone)."""
    chosen = choose_isolation(isolation)
    with tempfile.TemporaryDirectory(prefix="synthloop-sandbox-") as work:
        workdir = Path(work)
        (workdir / "solution.py").write_text(code, encoding="utf-8", errors="replace")
        (workdir / "stdin.txt").write_text(stdin, encoding="utf-8", errors="replace")
        if policy:
            shutil.copy(GUARD, workdir / "guard.py")
        as_nobody = os.geteuid() == 0  # root ignores the process limit and may change any file: never run as root
        python = interpreter(as_nobody)
        if as_nobody:
            os.chown(workdir, NOBODY, NOBODY)
        program = [str(workdir / "guard.py"), str(workdir)] if policy else []
        command = wrap([python, "-I", "-B", *program, str(workdir / "solution.py")], chosen, workdir)
        start = time.perf_counter()
        with (
            open(workdir / "stdin.txt", "rb") as stdin_file,
            open(workdir / ".stdout", "wb") as out,
            open(workdir / ".stderr", "wb") as err,
        ):
            proc = subprocess.Popen(
                command,
                stdin=stdin_file,
                stdout=out,
                stderr=err,
                cwd=workdir,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(workdir)},
                start_new_session=True,  # its own process group: a timeout kills every descendant
                preexec_fn=functools.partial(apply_limits, limits, as_nobody),
            )
            code, cpu_s, timed_out = wait_or_kill(proc, limits.wall_s)
        seconds = time.perf_counter() - start
        stdout = read_capped(workdir / ".stdout", limits.output_chars)
        stderr = read_capped(workdir / ".stderr", limits.output_chars)
    if code == 0 and not timed_out:
        return SandboxResult(True, None, code, stdout, stderr, round(seconds, 3), chosen)
    # a wrapper (unshare) reports its child's signal unreliably; the CPU time it used does not lie
    reason = "cpu_time" if cpu_s >= limits.cpu_s - 0.05 and not timed_out else failure_reason(code, stderr, timed_out)
    return SandboxResult(False, reason, code, stdout, stderr, round(seconds, 3), chosen)


def wait_or_kill(proc: subprocess.Popen, wall_s: float) -> tuple[int, float, bool]:
    """(exit code, CPU seconds of the process and the children it reaped, whether the wall clock ran out).
    The whole process group is killed in every case, so nothing it started outlives it."""
    deadline, timed_out = time.monotonic() + wall_s, False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            timed_out = True
            kill_group(proc.pid)
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.005)
    kill_group(proc.pid)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    return proc.returncode, usage.ru_utime + usage.ru_stime, timed_out


def apply_limits(limits: SandboxLimits, drop_user: bool) -> None:  # runs in the child, before exec
    mb = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * mb, limits.file_mb * mb))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if drop_user:
        become_nobody()
    # counted per user; root would ignore it, hence nobody (its count includes nobody's other processes)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))


def become_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def wrap(command: list[str], isolation: str, workdir: Path) -> list[str]:
    if isolation == "bwrap":
        return [
            "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--bind", str(workdir), str(workdir), "--chdir", str(workdir), "--unshare-all", "--die-with-parent",
            "--new-session", "--cap-drop", "ALL", "--", *command,
        ]  # fmt: skip
    if isolation == "unshare":  # unprivileged: a user namespace makes the network and PID namespaces possible
        return ["unshare", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", "--", *command]
    return command


@functools.cache
def available_isolation() -> tuple[str, ...]:
    """The isolation layers that work on this machine, strongest first (probed once per process)."""
    probes = {
        "bwrap": ["bwrap", "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "--", "true"],
        "unshare": ["unshare", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", "--", "true"],
    }
    as_nobody = become_nobody if os.geteuid() == 0 else None  # probe as the sandbox will run
    found = []
    for name, probe in probes.items():
        if shutil.which(probe[0]) is None:
            continue
        try:
            if subprocess.run(probe, capture_output=True, timeout=10, preexec_fn=as_nobody, cwd="/").returncode == 0:
                found.append(name)
        except (OSError, subprocess.TimeoutExpired):
            continue
    return (*found, "none")


def choose_isolation(wanted: Isolation) -> str:
    available = available_isolation()
    if wanted == "auto":
        return available[0]
    if wanted not in available:
        raise RuntimeError(f"sandbox isolation {wanted!r} does not work on this machine; available: {available}")
    return wanted


@functools.cache
def interpreter(as_nobody: bool) -> str:
    """A Python the sandbox user can run: ours, unless we switch to nobody and cannot reach it."""
    candidates = [sys.executable, getattr(sys, "_base_executable", sys.executable), "/usr/bin/python3"]
    if not as_nobody:
        return sys.executable
    for candidate in candidates:
        if candidate and os.path.exists(candidate) and reachable_by_others(Path(candidate).resolve()):
            return candidate
    raise RuntimeError("no Python interpreter is readable by the sandbox user 'nobody'; install python3 in /usr/bin")


def reachable_by_others(path: Path) -> bool:
    return all(os.stat(p).st_mode & 0o001 for p in [*path.parents, path]) and bool(os.stat(path).st_mode & 0o004)


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)  # the process and everything it started


def read_capped(path: Path, chars: int) -> str:
    with open(path, "rb") as handle:
        return handle.read(chars * 4).decode("utf-8", "replace")[:chars]


def failure_reason(code: int | None, stderr: str, timed_out: bool) -> str:
    if timed_out:
        return "timeout"
    if code is not None and code < 0:
        return {signal.SIGXCPU: "cpu_time", signal.SIGXFSZ: "file_size", signal.SIGKILL: "killed"}.get(-code, "killed")
    if "sandbox:" in stderr and "PermissionError" in stderr:
        return "policy"
    if "MemoryError" in stderr:
        return "memory"
    if "BlockingIOError" in stderr and "fork" in stderr:
        return "process_limit"
    if "File too large" in stderr:  # Python ignores SIGXFSZ: the write fails with EFBIG instead
        return "file_size"
    if code == 128 + signal.SIGXCPU:
        return "cpu_time"
    return "error"
