"""Security tests for the code sandbox: real attacks through `run_python`, at every isolation layer this
machine has. `bwrap` must hold all of them; the weaker layers are held only to what they promise (see
the module docstring of `synthloop.curation.sandbox`). Where bubblewrap is missing, the tests that need
it skip and say how to get it."""

import contextlib
import os
import shutil
import signal
import socket
import threading
import uuid
from pathlib import Path

import pytest

from synthloop.curation.sandbox import (
    HIDDEN,
    SandboxLimits,
    SandboxUnavailable,
    available_isolation,
    isolation_notice,
    probe_isolation,
    require_isolation,
    run_python,
)

LEVELS = available_isolation()
NAMESPACED = [level for level in LEVELS if level != "none"]
FAST = SandboxLimits(wall_s=5.0, cpu_s=1, memory_mb=256, processes=16, file_mb=1)
ROOT = os.geteuid() == 0
needs_bwrap = pytest.mark.skipif(
    "bwrap" not in LEVELS,
    reason=f"bubblewrap does not work here ({probe_isolation()['bwrap']}): apt-get install bubblewrap",
)


@pytest.fixture(params=LEVELS)
def level(request):
    return request.param


@pytest.fixture(params=NAMESPACED or [pytest.param("none", marks=pytest.mark.skip("no namespace layer here"))])
def namespaced(request):
    return request.param


@pytest.fixture
def host_dir():
    """A folder on the host that the sandbox would see (not under a hidden or private path) and that
    anyone may write: only the sandbox's read-only view can stop a write there."""
    hidden = ("/tmp", *HIDDEN)  # hidden from bwrap: a write there would land in its private copy
    visible = [Path(__file__).resolve().parent.parent, Path("/var/cache"), Path("/opt"), Path("/usr/local/share")]
    folders = [p for p in visible if not str(p).startswith(hidden) and os.access(p, os.W_OK)]
    if not folders:
        pytest.skip("no folder here that is writable by us and visible to the sandbox")
    path = folders[0] / f".sandbox-target-{uuid.uuid4().hex[:8]}"
    path.mkdir(mode=0o777)
    os.chmod(path, 0o777)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


@pytest.fixture
def secret_file(host_dir):
    """A file only its owner may read, as a root-only file is for the sandbox user, where the sandbox
    can see it."""
    path = host_dir / "secret.txt"
    path.write_text("top-secret-4417")
    os.chmod(path, 0o600)
    return path


def marker_processes(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


# --- what every layer holds ---


def test_ordinary_code_runs_and_its_output_is_kept(level):
    result = run_python("import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))", "1 2 3", FAST, level)
    assert result.ok and result.stdout == "6\n" and result.isolation == level


def test_fork_bomb(level):
    result = run_python("import os\nwhile True:\n    os.fork()", limits=FAST, isolation=level)
    assert not result.ok and result.reason == "process_limit"


def test_memory_bomb(level):
    code = "blocks = []\nwhile True:\n    blocks.append(bytearray(50_000_000))"
    result = run_python(code, limits=FAST, isolation=level)
    assert not result.ok and result.reason == "memory"


def test_infinite_loop_is_stopped_by_cpu_time(level):
    result = run_python("while True:\n    pass", limits=FAST, isolation=level)
    assert not result.ok and result.reason in ("cpu_time", "timeout") and result.seconds < 60


def test_sleeping_forever_is_stopped_by_the_wall_clock(level):
    result = run_python("import time\ntime.sleep(600)", limits=SandboxLimits(wall_s=1.0, cpu_s=5), isolation=level)
    assert not result.ok and result.reason == "timeout" and result.seconds < 60  # not the 600 s it asked for


def test_huge_output_is_capped_and_cannot_block_the_parent(level):
    result = run_python("while True:\n    print('x' * 10_000)", limits=FAST, isolation=level)
    assert not result.ok and result.reason in ("cpu_time", "timeout")
    assert len(result.stdout) <= FAST.output_chars


def test_bad_code_is_a_failed_run_not_an_exception(level):
    for code in ["def broken(:\n", "raise SystemExit(3)", "\udcff invalid", "import nonexistent_module"]:
        result = run_python(code, limits=FAST, isolation=level)
        assert not result.ok and result.reason == "error"


def test_secrets_in_our_environment_are_not_in_the_programs(level, monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_TEST_SECRET", "hunter2-secret")
    result = run_python("import os\nprint(dict(os.environ))", limits=FAST, isolation=level)
    assert result.ok and "hunter2-secret" not in result.stdout


def test_links_and_fifos_planted_in_the_work_directory_are_never_read_by_us(level, secret_file):
    """We used to read the program's output back by path from its own folder: a symbolic link there
    copied a root-only file into the results, a fifo hung the run."""
    code = f"""
import os
for name in ['.stdout', '.stderr', 'stdout', 'out.txt']:
    os.symlink({str(secret_file)!r}, name)
try:
    os.link({str(secret_file)!r}, 'hard')  # a hard link to a file of ours, where the mount allows one
except OSError:
    pass
os.mkfifo('.fifo')
os.mkdir('locked')
os.symlink({str(secret_file.parent)!r}, 'locked/escape')
os.chmod('locked', 0)
print('planted')
"""
    result = run_python(code, limits=FAST, isolation=level)
    assert result.ok and result.stdout == "planted\n"
    assert "top-secret" not in result.stdout + result.stderr
    assert secret_file.read_text() == "top-secret-4417" and os.stat(secret_file).st_mode & 0o777 == 0o600


@pytest.mark.skipif(not ROOT, reason="as another user than ours the program cannot read our files (we are not root)")
def test_files_only_we_may_read_stay_unreadable(level, secret_file):
    result = run_python(f"print(open({str(secret_file)!r}).read())", limits=FAST, isolation=level)
    assert not result.ok and result.reason == "denied" and "top-secret" not in result.stdout


# --- what the namespace layers (bwrap, unshare) hold ---


def test_nothing_outlives_the_timeout_not_even_a_new_session(namespaced):
    marker = f"synthloop-orphan-{uuid.uuid4().hex}"
    code = f"""
import os, subprocess, sys, time
subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}], start_new_session=True)
os.posix_spawn(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}], {{}}, setsid=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}])
    os._exit(0)
time.sleep(60)
"""
    result = run_python(code, limits=SandboxLimits(wall_s=2.0, cpu_s=2), isolation=namespaced)
    assert not result.ok and result.reason == "timeout"
    assert marker_processes(marker) == []


def test_a_program_cannot_read_another_sandboxs_program_or_input(level):
    """Programs and their stdin were files in a folder anyone could pass through: a program read what
    another row's program ran on (at every layer but bubblewrap's, which hides the host's /tmp)."""
    if level == "none" and not ROOT:
        pytest.skip("without namespaces, as our own user, a program may read the other's descriptors")
    from concurrent.futures import ThreadPoolExecutor

    secret = f"row-secret-{uuid.uuid4().hex}"
    victim = f"import sys, time\nsys.stdin.read()\ntime.sleep(1.5)  # {secret}"
    thief = """
import glob, os, stat, time
time.sleep(0.5)
places = glob.glob('/tmp/synthloop-sandbox-*/prog/*') + glob.glob('/dev/shm/*')
places += [f'/proc/{p}/fd/{fd}' for p in os.listdir('/proc') if p.isdigit() for fd in range(16)]
for path in places:
    try:
        if stat.S_ISREG(os.stat(path).st_mode):
            print(open(path, errors='replace').read(100_000))
    except (OSError, ValueError):
        pass
"""
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(run_python, victim, f"input {secret}", FAST, level)
        stolen = pool.submit(run_python, thief, "", FAST, level).result()
        assert running.result().ok
    assert stolen.ok and secret not in stolen.stdout


def test_a_daemon_of_a_program_that_ended_is_dead_after_the_call(level):
    """A double-forked, setsid daemon left by a program that ends at once (no timeout to cut it): the
    namespace layers take it down with the program; as root every layer runs the code as a uid of its
    own, all of whose processes are killed after the run."""
    if level == "none" and not ROOT:
        pytest.skip("without namespaces, as our own user, a daemon that left the process group is not found")
    marker = f"synthloop-daemon-{uuid.uuid4().hex}"
    code = f"""
import ctypes, os, sys
libc = ctypes.CDLL(None)
if libc.fork() == 0:  # through libc: no audit event, nothing Python knows of
    libc.setsid()
    if libc.fork() == 0:
        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}])
    os._exit(0)
os.wait()
"""
    result = run_python(code, limits=FAST, isolation=level)
    left = marker_processes(marker)
    for pid in left:  # do not leave it running when the test fails
        os.kill(pid, signal.SIGKILL)
    assert result.ok and left == []


def test_the_loopback_network_of_the_host_is_out_of_reach(namespaced):
    server = socket.create_server(("127.0.0.1", 0))
    port, accepted = server.getsockname()[1], []
    server.settimeout(3)

    def accept():
        with contextlib.suppress(OSError):  # nobody came: the timeout
            accepted.append(server.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'leak')"
    result = run_python(code, limits=FAST, isolation=namespaced)
    thread.join()
    server.close()
    assert not result.ok and not accepted


def test_our_process_can_be_neither_signalled_nor_read(namespaced, monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_TEST_SECRET", "hunter2-secret")
    signalled = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: signalled.append(True))
    try:
        code = f"""
import os, signal
for attempt in (lambda: os.kill({os.getpid()}, signal.SIGUSR1),
                lambda: os.kill(os.getppid(), signal.SIGUSR1),
                lambda: print(open('/proc/{os.getpid()}/environ').read()),
                lambda: print(open(f'/proc/{{os.getppid()}}/environ').read())):
    try:
        attempt()
    except OSError as error:
        print('refused', error)
"""
        result = run_python(code, limits=FAST, isolation=namespaced)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert "hunter2-secret" not in result.stdout + result.stderr and not signalled


# --- what only bubblewrap holds ---


@needs_bwrap
def test_the_host_is_read_only_even_where_the_user_may_write(host_dir):
    """Every way of writing we know of, native code included: each one is refused by the read-only
    mount, whatever the program does to Python first."""
    target = str(host_dir)
    code = f"""
import ctypes, os, sqlite3, sys
target = {target!r}
sys.addaudithook = None  # there is no Python-level layer to switch off
attempts = {{
    'open': lambda: open(target + '/open.txt', 'w').write('x'),
    'dir_fd': lambda: os.open('dirfd.txt', os.O_CREAT | os.O_WRONLY, dir_fd=os.open(target, os.O_RDONLY)),
    'symlink': lambda: os.symlink('/etc/passwd', target + '/link'),
    'link': lambda: (open('mine', 'w').close(), os.link('mine', target + '/hard')),
    'fifo': lambda: os.mkfifo(target + '/fifo'),
    'rename': lambda: (open('moved', 'w').close(), os.rename('moved', target + '/moved')),
    'sqlite3': lambda: sqlite3.connect(target + '/db.sqlite').execute('create table t (x)'),
    'libc': lambda: ctypes.CDLL(None).creat((target + '/libc.txt').encode(), 0o644) >= 0 or 1 / 0,
    'shell': lambda: os.system(f'echo x > {{target}}/shell.txt') == 0 or 1 / 0,
}}
for name, attempt in attempts.items():
    try:
        attempt()
        print('ESCAPED', name)
    except Exception as error:
        print('refused', name, type(error).__name__)
"""
    result = run_python(code, limits=FAST, isolation="bwrap")
    assert "ESCAPED" not in result.stdout, result.stdout
    assert result.stdout.count("refused") == 9, result.stdout + result.stderr
    assert list(host_dir.iterdir()) == []


@needs_bwrap
def test_native_code_from_the_work_directory_holds_nothing_more(host_dir):
    """A shared object the program writes and loads runs inside the same walls."""
    gcc = shutil.which("cc") or shutil.which("gcc")
    if gcc is None:
        pytest.skip("no C compiler here to build the shared object")
    source = '#include <stdio.h>\nint go(const char *p) { FILE *f = fopen(p, "w"); if (!f) return 1; return 0; }'
    code = f"""
import ctypes, subprocess
open('evil.c', 'w').write({source!r})
subprocess.run([{gcc!r}, '-shared', '-fPIC', '-o', 'evil.so', 'evil.c'], check=True)
print('wrote' if ctypes.CDLL('./evil.so').go(b'{host_dir}/native.txt') == 0 else 'refused')
"""
    result = run_python(code, limits=SandboxLimits(wall_s=20, cpu_s=10, memory_mb=1024), isolation="bwrap")
    assert "refused" in result.stdout, result.stdout + result.stderr
    assert list(host_dir.iterdir()) == []


@needs_bwrap
def test_no_user_namespace_inside_so_no_unsized_mount():
    """A nested user namespace gave the code a tmpfs of half the host's memory, past disk_mb."""
    code = """
import ctypes, shutil, subprocess
print('unshare', ctypes.CDLL(None, use_errno=True).unshare(0x10000000))  # CLONE_NEWUSER
if shutil.which('unshare'):
    mount = 'mount -t tmpfs none /tmp && echo MOUNTED'
    done = subprocess.run(['unshare', '--user', '--map-root-user', '--mount', 'sh', '-c', mount], capture_output=True)
    print(done.stdout.decode(), done.returncode)
"""
    result = run_python(code, limits=FAST, isolation="bwrap")
    assert result.ok and "unshare -1" in result.stdout and "MOUNTED" not in result.stdout, result.stdout


@needs_bwrap
def test_home_folders_and_private_temp_files_of_the_host_are_hidden(tmp_path):
    (tmp_path / "visible.txt").write_text("host temp file")
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path / "visible.txt", 0o644)
    code = (
        f"import os\nprint(os.path.exists({str(tmp_path / 'visible.txt')!r}), os.listdir('/home'), os.listdir('/tmp'))"
    )
    result = run_python(code, limits=FAST, isolation="bwrap")
    assert result.ok and result.stdout.startswith("False [] ["), result.stdout


@needs_bwrap
def test_a_database_written_in_the_work_directory_is_thrown_away():
    result = run_python("import sqlite3, os\nsqlite3.connect('x.db').execute('create table t (x)')\nprint(os.getcwd())",
                        limits=FAST, isolation="bwrap")  # fmt: skip
    assert result.ok and not os.path.exists(result.stdout.strip())


# --- choosing a layer ---


def test_an_isolation_that_does_not_work_here_is_refused_with_what_to_do(monkeypatch):
    monkeypatch.setitem(probe_isolation(), "bwrap", "bwrap is not installed")
    with pytest.raises(SandboxUnavailable, match=r"apt-get install bubblewrap.*curation\.code\.isolation"):
        require_isolation("bwrap")
    with pytest.raises(SandboxUnavailable):
        run_python("print(1)", isolation="bwrap")


def test_a_weaker_isolation_is_announced():
    assert isolation_notice("bwrap") is None
    assert "weaker isolation 'none'" in isolation_notice("none")
    assert "file system is the host's" in isolation_notice("unshare")


@needs_bwrap
@pytest.mark.parametrize("place", ["/tmp", "/dev/shm", "."])
def test_the_writable_places_are_small_and_in_memory_not_the_hosts(place):
    """They are tmpfs of `disk_mb` each: memory written there is outside the address-space limit, so it
    is bounded here instead (and nothing lands on the host's disk)."""
    code = f"block = b'x' * 2**20\nwith open('{place}/fill', 'wb') as f:\n"
    code += "    for _ in range(200):\n        f.write(block)"
    limits = SandboxLimits(wall_s=10, cpu_s=5, file_mb=1024, disk_mb=16)
    result = run_python(code, limits=limits, isolation="bwrap")
    assert not result.ok and "No space left on device" in result.stderr


@needs_bwrap
def test_no_other_writable_mount_is_unbounded():
    """bwrap's /dev and the tmpfs that hide /home, /root, /run... had no size: the code filled them with
    host memory past disk_mb. Every directory mount the sandbox sees is tried."""
    code = """
import os
points = {line.split()[4] for line in open('/proc/self/mountinfo')} | {'.'}
for point in sorted(p for p in points if os.path.isdir(p) and not p.startswith(('/proc', '/sys'))):
    n = 0
    try:
        while n < 12:
            with open(os.path.join(point, f'fill{n}'), 'wb') as f:
                f.write(b'x' * 2**20)
            n += 1
    except OSError:
        pass
    print(point, n)
"""
    result = run_python(code, limits=SandboxLimits(wall_s=20, cpu_s=10, file_mb=2, disk_mb=4), isolation="bwrap")
    written = dict(line.rsplit(" ", 1) for line in result.stdout.splitlines())
    assert result.ok and {"/tmp", "/dev/shm", "/dev", "."} <= set(written), result.stdout + result.stderr
    assert {point: int(n) for point, n in written.items() if int(n) > 4} == {}


@pytest.mark.skipif(not ROOT, reason="only root can give each sandbox its own user")
def test_a_fork_bomb_in_one_sandbox_does_not_starve_the_others(level):
    from concurrent.futures import ThreadPoolExecutor

    bomb = "import os, time\nfor _ in range(64):\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    bomb += "time.sleep(3)"
    limits = SandboxLimits(wall_s=4, cpu_s=2, processes=16)
    with ThreadPoolExecutor(4) as pool:
        bombs = pool.submit(run_python, bomb, "", limits, level)
        good = [pool.submit(run_python, "print('fine')", "", FAST, level) for _ in range(6)]
        results = [future.result() for future in good]
        bombs.result()
    assert all(r.ok and r.stdout == "fine\n" for r in results), [r.stderr for r in results if not r.ok]
