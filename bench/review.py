"""Human review, measured.

1. The review server with 100,000 rows in the round: seconds from starting `synthloop review` to the
   first row served over HTTP (the server process's start, the round opened, the queue and audit slice
   built, /api/state and the first /api/row answered), the same until a headless Chromium shows the
   first row (when chromium and chromium-driver are installed), and the latency of 300 decisions
   (each appended to the log and fsynced before the answer), p50 and p95.
2. The audit slice's interval on the kept set's error rate against the truth: the embedded sample
   (skills' reference rows, 30% of answers corrupted, so every label is known) curated by a real
   pointwise judge over loopback HTTP that is wrong 20% of the time; a simulated reviewer who knows
   the labels decides a fresh 100-row audit slice per seed; the 95% interval should cover the kept
   set's true error rate in at least 90 of 100 seeds. Its width is shown beside the human-only
   (Wilson) interval's.

Run: .venv/bin/python bench/review.py"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import emit

from synthloop.records import Record, Verdict
from synthloop.review.agreement import RowFacts, kept_error_estimate
from synthloop.review.decisions import human_verdicts, new_decision
from synthloop.review.queue import draw_audit_slice
from synthloop.storage.atomic import write_json
from synthloop.storage.shards import mark_complete, write_records

ROWS = 100_000
DECISIONS = 300
TRIALS = 100
SKILLS = ("addition", "subtraction", "comparison", "fractions", "spatial_3d")


def big_round(root: Path) -> None:
    """A run directory whose round 1 holds ROWS rows: 80% kept, a judge score on each (a fifth near its threshold)."""
    rows_kept, rows_rejected = [], []
    for i in range(ROWS):
        skill = SKILLS[i % len(SKILLS)]
        kept = i % 5 != 0
        score = 9.0 if i % 7 else 7.0
        verdicts = [Verdict("verify", kept, None if kept else "wrong_answer")]
        if kept:
            verdicts.append(Verdict("judge", True, None, score, "fine"))
        row = Record("solution", skill, f"What is {i} + {i % 97}?", "synthetic", 1, answer=str(i + i % 97),
                     reasoning=f"Add {i} and {i % 97}.", reference_answer=str(i + i % 97), raw_output="...",
                     teacher_backend="openai", teacher_model="bench", verdicts=verdicts)  # fmt: skip
        (rows_kept if kept else rows_rejected).append(row)
    rdir = root / "rounds" / "01"
    for name, rows in (("curated", rows_kept), ("rejected", rows_rejected)):
        write_records(rdir / name, rows, 10_000)
        mark_complete(rdir / name, {"rows": len(rows)})
    write_json(root / "manifest.json", {"recipe": {"name": "bench", "seed": 0, "curation": {"judge": {"threshold": 7}}},
                                        "rounds": {"1": "done"}})  # fmt: skip


def call(url: str, token: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url.rstrip("/") + path, data=data, headers={"X-Review-Token": token,
                                     "Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def start_server(root: Path) -> tuple[subprocess.Popen, str, float]:
    start = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "synthloop.cli.main", "review", str(root), "--port", "0", "--reviewer", "bench"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    while True:
        line = server.stdout.readline()
        if match := re.search(r"open (http://\S+)", line):
            return server, match.group(1), start


def full_log(root: Path) -> None:
    """Every row decided once already (a finished review): written in one go, as the bench's set-up."""
    from dataclasses import asdict

    import pyarrow.parquet as pq

    ids = [i for name in ("curated", "rejected") for p in sorted((root / "rounds" / "01" / name).glob("*.parquet"))
           for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()]  # fmt: skip
    path = root / "review" / "decisions.jsonl"
    with path.open("a") as f:
        for row_id in ids:
            f.write(json.dumps(asdict(new_decision(1, row_id, "earlier", "accept")), sort_keys=True) + "\n")


def latency(root: Path, label: str) -> dict:
    server, url, start = start_server(root)
    try:
        page = urllib.request.urlopen(url).read().decode()
        token = re.search(r'name="review-token" content="([^"]+)"', page).group(1)
        state = call(url, token, "/api/state")
        call(url, token, f"/api/row/{state['queue'][0]['id']}")
        first_row_http = time.perf_counter() - start
        decide, show = [], []
        for item in state["queue"][:DECISIONS]:  # what the page does per decision: save it, then show the next row
            t0 = time.perf_counter()
            call(url, token, "/api/decide", {"row_id": item["id"], "reviewer": "bench", "action": "accept"})
            t1 = time.perf_counter()
            call(url, token, f"/api/row/{item['id']}")
            decide.append(t1 - t0)
            show.append(time.perf_counter() - t1)
        figures = {
            "first_row_http_s": round(first_row_http, 2),
            "decision_p50_ms": percentile(decide, 50),
            "decision_p95_ms": percentile(decide, 95),
            "next_row_p50_ms": percentile(show, 50),
            "next_row_p95_ms": percentile(show, 95),
        }
    finally:
        server.kill()
    figures["first_row_browser_s"] = browser_first_row(root)
    return {f"{label}_{k}": v for k, v in figures.items()} | {"queue": len(state["queue"])}


def percentile(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return round(1000 * ordered[max(0, round(p / 100 * len(ordered)) - 1)], 2)


def browser_first_row(root: Path) -> float | None:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)  # started before the clock
    try:
        server, url, start = start_server(root)
        try:
            driver.get(url)
            while not driver.execute_script("return document.getElementById('row-id')?.textContent"):
                time.sleep(0.01)
            return round(time.perf_counter() - start, 2)
        finally:
            server.kill()
    finally:
        driver.quit()


def coverage() -> dict:
    from synthloop.curation.audit import embedded_sample
    from synthloop.curation.judge import LLMJudge
    from synthloop.teachers.engine import Engine, EngineSettings
    from synthloop.teachers.openai_http import OpenAITeacher
    from synthloop.testing import serve_in_thread
    from synthloop.testing.judges import reference_judge
    from synthloop.testing.simulated_server import SimulatedServer

    sample = embedded_sample(rows_per_skill=200, wrong=0.3, leaked=0.0, seed=0)
    rows = [labelled.record for labelled in sample.rows]
    truth = {labelled.record.id: labelled.label == "drop" for labelled in sample.rows}
    references = {r.question: r.reference_answer for r in rows}
    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0, responder=reference_judge(references, 0.2))
    with serve_in_thread(server.app()) as url:
        engine = Engine(OpenAITeacher("simulated", f"{url}/v1"), EngineSettings(concurrency=16, max_retries=1))
        judged = list(LLMJudge(engine, threshold=7).run(rows))
    facts = {r.id: RowFacts(r.kept, r.skill, list(r.verdicts)) for r in judged}
    kept = [r.id for r in judged if r.kept]
    true_rate = sum(truth[k] for k in kept) / len(kept)
    population = {r.id: (r.kept, r.skill) for r in judged}
    covered, widths, human_widths, covered_human = 0, [], [], 0
    for seed in range(TRIALS):
        drawn = draw_audit_slice(1, population, 100, seed)
        decisions = [new_decision(1, k, "oracle", "reject", "wrong_answer") if truth[k] else
                     new_decision(1, k, "oracle", "accept") for k in drawn.rows]  # fmt: skip
        estimate = kept_error_estimate(facts, drawn, human_verdicts(decisions))
        covered += estimate["low"] <= true_rate <= estimate["high"]
        widths.append(estimate["high"] - estimate["low"])
        human = estimate["human_only"]
        covered_human += human["low"] <= true_rate <= human["high"]
        human_widths.append(human["high"] - human["low"])
    return {
        "sample_rows": len(judged),
        "kept_rows": len(kept),
        "kept_true_error_rate": round(true_rate, 4),
        "trials": TRIALS,
        "slice_rows": 100,
        "ppi_covered": covered,
        "ppi_mean_width": round(statistics.mean(widths), 4),
        "human_only_covered": covered_human,
        "human_only_mean_width": round(statistics.mean(human_widths), 4),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "run"
        t0 = time.perf_counter()
        big_round(root)
        built = time.perf_counter() - t0
        figures = {"rows": ROWS, "build_round_s": round(built, 1), **latency(root, "empty_log")}
        full_log(root)
        figures |= latency(root, "full_log")
    emit({"bench": "review", **figures, **{f"audit_{k}": v for k, v in coverage().items()}})


if __name__ == "__main__":
    main()
