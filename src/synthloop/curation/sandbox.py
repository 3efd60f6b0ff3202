"""A sandbox for untrusted generated Python code. The boundary is the operating system, never Python
(an audit hook or any other check inside the program's own process can be undone by that program).

Layers, chosen by the recipe (`curation.code.isolation`); the default `bwrap` is required unless the
recipe explicitly accepts a weaker one, and what each holds is exactly this:

- `bwrap` (bubblewrap): a read-only view of the host with home directories, `/run` and `/tmp` hidden,
  private `/tmp`, `/dev` and `/dev/shm`, its own `/proc` and PID, network (none at all), IPC and UTS
  namespaces, no capabilities, no user namespace of its own to make, a new session; the only writable
  places are its work directory, `/tmp` and `/dev/shm`, each an in-memory mount of `disk_mb` (nothing
  reaches the host's disk). Killing the sandbox kills every process in its PID namespace, so nothing
  outlives the timeout.
- `unshare` (util-linux): its own user, network (none), PID and mount namespaces with its own `/proc`:
  no network, nothing outlives the timeout, our processes and their environment are out of sight.
  The file system is the host's: the program may write wherever its user may.
- `none`: only what every layer has.

Every layer: CPU-time, address-space, process-count, file-size and open-file limits and no core
dumps; an empty environment; a fresh work directory; a wall-clock timeout after which the program's
process group (and, with namespaces, everything it started) is killed. When we are root: a uid of its
own, every process of which is killed when the run ends (a daemon that left the group included).
The parent talks to the program only through file descriptors it opened itself: the program and its
stdin come in through in-memory files that no path leads to (no other sandbox can read or change them),
and its output comes back through pipes read with a byte cap. Nothing is ever read back from the work
directory.

Every outcome is a `SandboxResult` with a reason; nothing the code does raises in the caller."""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import resource
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

Isolation = Literal["bwrap", "unshare", "none"]
NOBODY = 65534
SANDBOX_UIDS = 200_000  # as root, each sandbox runs as its own unused uid from here: its process limit is its own
WEAKER = {
    "unshare": "no network and nothing outlives the timeout, but the file system is the host's",
    "none": "resource limits only: the code can reach the network, the host's files and its own processes",
}
HIDDEN = ("/home", "/root", "/run", "/var/tmp", "/mnt", "/media", "/srv")  # under bwrap: an empty tmpfs each


class SandboxUnavailable(RuntimeError):
    """The isolation a recipe asks for does not work on this machine."""


@dataclass(frozen=True)
class SandboxLimits:
    wall_s: float = 10.0
    cpu_s: int = 5
    memory_mb: int = 512
    processes: int = 32
    file_mb: int = 16
    open_files: int = 64
    disk_mb: int = 64  # bwrap: size of each in-memory mount it may write (work dir, /tmp, /dev/shm)
    output_chars: int = 20_000  # kept of stdout and of stderr


@dataclass(frozen=True)
class SandboxResult:
    ok: bool
    reason: str | None  # None when ok; else timeout, cpu_time, memory, file_size, process_limit, denied, error, killed
    exit_code: int | None
    stdout: str
    stderr: str
    seconds: float
    isolation: str  # the layer used: bwrap | unshare | none


def run_python(
    code: str, stdin: str = "", limits: SandboxLimits = SandboxLimits(), isolation: Isolation = "bwrap"
) -> SandboxResult:
    """Run `code` as a Python program in a throwaway sandbox and return what happened; the caller
    judges its output. Raises `SandboxUnavailable` only when `isolation` does not work here."""
    require_isolation(isolation)
    start = time.perf_counter()
    with Box.create() as box:
        program, feed = in_memory(code), in_memory(stdin)
        try:
            child = launch([f"/dev/fd/{program}"], box, limits, isolation, feed, pass_fds=(program,))
        finally:
            os.close(program)
            os.close(feed)
        timed_out = supervise([child], [], limits, primary=child)
    return child.result(limits, isolation, timed_out, time.perf_counter() - start)


# --- isolation: which layers work here, and what a run with a weaker one must say ---


@functools.cache
def probe_isolation() -> dict[str, str | None]:
    """For each layer, None when it works on this machine, else why not (probed once per process, as
    the sandbox user)."""
    probes = {
        "bwrap": ["bwrap", *bwrap_options(), "--", "true"],
        "unshare": [*unshare_options(), "--", "true"],
    }
    found: dict[str, str | None] = {}
    for name, probe in probes.items():
        if shutil.which(probe[0]) is None:
            found[name] = f"{probe[0]} is not installed"
            continue
        try:
            done = subprocess.run(probe, capture_output=True, timeout=20, preexec_fn=drop_root, cwd="/")
            found[name] = None if done.returncode == 0 else done.stderr.decode(errors="replace").strip()[:200]
        except (OSError, subprocess.TimeoutExpired) as error:
            found[name] = str(error)
    found["none"] = None
    return found


def available_isolation() -> tuple[str, ...]:
    """The layers that work on this machine, strongest first; `none` always does."""
    return tuple(name for name, problem in probe_isolation().items() if problem is None)


def require_isolation(wanted: Isolation) -> None:
    problem = probe_isolation().get(wanted, f"unknown isolation {wanted!r}")
    if problem is None:
        return
    if wanted == "bwrap":
        raise SandboxUnavailable(
            f"code verification needs bubblewrap, which does not work here ({problem}): apt-get install bubblewrap, "
            "or set curation.code.isolation to unshare or none to accept a weaker sandbox"
        )
    raise SandboxUnavailable(f"curation.code.isolation: {wanted} does not work here ({problem}); use bwrap")


def isolation_notice(isolation: str) -> str | None:
    """The warning every run with an explicitly weaker isolation carries in its manifest and report."""
    if isolation == "bwrap":
        return None
    return f"code verification runs with the weaker isolation '{isolation}' the recipe asks for: {WEAKER[isolation]}"


# --- one sandboxed process ---


@dataclass
class Box:
    """The work directory of one sandboxed program (under bubblewrap, an in-memory mount over it). Made
    fresh, removed without following anything the program planted."""

    root: Path
    work: Path
    uid: int | None  # the sandbox's own user when we are root; None: ours

    @classmethod
    @contextlib.contextmanager
    def create(cls) -> Iterator[Box]:
        root = Path(tempfile.mkdtemp(prefix="synthloop-sandbox-"))
        uid = sandbox_uid() if os.geteuid() == 0 else None
        try:
            os.chmod(root, 0o711)  # the sandbox user may pass through, not list
            work = root / "work"
            work.mkdir(mode=0o700)
            if uid is not None:
                os.chown(work, uid, uid)
            yield cls(root, work, uid)
        finally:
            remove_tree(root)


def in_memory(text: str) -> int:
    """A descriptor on an in-memory copy of `text` that no path leads to, read from its start: how a
    program, its stdin and its tests reach the sandbox, so that no other sandbox can read or change them."""
    fd = os.memfd_create("synthloop-input")  # Linux, as the sandbox itself
    view = memoryview(text.encode("utf-8", "replace"))
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@dataclass
class Capture:
    """What came through one pipe: the first `cap` bytes kept, the rest read and dropped, so a flood
    can neither fill our memory nor block the writer."""

    fd: int
    cap: int
    data: bytearray = field(default_factory=bytearray)

    def take(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    def text(self, chars: int) -> str:
        return self.data.decode("utf-8", "replace")[:chars]


@dataclass
class Child:
    proc: subprocess.Popen
    stdout: Capture
    stderr: Capture
    status: int | None = None  # exit code once reaped
    cpu_s: float = 0.0
    killed_by_us: bool = False
    descendants: set[int] = field(default_factory=set)  # seen when it was killed
    uid: int | None = None  # as root without namespaces: the sandbox's own user, all of whose processes we kill

    def reap(self, block: bool = False) -> bool:
        if self.status is None:
            with contextlib.suppress(ChildProcessError):
                pid, status, usage = os.wait4(self.proc.pid, 0 if block else os.WNOHANG)
                if pid:
                    self.status = os.waitstatus_to_exitcode(status)
                    self.proc.returncode = self.status  # reaped here: Popen must not wait again
                    self.cpu_s = usage.ru_utime + usage.ru_stime
        return self.status is not None

    def kill(self) -> None:
        if self.status is None:
            self.killed_by_us = True
            self.watch()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # its group; with namespaces, all it started

    def kill_user(self) -> None:
        """Kill every process of the sandbox's own user, a daemon that left its group and namespace-less
        layers included: `kill(-1)` sent as that user reaches them all at once, no fork slips in between."""
        if self.uid is None:
            return
        kill = shutil.which("kill", path="/usr/bin:/bin")
        command = [kill, "-KILL", "-1"] if kill else [interpreter(True), "-c", "import os; os.kill(-1, 9)"]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(command, user=self.uid, group=self.uid, extra_groups=[], cwd="/", timeout=10,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def watch(self) -> None:
        if self.status is None:
            self.descendants |= descendants(self.proc.pid)

    def wait_gone(self, process_limit: int, seconds: float = 3.0) -> None:
        """A namespace dies a little after its first process, and its orphans are reaped by the machine's
        init, which may take its time: until then they count against the sandbox user's process limit.
        Wait until none is alive (a daemon of the sandbox's own user included: `kill_user` signals, the
        kernel takes it down a little later) and few enough are left for the next run to start."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.uid is not None:
                self.descendants |= user_processes(self.uid)
            states = {pid: process_state(pid) for pid in self.descendants}
            self.descendants = {pid for pid, state in states.items() if state is not None}
            zombies = sum(state == "Z" for state in states.values())
            if len(self.descendants) == zombies and zombies <= process_limit // 4:
                return
            time.sleep(0.005)

    def result(self, limits: SandboxLimits, isolation: str, timed_out: bool, seconds: float) -> SandboxResult:
        stdout, stderr = self.stdout.text(limits.output_chars), self.stderr.text(limits.output_chars)
        ok = self.status == 0 and not timed_out
        return SandboxResult(ok, None if ok else self.reason(limits, timed_out), self.status, stdout, stderr,
                             round(seconds, 3), isolation)  # fmt: skip

    def reason(self, limits: SandboxLimits, timed_out: bool) -> str:
        # a wrapper reports its child's signal unreliably; the CPU time it used does not lie
        if self.cpu_s >= limits.cpu_s - 0.05 and not timed_out:
            return "cpu_time"
        return failure_reason(self.status, self.stderr.text(limits.output_chars), timed_out)


def launch(
    args: list[str],
    box: Box,
    limits: SandboxLimits,
    isolation: str,
    stdin: IO[bytes] | int = subprocess.DEVNULL,
    pass_fds: Sequence[int] = (),
) -> Child:
    """Start `python -I -B ARGS` in the sandbox, its output into pipes we own."""
    as_nobody = box.uid is not None  # root ignores the process limit and may change any file: never run as root
    command = wrap([interpreter(as_nobody), "-I", "-B", *args], isolation, box, limits)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        proc = subprocess.Popen(
            command,
            stdin=stdin,
            stdout=out_w,
            stderr=err_w,
            pass_fds=tuple(pass_fds),
            cwd=box.work,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(box.work)},
            start_new_session=True,  # its own process group: a timeout kills every descendant that stays in it
            preexec_fn=functools.partial(apply_limits, limits, box.uid),
        )
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    cap = limits.output_chars * 4
    sweep = box.uid if isolation == "none" else None  # a PID namespace already takes every process down
    return Child(proc, Capture(out_r, cap), Capture(err_r, cap), uid=sweep)


def supervise(children: list[Child], captures: list[Capture], limits: SandboxLimits, primary: Child) -> bool:
    """Read every pipe until `primary` has ended (then the other children are killed) and the pipes are
    drained, or the wall clock runs out (then everything is killed). True when it ran out. Output that
    a leftover process keeps writing is not waited for past a short grace."""
    pipes = [c for child in children for c in (child.stdout, child.stderr)] + captures
    selector = selectors.DefaultSelector()
    for capture in pipes:
        selector.register(capture.fd, selectors.EVENT_READ, capture)
    deadline, ended_at, timed_out = time.monotonic() + limits.wall_s, None, False
    try:
        while True:
            for child in children:
                child.watch()
                child.reap()
            now = time.monotonic()
            if ended_at is None and primary.status is not None:
                ended_at = now
            if ended_at is not None:
                if now > ended_at + 0.3:  # the others had their chance to end on their own (and say why)
                    for child in children:
                        child.kill()
                if (all(c.status is not None for c in children) and not selector.get_map()) or now > ended_at + 0.6:
                    break
            if now > deadline:
                timed_out = primary.status is None
                break
            for key, _ in selector.select(timeout=0.02):
                chunk = os.read(key.fd, 65536)
                if chunk:
                    key.data.take(chunk)
                else:
                    selector.unregister(key.fd)
    finally:
        for child in children:
            child.kill()
            child.reap(block=True)
            child.kill_user()
            child.wait_gone(limits.processes)
        selector.close()
        for capture in pipes:
            with contextlib.suppress(OSError):
                os.close(capture.fd)
    return timed_out


def user_processes(uid: int) -> set[int]:
    """The processes whose (effective) user is `uid`, as /proc shows them."""
    found = set()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                found.add(int(entry.name))
    return found


def process_state(pid: int) -> str | None:
    """R, S, Z...; None when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def descendants(pid: int, most: int = 4096) -> set[int]:
    """The processes below `pid`, as far as /proc shows them."""
    found, todo = set(), [pid]
    while todo and len(found) < most:
        current = todo.pop()
        with contextlib.suppress(OSError):
            for child in Path(f"/proc/{current}/task/{current}/children").read_text().split():
                if int(child) not in found:
                    found.add(int(child))
                    todo.append(int(child))
    return found


_launches = itertools.count()


def sandbox_uid() -> int:
    """A uid no one uses, for one sandbox: the kernel's process limit counts per user, so a fork bomb in
    one sandbox cannot starve the others, and two sandboxes cannot reach each other's processes."""
    return SANDBOX_UIDS + (os.getpid() % 4096) * 256 + next(_launches) % 256


def apply_limits(limits: SandboxLimits, uid: int | None) -> None:  # runs in the child, before exec
    mb = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * mb, limits.file_mb * mb))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if uid is not None:
        become(uid)
    # counted per user; root would ignore it, hence nobody (its count includes nobody's other processes)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))


def become(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def drop_root() -> None:
    if os.geteuid() == 0:
        become(NOBODY)


def bwrap_options() -> list[str]:
    # no user namespace inside: one would let the code mount an unsized tmpfs (host memory) and would
    # open the kernel's namespace code to it
    return [
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
        "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
        "--cap-drop", "ALL", "--as-pid-1",
    ]  # fmt: skip


def unshare_options() -> list[str]:  # unprivileged: a user namespace makes the other namespaces possible
    return ["unshare", "--map-root-user", "--net", "--pid", "--mount", "--mount-proc", "--fork", "--kill-child"]


def wrap(command: list[str], isolation: str, box: Box, limits: SandboxLimits) -> list[str]:
    if isolation == "bwrap":
        # writable places are tmpfs of a fixed size: memory they use is not in the address-space limit,
        # and nothing is written to the host's disk
        size = str(limits.disk_mb * 2**20)
        private = [arg for path in ("/tmp", "/dev/shm", str(box.work)) for arg in ("--size", size, "--tmpfs", path)]
        hidden = [path for path in HIDDEN if os.path.isdir(path)]
        hide = [arg for path in hidden for arg in ("--tmpfs", path)]
        # the interpreter may live under a hidden folder (a virtual environment in a home directory)
        keep = [arg for path in interpreter_dirs() for arg in ("--ro-bind", path, path)]
        # the other tmpfs (bwrap's /dev, the hiding ones) have no size: read-only once set up (not their
        # submounts: /dev/shm stays the sized one)
        sealed = [arg for path in [*hidden, "/dev"] for arg in ("--remount-ro", path)]
        return [
            "bwrap", *bwrap_options(), *hide, *keep, "--clearenv", "--setenv", "PATH", "/usr/bin:/bin",
            "--setenv", "LANG", "C.UTF-8", "--setenv", "HOME", str(box.work),
            *private, *sealed, "--chdir", str(box.work), "--", *command,
        ]  # fmt: skip
    if isolation == "unshare":
        return [*unshare_options(), "--", *command]
    return command


def interpreter_dirs() -> list[str]:
    python = interpreter(os.geteuid() == 0)
    found = {sys.prefix, sys.base_prefix} if python == sys.executable else set()
    found.add(str(Path(python).resolve().parent.parent))
    return sorted(p for p in found if any(p == h or p.startswith(h + "/") for h in HIDDEN) and os.path.isdir(p))


@functools.cache
def interpreter(as_nobody: bool) -> str:
    """A Python the sandbox user can run: ours, unless we switch to nobody and cannot reach it."""
    candidates = [sys.executable, getattr(sys, "_base_executable", sys.executable), "/usr/bin/python3"]
    if not as_nobody:
        return sys.executable
    for candidate in candidates:
        if candidate and os.path.exists(candidate) and reachable_by_others(Path(candidate).resolve()):
            return candidate
    raise SandboxUnavailable("no Python interpreter is readable by the sandbox user 'nobody': install python3")


def reachable_by_others(path: Path) -> bool:
    return all(os.stat(p).st_mode & 0o001 for p in [*path.parents, path]) and bool(os.stat(path).st_mode & 0o004)


def remove_tree(root: Path) -> None:
    """Remove a sandbox's directories. `shutil.rmtree` never follows symbolic links; a folder the program
    made unreadable is opened up first (only ours: the program cannot chmod what it does not own)."""

    def open_up(function, path, _exc_info) -> None:
        with contextlib.suppress(OSError):
            parent = os.path.dirname(path)
            if not os.path.islink(parent):
                os.chmod(parent, stat.S_IRWXU)
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, stat.S_IRWXU)
            function(path)

    shutil.rmtree(root, onerror=open_up)
    shutil.rmtree(root, ignore_errors=True)


def failure_reason(code: int | None, stderr: str, timed_out: bool) -> str:
    if timed_out:
        return "timeout"
    if code is not None and code < 0:
        return {signal.SIGXCPU: "cpu_time", signal.SIGXFSZ: "file_size", signal.SIGKILL: "killed"}.get(-code, "killed")
    if code == 128 + signal.SIGXCPU:
        return "cpu_time"
    if "MemoryError" in stderr:
        return "memory"
    if "BlockingIOError" in stderr and ("fork" in stderr or "Resource temporarily unavailable" in stderr):
        return "process_limit"
    if "File too large" in stderr:  # Python ignores SIGXFSZ: the write fails with EFBIG instead
        return "file_size"
    if any(s in stderr for s in ("PermissionError", "Read-only file system", "Operation not permitted")):
        return "denied"
    return "error"
