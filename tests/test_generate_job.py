"""Prompt tasks and `synthloop generate`, end to end through a real HTTP server on loopback whose
replies are scripted per task (valid JSON, invalid JSON that a repair fixes, prose that stays broken)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from synthloop.cli.main import main
from synthloop.config import RecipeError
from synthloop.generate import load_job
from synthloop.runners import local
from synthloop.storage.response_cache import ResponseCache
from synthloop.storage.shards import read_records
from synthloop.tasks.prompted import ExercisesTask, TopicsTask
from synthloop.teachers.base import SamplingParams
from synthloop.testing import serve_in_thread
from synthloop.testing.simulated_server import SimulatedServer


def scripted(body):
    """Replies like a teacher that mostly follows instructions."""
    messages = body["messages"]
    last, system = messages[-1]["content"], messages[0]["content"]
    if "could not be used" in last:  # a repair request
        if "hopeless" in messages[1]["content"]:
            return "Sorry, I cannot produce JSON."
        return json.dumps({"topics": ["repaired topic"]})
    if "curriculum" in system:
        if "broken" in last or "hopeless" in last:
            return "Here are some topics: loops, functions"  # not JSON: the repair call follows
        subject = last.split(": ", 1)[1].split("\n")[0]
        return "```json\n" + json.dumps({"topics": [f"{subject} part {i}" for i in range(3)]}) + "\n```"
    if "practice problems" in system:
        return json.dumps({"exercises": [{"problem": f"P about {last[:20]}", "solution": "step", "answer": "42"}]})
    if "textbook" in system:
        return f"# Section\n\nAn explanation of {last.splitlines()[0]}."
    return "plain"


def write_job(path, url, steps, shard_size=1000, **teacher):
    job = {
        "name": "course",
        "shard_size": shard_size,
        "teacher": {
            "backend": "openai",
            "model": "simulated",
            "base_url": f"{url}/v1",
            "backoff_base_s": 0.01,
            **teacher,
        },
        "steps": steps,
    }
    path.write_text(yaml.safe_dump(job))
    return path


STEPS = [
    {"name": "tree", "task": "topics", "inputs": ["pandas group-by", "maritime law", "broken subject"], "count": 3},
    {"name": "book", "task": "textbook", "from": "tree", "personas": ["a patient tutor", "a terse engineer"]},
    {"name": "practice", "task": "exercises", "from": "tree", "count": 1, "limit": 2},
]


@pytest.mark.parametrize("chunk", [16_384, 2], ids=["one-chunk", "chunks-of-2"])
def test_a_three_step_job_chains_topics_into_sections_and_exercises(tmp_path, capsys, monkeypatch, chunk):
    monkeypatch.setattr(local, "CHUNK_REQUESTS", chunk)  # answered, parsed and written 2 requests at a time
    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0, responder=scripted)
    with serve_in_thread(server.app()) as url:
        job = write_job(tmp_path / "job.yaml", url, STEPS)
        assert main(["generate", str(job), "--run-dir", str(tmp_path / "run")]) == 0
    tree = read_records(tmp_path / "run" / "steps" / "tree")
    assert [r.question for r in tree[:3]] == [
        "pandas group-by part 0",
        "pandas group-by part 1",
        "pandas group-by part 2",
    ]
    assert {r.parse_status for r in tree} == {"parsed", "repaired"}
    repaired = [r for r in tree if r.parse_status == "repaired"]
    assert [r.question for r in repaired] == ["repaired topic"] and repaired[0].skill == "broken subject"
    book = read_records(tmp_path / "run" / "steps" / "book")
    assert len(book) == len(tree) == 7 and all(r.kind == "textbook" and r.answer.startswith("# Section") for r in book)
    assert [b.parent_ids for b in book] == [[t.id] for t in tree], "each section traces back to its topic row"
    personas = [b.messages[0].content for b in book[:2]]
    assert "a patient tutor" in personas[0] and "a terse engineer" in personas[1]
    practice = read_records(tmp_path / "run" / "steps" / "practice")
    assert len(practice) == 2 and practice[0].answer == "42" and practice[0].reasoning == "step"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"]["tree"]["repaired"] == 1 and metrics["total"]["calls"] == 3 + 1 + 7 + 2
    assert "calls this run" in capsys.readouterr().out


def test_a_step_stopped_after_a_checkpoint_goes_on_from_it(tmp_path, monkeypatch, capsys):
    from synthloop.storage.shards import ShardWriter

    monkeypatch.setattr(local, "CHUNK_REQUESTS", 2)  # a checkpoint after every 2 requests (shards of 1 row)
    checkpoint, saved = ShardWriter.checkpoint, []

    def stop_after_two(self):
        checkpoint(self)
        saved.append(self.rows)
        if len(saved) == 2:
            raise KeyboardInterrupt  # stopped with the second checkpoint's shards written, not its progress

    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0, responder=scripted)
    steps = [{"name": "t", "task": "topics", "inputs": [f"subject {i}" for i in range(7)]}]
    with serve_in_thread(server.app()) as url:
        job = write_job(tmp_path / "job.yaml", url, steps, shard_size=1)
        whole = tmp_path / "whole"
        assert main(["generate", str(job), "--run-dir", str(whole)]) == 0
        monkeypatch.setattr(ShardWriter, "checkpoint", stop_after_two)
        with pytest.raises(KeyboardInterrupt):
            main(["generate", str(job), "--run-dir", str(tmp_path / "run")])
        monkeypatch.setattr(ShardWriter, "checkpoint", checkpoint)
        shutil.rmtree(tmp_path / "run" / "cache")  # so the answers before the checkpoint cannot come from it
        sent = sum(server.received.values())
        assert main(["generate", str(job), "--run-dir", str(tmp_path / "run"), "--resume"]) == 0
    assert "resume: 2 of 7 requests already written" in capsys.readouterr().out  # the first checkpoint's
    assert sum(server.received.values()) - sent == 5  # only the requests after it are sent
    resumed, clean = read_records(tmp_path / "run" / "steps" / "t"), read_records(whole / "steps" / "t")
    assert [r.id for r in resumed] == [r.id for r in clean] and len(clean) >= 7


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: {**p, "requests": 10**9},  # more than there are: would mark the step done without its rows
        lambda p: {**p, "rows": p["rows"] + 1},  # the shards do not hold what it says
        lambda p: {**p, "shards": "2"},
        lambda p: {k: v for k, v in p.items() if k != "stats"},
        lambda p: [p],
        lambda p: {**p, "stats": {"calls": 1}},
        lambda p: "swap",  # the first shard replaced by the second: as many rows, other rows
    ],
    ids=[
        "requests-past-the-end",
        "rows-not-in-shards",
        "shards-not-a-number",
        "no-stats",
        "not-an-object",
        "calls-not-counts",
        "shard-swapped",
    ],
)
def test_a_progress_file_that_does_not_fit_its_shards_starts_the_step_over(tmp_path, monkeypatch, tamper):
    from synthloop.storage.shards import ShardWriter

    monkeypatch.setattr(local, "CHUNK_REQUESTS", 2)
    checkpoint, saved = ShardWriter.checkpoint, []

    def stop_after_two(self):
        checkpoint(self)
        saved.append(self.rows)
        if len(saved) == 3:
            raise KeyboardInterrupt  # the second checkpoint's progress is written

    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0, responder=scripted)
    steps = [{"name": "t", "task": "topics", "inputs": [f"subject {i}" for i in range(7)]}]
    with serve_in_thread(server.app()) as url:
        job = write_job(tmp_path / "job.yaml", url, steps, shard_size=1)
        assert main(["generate", str(job), "--run-dir", str(tmp_path / "whole")]) == 0
        monkeypatch.setattr(ShardWriter, "checkpoint", stop_after_two)
        with pytest.raises(KeyboardInterrupt):
            main(["generate", str(job), "--run-dir", str(tmp_path / "run")])
        monkeypatch.setattr(ShardWriter, "checkpoint", checkpoint)
        progress = tmp_path / "run" / "steps" / "t" / "progress.json"
        if (tampered := tamper(json.loads(progress.read_text()))) == "swap":
            shutil.copy(progress.parent / "part-00001.parquet", progress.parent / "part-00000.parquet")
        else:
            progress.write_text(json.dumps(tampered))
        assert main(["generate", str(job), "--run-dir", str(tmp_path / "run"), "--resume"]) == 0
    resumed, clean = read_records(tmp_path / "run" / "steps" / "t"), read_records(tmp_path / "whole" / "steps" / "t")
    assert [r.id for r in resumed] == [r.id for r in clean]  # started over: every row once


def test_a_reply_that_never_parses_is_kept_as_a_failed_row(tmp_path):
    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0, responder=scripted)
    with serve_in_thread(server.app()) as url:
        job = write_job(tmp_path / "job.yaml", url, [{"name": "t", "task": "topics", "inputs": ["hopeless", "ok"]}])
        assert main(["generate", str(job), "--run-dir", str(tmp_path / "run")]) == 0
    rows = read_records(tmp_path / "run" / "steps" / "t")
    failed = [r for r in rows if r.parse_status == "failed"]
    assert len(failed) == 1 and failed[0].skill == "hopeless" and "after one repair" in failed[0].error
    assert failed[0].raw_output.startswith("Here are some topics")


def test_dry_run_sends_nothing_and_a_budget_cap_stops_with_status_3_then_resumes(tmp_path, capsys):
    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0, responder=scripted)
    with serve_in_thread(server.app()) as url:
        prices = {"input_per_million": 1000.0, "output_per_million": 1000.0}
        steps = [{"name": "book", "task": "textbook", "inputs": [f"topic {i}" for i in range(40)], "max_tokens": 50}]
        job = write_job(tmp_path / "job.yaml", url, steps, prices=prices, max_cost_usd=1.0, concurrency=2)
        assert main(["generate", str(job), "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "40 calls to send" in out and "cost at most $" in out and sum(server.received.values()) == 0
        run_dir = tmp_path / "run"
        assert main(["generate", str(job), "--run-dir", str(run_dir)]) == 3
        assert "max_cost_usd" in capsys.readouterr().err
        paid = sum(server.completed.values())
        assert 0 < paid < 40 and not (run_dir / "steps" / "book" / "_SUCCESS.json").exists()
        # Raising the cap is not a new job: resume pays only for the rest.
        write_job(tmp_path / "job.yaml", url, steps, prices=prices, max_cost_usd=100.0, concurrency=2)
        assert main(["generate", str(job), "--run-dir", str(run_dir), "--resume"]) == 0
        assert sum(server.completed.values()) == 40 and max(server.completed.values()) == 1
    assert len(read_records(run_dir / "steps" / "book")) == 40


def test_bad_job_files_fail_at_validation(tmp_path):
    def check(steps, match, **teacher):
        path = write_job(tmp_path / "bad.yaml", "http://127.0.0.1:1", steps, **teacher)
        with pytest.raises(RecipeError, match=match):
            load_job(path)

    check(
        [{"name": "a", "task": "textbook", "inputs": ["x"], "template": "Write about {topc}"}],
        r"did you mean \{topic\}",
    )
    check([{"name": "a", "task": "textbok", "inputs": ["x"]}], "did you mean 'textbook'")
    check([{"name": "a", "task": "textbook", "from": "later"}], "not an earlier step")
    check([{"name": "a", "task": "textbook"}], "exactly one of inputs, inputs_file or from")
    check([{"name": "a", "task": "textbook", "inputs_file": "missing.jsonl"}], "inputs file not found")
    (tmp_path / "bad.jsonl").write_text('{"topic": "fine"}\n{"topic": 3}\n')
    check(
        [{"name": "a", "task": "textbook", "inputs_file": "bad.jsonl"}],
        r"bad.jsonl line 2: needs a string field 'topic'",
    )
    check([{"name": "a", "task": "textbook", "inputs": ["x"]}], "unknown key 'teacher.bse_url'", bse_url="x")


def test_unreachable_server_fails_before_anything_is_written(tmp_path, capsys):
    job = write_job(tmp_path / "job.yaml", "http://127.0.0.1:9", [{"name": "a", "task": "textbook", "inputs": ["x"]}])
    assert main(["generate", str(job), "--run-dir", str(tmp_path / "run")]) == 2
    assert "cannot reach the teacher at http://127.0.0.1:9/v1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_task_parsing_and_schemas():
    topics = TopicsTask(count=2)
    request = topics.build_request("graphs", SamplingParams(), persona="a pirate")
    assert "List 2 distinct subtopics of: graphs" in request.messages[1].content
    assert "a pirate" in request.messages[0].content and request.response_schema["required"] == ["topics"]
    assert [i.question for i in topics.parse('{"topics": ["a", "b"]}').items] == ["a", "b"]
    assert "does not match the schema" in topics.parse('{"topics": [1]}').failure
    assert "no valid JSON" in topics.parse("nothing here").failure
    exercise = ExercisesTask().parse('Sure! {"exercises": [{"problem": "p", "solution": "s", "answer": "a"}]} Done.')
    assert exercise.items[0].answer == "a" and exercise.failure is None


@pytest.mark.slow
def test_kill_9_then_resume_reissues_only_unanswered_calls(tmp_path):
    """A real `synthloop generate` process is killed with SIGKILL mid-step; `--resume` sends only the calls
    whose answers never arrived, counted at the server."""
    server = SimulatedServer(max_concurrent=8, seconds_per_token=0.01, output_tokens=5)  # 20 calls/s at most
    with serve_in_thread(server.app()) as url:
        steps = [{"name": "book", "task": "textbook", "inputs": [f"topic {i}" for i in range(200)]}]
        job = write_job(tmp_path / "job.yaml", url, steps, concurrency=8)
        run_dir = tmp_path / "run"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "synthloop.cli.main", "generate", str(job), "--run-dir", str(run_dir)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while sum(server.completed.values()) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = dict(server.received)
        cache = ResponseCache(run_dir / "cache" / "responses.sqlite")
        run_id = json.loads((run_dir / "manifest.json").read_text())["run_id"]
        answered_before = {k for k, ok in cache.calls_for(run_id) if ok}
        # The server counts a call done before the client has cached it: a few may be in flight at the kill.
        assert 0 < len(answered_before) < 200, "killed mid-step, with answers already cached"
        subprocess.run([*cmd, "--resume"], env=env, check=True, capture_output=True)
        reissued = {k: n - before.get(k, 0) for k, n in server.received.items() if n - before.get(k, 0)}
    # Every call of the resumed session is one the first session had no answer for, sent once.
    assert len(reissued) == 200 - len(answered_before) and set(reissued.values()) == {1}
    assert len(read_records(run_dir / "steps" / "book")) == 200
    calls = ResponseCache(run_dir / "cache" / "responses.sqlite").calls_for(run_id)
    assert len(calls) == 200 and len({k for k, _ in calls}) == 200, "the ledger holds each call once"
