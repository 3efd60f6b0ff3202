"""Runs inside the sandbox's Python before the untrusted code: an audit hook (PEP 578) that refuses
network access, new processes, native code loading and writes or deletions outside the work directory.
It is the policy layer; the operating-system layers (resource limits, another user, namespaces,
bubblewrap) are set up by `sandbox.py` and hold even if this one were bypassed.

Usage (by sandbox.py only): python -I -B guard.py WORKDIR CODE_FILE"""

import os
import sys

WORKDIR = os.path.realpath(sys.argv[1])
CODE_FILE = os.path.join(WORKDIR, sys.argv[2])
DENIED = {
    "socket.connect": "network",
    "socket.bind": "network",
    "socket.sendto": "network",
    "socket.sendmsg": "network",
    "socket.getaddrinfo": "network",
    "socket.gethostbyname": "network",
    "os.fork": "new processes",
    "os.forkpty": "new processes",
    "os.posix_spawn": "new processes",
    "os.spawn": "new processes",
    "os.exec": "new processes",
    "os.system": "new processes",
    "subprocess.Popen": "new processes",
    "pty.spawn": "new processes",
    "ctypes.dlopen": "native code",
    "ctypes.dlsym": "native code",
    "ctypes.cdata": "native code",
    "os.putenv": "changing the environment",
    "os.kill": "signals",
    "os.killpg": "signals",
    "signal.pthread_kill": "signals",
}
WRITES = {
    "os.remove",
    "os.rmdir",
    "os.rename",
    "os.mkdir",
    "os.chmod",
    "os.chown",
    "os.link",
    "os.symlink",
    "os.truncate",
    "os.utime",
    "shutil.rmtree",
    "shutil.move",
    "shutil.copyfile",
}


def inside(path) -> bool:
    if isinstance(path, int):  # a file descriptor the code already holds
        return True
    try:
        real = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return False
    return real == WORKDIR or real.startswith(WORKDIR + os.sep)


def guard(event: str, args: tuple) -> None:
    what = DENIED.get(event)
    if what is not None:
        raise PermissionError(f"sandbox: {what} is not allowed ({event})")
    if event == "open":
        path, mode, flags = args
        writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (flags or 0) & (
            os.O_WRONLY | os.O_RDWR | os.O_CREAT
        )
        if writing and path is not None and not inside(path):
            raise PermissionError(f"sandbox: writing outside the work directory is not allowed ({path})")
    elif event in WRITES and args and not inside(args[0]):
        raise PermissionError(f"sandbox: changing files outside the work directory is not allowed ({event} {args[0]})")
    elif event in ("os.rename", "shutil.move", "shutil.copyfile") and len(args) > 1 and not inside(args[1]):
        raise PermissionError(f"sandbox: changing files outside the work directory is not allowed ({event})")


def main() -> None:
    with open(CODE_FILE, encoding="utf-8", errors="replace") as source:
        code = compile(source.read(), "solution.py", "exec")
    sys.addaudithook(guard)
    sys.argv = ["solution.py"]
    exec(code, {"__name__": "__main__", "__builtins__": __builtins__})


main()
