"""Generation throughput against a server of known capacity: synthloop's engine, bespokelabs-curator
and distilabel, same server, same workload, same run.

The server (synthloop.testing.simulated_server, its own process) serves at most C requests at once,
each taking OUTPUT_TOKENS * seconds_per_token, so its capacity is exactly C / latency calls/s. Each
level C in 64, 256, 1024 gets latency C / 256 s, so every level has the same capacity (256 calls/s)
and only the number in flight changes. Each client sends WAVES * C distinct requests with C in
flight. Throughput is measured at the server (calls completed over its busy window, so start-up and
imports are not counted); client CPU per call is the client process's own user+system time.

curator and distilabel are installed by this script in a separate virtualenv (bench/.out/others-venv).

    python bench/generation.py [--levels 64 256 1024] [--waves 8] [--skip-others]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import emit

from synthloop.testing import free_port

HERE = Path(__file__).parent
OTHERS_VENV = HERE / ".out" / "others-venv"
OTHERS = ["bespokelabs-curator==0.1.31", "distilabel==1.5.3"]
OUTPUT_TOKENS = 64
CAPACITY = 256.0  # calls/s at every level


def others_python() -> Path:
    python = OTHERS_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(OTHERS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *OTHERS], check=True)
    return python


def get(url: str, method: str = "GET") -> dict:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def start_server(level: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    latency = level / CAPACITY
    cmd = [
        sys.executable,
        "-m",
        "synthloop.testing.simulated_server",
        "--port",
        str(port),
        "--max-concurrent",
        str(level),
        "--seconds-per-token",
        str(latency / OUTPUT_TOKENS),
        "--output-tokens",
        str(OUTPUT_TOKENS),
    ]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            get(f"{url}/health")
            return server, url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the simulated server did not start")


def run_client(python: Path, name: str, url: str, calls: int, level: int) -> dict:
    get(f"{url}/reset", "POST")
    cmd = [str(python), str(HERE / "generation_clients.py"), name, url, str(calls), str(level), str(2 * OUTPUT_TOKENS)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    client = json.loads(done.stdout.strip().splitlines()[-1])
    server = get(f"{url}/stats")
    calls_per_s = server["completed"] / server["window_s"]
    return {
        "answered": client["answered"],
        "server_calls": server["completed"],
        "capacity_fraction": round(calls_per_s / CAPACITY, 3),
        "calls_per_s": round(calls_per_s, 1),
        "output_tokens_per_s": round(calls_per_s * OUTPUT_TOKENS, 0),
        "client_cpu_ms_per_call": round(1000 * client["cpu_s"] / calls, 3),
        "wall_s": round(client["wall_s"], 2),
        "peak_in_flight": server["peak_in_flight"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--levels", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--waves", type=int, default=8)
    p.add_argument("--skip-others", action="store_true", help="measure synthloop only")
    args = p.parse_args()
    clients = {"synthloop": Path(sys.executable)}
    if not args.skip_others:
        python = others_python()
        clients |= {"curator": python, "distilabel": python}
    results: dict[str, dict] = {}
    for level in args.levels:
        server, url = start_server(level)
        try:
            for name, python in clients.items():
                results.setdefault(name, {})[str(level)] = run_client(python, name, url, args.waves * level, level)
                print(f"# {name} @ {level}: {results[name][str(level)]}", file=sys.stderr, flush=True)
        finally:
            server.terminate()
            server.wait()
    figures = {
        "benchmark": "generation",
        "capacity_calls_per_s": CAPACITY,
        "output_tokens_per_call": OUTPUT_TOKENS,
        "waves": args.waves,
        "results": results,
    }
    ours = results["synthloop"]
    for other in ("curator", "distilabel"):
        if other in results:
            figures[f"ratio_vs_{other}"] = {
                level: round(ours[level]["capacity_fraction"] / results[other][level]["capacity_fraction"], 3)
                for level in ours
                if "capacity_fraction" in results[other].get(level, {})
            }
    emit(figures)


if __name__ == "__main__":
    main()
