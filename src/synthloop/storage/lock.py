"""One process per run directory. A second `run`, `generate` or `--resume` on a directory that a live
process is using refuses at once and names the holder, so no teacher call is paid twice.

The lock is the operating system's (`flock` on `RUN/.lock`), held until the run ends (then the file is
removed) or the process dies: a holder killed with `kill -9` releases it with its last breath, and the
lock file it leaves behind blocks nobody. Within one process the lock is re-entrant (a run, then its
resume in the same Python)."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from synthloop.storage.rundir import RunDirError

LOCK_NAME = ".lock"
_held: dict[tuple[int, int], int] = {}  # (device, inode) of a lock file -> our open descriptor


def lock_run_dir(root: Path) -> None:
    """Take `root`'s lock for this process, or raise `RunDirError` naming the process that has it."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        stat = os.fstat(fd)
        key = (stat.st_dev, stat.st_ino)
        if key in _held:
            os.close(fd)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe(os.read(fd, 4096))
            os.close(fd)
            raise RunDirError(
                f"{root} is in use by {holder}; wait for it to finish or stop it, then rerun "
                "(with --resume to continue)"
            ) from None
        if same_file(path, stat):
            break
        os.close(fd)  # the holder finished and removed the file between our open and our lock: again
    os.ftruncate(fd, 0)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:500],
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
    os.pwrite(fd, json.dumps(info).encode(), 0)
    _held[key] = fd


@contextmanager
def holding_run_dir(root: Path) -> Iterator[None]:
    """Hold an existing `root`'s lock for the block, so a live process in it is named at once, before
    any preflight check or teacher call (a new directory is locked when it is made)."""
    if root.is_dir():
        lock_run_dir(root)
    try:
        yield
    finally:
        unlock_run_dir(root)


def describe(content: bytes) -> str:
    try:
        info = json.loads(content)
        return f"process {info['pid']} on {info['host']} ({info['command']!r}, since {info['since']})"
    except (ValueError, KeyError, TypeError):
        return "another process"


def unlock_run_dir(root: Path) -> None:
    """Give `root`'s lock back and remove the file (a run or job that has finished; a process that dies
    gives it back anyway)."""
    try:
        stat = os.stat(root / LOCK_NAME)
    except OSError:
        return
    fd = _held.pop((stat.st_dev, stat.st_ino), None)
    if fd is not None:
        (root / LOCK_NAME).unlink(missing_ok=True)  # before the lock goes, so no one locks a removed file
        os.close(fd)  # closing the last descriptor releases the flock


def same_file(path: Path, stat: os.stat_result) -> bool:
    try:
        now = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (stat.st_dev, stat.st_ino)
