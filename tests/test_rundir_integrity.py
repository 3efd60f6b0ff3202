"""A run directory never loses a row silently: damaged shards are found and redone, failed calls are
tried again on --resume, and a round or job that produced nothing stops with one line instead of
"done". Real CLI, real loopback server, real Parquet files."""

import json
from pathlib import Path

import yaml

from synthloop.cli.main import main
from synthloop.storage.shards import read_records
from synthloop.testing import serve_in_thread
from synthloop.testing.simulated_server import SimulatedServer


class Teacher:
    """A loopback teacher that answers 500 to the prompts `failing` picks until it is healed."""

    def __init__(self, failing=lambda prompt: False, answer=lambda prompt: f"# A section about {prompt[:30]}"):
        self.failing, self.answer, self.sent = failing, answer, []
        self.server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0, responder=self.reply)

    def reply(self, body):
        prompt = body["messages"][-1]["content"]
        self.sent.append(prompt)
        if self.failing(prompt):
            raise RuntimeError("teacher overloaded")  # the server answers 500
        return self.answer(prompt)


def write_job(path, url, inputs, shard_size=50):
    teacher = {"backend": "openai", "model": "simulated", "base_url": f"{url}/v1", "max_retries": 0}
    job = {"name": "job", "teacher": teacher, "shard_size": shard_size,
           "steps": [{"name": "book", "task": "textbook", "inputs": inputs}]}  # fmt: skip
    path.write_text(yaml.safe_dump(job))
    return path


def test_resume_tries_failed_calls_again_and_says_how_many(tmp_path, capsys):
    teacher = Teacher(failing=lambda prompt: "beta" in prompt)
    root = tmp_path / "run"
    with serve_in_thread(teacher.server.app()) as url:
        job = write_job(tmp_path / "job.yaml", url, ["alpha", "beta", "gamma"])
        assert main(["generate", str(job), "--run-dir", str(root)]) == 0
        rows = read_records(root / "steps" / "book")
        assert sum(r.error is not None for r in rows) == 1
        teacher.failing, teacher.sent = (lambda prompt: False), []
        assert main(["generate", str(job), "--run-dir", str(root), "--resume"]) == 0
    assert "resume: 1 calls failed last time" in capsys.readouterr().out
    assert len(teacher.sent) == 1 and "beta" in teacher.sent[0]  # only the failed call was paid again
    rows = read_records(root / "steps" / "book")
    assert len(rows) == 3 and all(r.error is None for r in rows)


def test_a_job_whose_steps_came_out_empty_fails_and_resumes_after_the_fix(tmp_path, capsys):
    teacher = Teacher(failing=lambda prompt: True)
    root = tmp_path / "run"
    with serve_in_thread(teacher.server.app()) as url:
        job = write_job(tmp_path / "job.yaml", url, ["alpha", "beta"])
        assert main(["generate", str(job), "--run-dir", str(root)]) == 2
        err = capsys.readouterr().err
        assert "step book produced no usable rows (2 calls failed (first error: " in err
        assert err.splitlines()[-1].startswith("synthloop: error: step book produced no usable rows")
        teacher.failing = lambda prompt: False
        assert main(["generate", str(job), "--run-dir", str(root), "--resume"]) == 0
    assert all(r.error is None for r in read_records(root / "steps" / "book"))


def test_a_deleted_or_truncated_shard_is_found_and_redone_from_the_cache(tmp_path, capsys):
    teacher = Teacher()
    root = tmp_path / "run"
    with serve_in_thread(teacher.server.app()) as url:
        job = write_job(tmp_path / "job.yaml", url, ["alpha", "beta", "gamma", "delta"], shard_size=1)
        assert main(["generate", str(job), "--run-dir", str(root)]) == 0
        step = root / "steps" / "book"
        before = sorted(r.id for r in read_records(step))
        paid = len(teacher.sent)
        (step / "part-00001.parquet").unlink()
        assert main(["generate", str(job), "--run-dir", str(root), "--resume"]) == 0
        assert "part-00001.parquet missing (1 rows); redoing it" in capsys.readouterr().err
        data = (step / "part-00002.parquet").read_bytes()
        (step / "part-00002.parquet").write_bytes(data[: len(data) // 2])
        assert main(["generate", str(job), "--run-dir", str(root), "--resume"]) == 0
        assert "part-00002.parquet truncated or changed" in capsys.readouterr().err
        (step / "part-00003.parquet").rename(step / "part-00009.parquet")  # a shard that is not its own
        assert main(["generate", str(job), "--run-dir", str(root), "--resume"]) == 0
        assert "part-00003.parquet missing (1 rows); redoing it" in capsys.readouterr().err
        (step / "part-00009.parquet").write_bytes((step / "part-00000.parquet").read_bytes())  # an extra one
        assert main(["generate", str(job), "--run-dir", str(root), "--resume"]) == 0
        assert "part-00009.parquet not written by this run; redoing it" in capsys.readouterr().err
    assert sorted(r.id for r in read_records(step)) == before
    assert len(teacher.sent) == paid  # every row came back from the response cache


def test_a_round_that_keeps_no_row_stops_before_training(tmp_path, capsys):
    recipe = yaml.safe_load(Path("tests/tiny_recipe.yaml").read_text())
    recipe["rounds"], recipe["teacher"] = 1, {"noise": 1.0}  # a teacher that is always wrong
    recipe["generation"]["budget_per_round"] = 40
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))
    root = tmp_path / "run"
    assert main(["run", str(path), "--run-dir", str(root)]) == 2
    err = capsys.readouterr().err
    assert "round 1: curation kept 0 of 40 generated rows; rejected: wrong_answer 40" in err
    assert "rerun with --resume" in err and not (root / "rounds" / "01" / "student").exists()
    assert main(["run", str(path), "--run-dir", str(root), "--resume"]) == 2  # the same clear line again


def test_a_full_disk_is_one_line_and_resume_after_freeing_space_gives_the_same_rows(tmp_path):
    """A real file-size limit on the process (what a full disk does to its writes: they fail)."""
    import json
    import resource
    import subprocess
    import sys

    teacher = Teacher()
    root = tmp_path / "run"

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    with serve_in_thread(teacher.server.app()) as url:
        job = write_job(tmp_path / "job.yaml", url, [f"subject {i}" for i in range(300)])
        cmd = [sys.executable, "-m", "synthloop.cli.main", "generate", str(job), "--run-dir", str(root)]
        full = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=small_disk)
        assert full.returncode == 2, full.stderr[-2000:]
        last = full.stderr.strip().splitlines()[-1]
        assert last.startswith("synthloop: error: the disk is full") and "--resume" in last
        done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    rows = read_records(root / "steps" / "book")
    assert len(rows) == 300 and all(r.error is None for r in rows)
    assert len(set(teacher.sent)) == 300  # every subject was asked; answers cached before the failure were reused
    assert json.loads((root / "metrics.json").read_text())["steps"]["book"]["rows"] == 300


def tiny_recipe(tmp_path, rounds=2, **teacher):
    recipe = yaml.safe_load(Path("tests/tiny_recipe.yaml").read_text())
    recipe.update(rounds=rounds, skills={"addition": {"difficulty": 1}, "comparison": {"difficulty": 1}})
    recipe["generation"] = {"budget_per_round": 20, "shard_size": 5}
    recipe["student"]["train"]["steps_per_round"] = 3
    recipe["evaluation"]["probes_per_skill"] = 5
    recipe["teacher"] = teacher or recipe["teacher"]
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def ledger_calls(root):
    import sqlite3

    with sqlite3.connect(root / "cache" / "responses.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]


def test_a_damaged_finished_round_is_redone_from_the_cache_and_stays_done(tmp_path, capsys):
    """A truncated or deleted shard of a round marked done is found on --resume and redone; rebuilt into
    the same rows, nothing derived from it is redone (no training again) and no call is paid again."""
    recipe, root = tiny_recipe(tmp_path), tmp_path / "run"
    assert main(["run", str(recipe), "--run-dir", str(root)]) == 0
    r1 = root / "rounds" / "01"
    ids = {d: [r.id for r in read_records(r1 / d)] for d in ("generated", "curated", "rejected", "train")}
    student, evaluation, calls = (
        (r1 / "student" / "model.safetensors").stat().st_mtime_ns,
        (r1 / "eval.json").read_bytes(),
        ledger_calls(root),
    )
    (r1 / "generated" / "part-00001.parquet").unlink()
    data = (r1 / "curated" / "part-00000.parquet").read_bytes()
    (r1 / "curated" / "part-00000.parquet").write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    assert main(["run", str(recipe), "--run-dir", str(root), "--resume"]) == 0
    out, err = capsys.readouterr()
    assert "generated: part-00001.parquet missing (" in err and "redoing it" in err
    assert "round 1: finished earlier, but part of it is damaged" in out and "round 2: already done, skipped" in out
    assert {d: [r.id for r in read_records(r1 / d)] for d in ids} == ids
    assert (r1 / "student" / "model.safetensors").stat().st_mtime_ns == student  # not trained again
    assert (r1 / "eval.json").read_bytes() == evaluation and ledger_calls(root) == calls
    capsys.readouterr()
    (r1 / "curated" / "part-00000.parquet").write_bytes(data[: len(data) // 2])  # and caught, as before, on
    assert main(["run", str(recipe), "--run-dir", str(root), "--resume"]) == 0  # every resume
    assert "curated: part-00000.parquet truncated or changed" in capsys.readouterr().err


def test_a_round_whose_calls_all_failed_stops_before_training_and_resume_goes_on_after_the_fix(tmp_path, capsys):
    def answer(prompt):
        return f"Work it out one step at a time for this problem.\n#### {len(prompt) % 97}"

    teacher = Teacher(failing=lambda prompt: True, answer=answer)
    with serve_in_thread(teacher.server.app()) as url:
        recipe = tiny_recipe(
            tmp_path, rounds=1, backend="openai", model="simulated", base_url=f"{url}/v1", max_retries=0
        )
        data = yaml.safe_load(recipe.read_text())
        data["curation"] = {"verify": False, "quality": False}  # the stub's answers are kept as they come
        recipe.write_text(yaml.safe_dump(data))
        root = tmp_path / "run"
        assert main(["run", str(recipe), "--run-dir", str(root)]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith(
            "synthloop: error: round 1: curation kept 0 of 20 generated rows; 20 teacher calls failed"
        )
        assert "(first error: TeacherError: HTTP 500 from " in err and "rejected: teacher_error 20" in err
        assert err.endswith("rerun with --resume")
        assert not (root / "rounds" / "01" / "student").exists()
        teacher.failing = lambda prompt: False  # the cause fixed
        assert main(["run", str(recipe), "--run-dir", str(root), "--resume"]) == 0
    assert "resume: 20 calls failed last time" in capsys.readouterr().out
    curated = read_records(root / "rounds" / "01" / "curated")
    assert len(curated) > 0 and all(r.error is None for r in curated)
    assert (root / "rounds" / "01" / "eval.json").exists()


def test_a_response_cache_damaged_inside_is_one_line_naming_it(tmp_path, capsys):
    """Damage past the header is found only when a damaged page is read: still one line, not a traceback."""
    teacher = Teacher()
    root = tmp_path / "run"
    with serve_in_thread(teacher.server.app()) as url:
        job = write_job(tmp_path / "job.yaml", url, [f"subject {i} " * 20 for i in range(400)], shard_size=100)
        assert main(["generate", str(job), "--run-dir", str(root)]) == 0
        cache = root / "cache" / "responses.sqlite"
        data = bytearray(cache.read_bytes())
        middle = len(data) // 2
        data[middle : middle + 65536] = b"Z" * 65536
        cache.write_bytes(bytes(data))
        (root / "steps" / "book" / "part-00001.parquet").unlink()
        capsys.readouterr()
        assert main(["generate", str(job), "--run-dir", str(root), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        f"synthloop: error: {cache} is not a usable response cache (database disk image is malformed); move it "
        "aside and rerun with --resume (the answers in it will be paid for again)"
    )


def test_markers_from_before_checksums_are_checked_by_row_count_and_said_so(tmp_path, capsys):
    import json

    teacher = Teacher()
    root = tmp_path / "run"
    with serve_in_thread(teacher.server.app()) as url:
        job = write_job(tmp_path / "job.yaml", url, ["alpha", "beta", "gamma", "delta"], shard_size=2)
        assert main(["generate", str(job), "--run-dir", str(root)]) == 0
        step = root / "steps" / "book"
        marker = json.loads((step / "_SUCCESS.json").read_text())
        old = {k: v for k, v in marker.items() if k not in ("shards", "ids", "inputs")}  # as an older run wrote it
        (step / "_SUCCESS.json").write_text(json.dumps(old))
        (step / "part-00001.parquet").unlink()
        capsys.readouterr()
        assert main(["generate", str(job), "--run-dir", str(root), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "markers written before checksums existed; their shards are checked by row count only" in err
    assert "book: 2 rows where its marker counted 4; redoing it" in err
    assert len(read_records(step)) == 4


def test_a_damaged_shard_that_cannot_be_redone_within_the_cap_is_one_clear_line(tmp_path, capsys):
    """The cache lost the answers (its ledger kept) and the token cap forbids paying for them again."""
    import sqlite3

    teacher = Teacher()
    root = tmp_path / "run"
    with serve_in_thread(teacher.server.app()) as url:
        job = write_job(tmp_path / "job.yaml", url, ["alpha", "beta", "gamma", "delta"], shard_size=1)
        data = yaml.safe_load(job.read_text())
        data["teacher"].update(max_total_tokens=800, concurrency=1)  # 4 calls spend 724 tokens; a fifth would cross it
        data["steps"][0]["max_tokens"] = 100
        job.write_text(yaml.safe_dump(data))
        assert main(["generate", str(job), "--run-dir", str(root)]) == 0
        with sqlite3.connect(root / "cache" / "responses.sqlite") as db:
            db.execute("DELETE FROM responses")
        (root / "steps" / "book" / "part-00002.parquet").unlink()
        capsys.readouterr()
        assert main(["generate", str(job), "--run-dir", str(root), "--resume"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].endswith("book: part-00002.parquet missing (1 rows); redoing it")
    assert err[-1].startswith(
        f"synthloop: stopped: {root / 'steps' / 'book'} was damaged and the response cache no longer holds all its "
        "answers, so redoing it needs new calls, but max_total_tokens 800 reached"
    )


def test_a_full_disk_while_writing_a_shard_names_it_and_resume_gives_the_run_an_uninterrupted_one_gives(tmp_path):
    """Long inputs, short replies: the cache stays small and the shard is the file the limit stops."""
    import random
    import resource
    import subprocess
    import sys

    teacher = Teacher(answer=lambda prompt: "# A short section")
    rng = random.Random(0)
    (tmp_path / "inputs.txt").write_text("".join(f"{rng.getrandbits(256_000):x}\n" for _ in range(10)))

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, 512 * 1024))

    with serve_in_thread(teacher.server.app()) as url:
        job = write_job(tmp_path / "job.yaml", url, [])
        data = yaml.safe_load(job.read_text())
        data["steps"][0] = {"name": "book", "task": "textbook", "inputs_file": "inputs.txt"}
        job.write_text(yaml.safe_dump(data))
        cmd = [sys.executable, "-m", "synthloop.cli.main", "generate", str(job), "--run-dir"]
        full = subprocess.run([*cmd, str(tmp_path / "run")], capture_output=True, text=True, preexec_fn=small_disk)
        assert full.returncode == 2, full.stderr[-2000:]
        shard = tmp_path / "run" / "steps" / "book" / "part-00000.parquet"
        last = full.stderr.strip().splitlines()[-1]
        assert last.startswith(f"synthloop: error: the disk is full or failing writing {shard} ("), last
        paid = len(teacher.sent)
        done = subprocess.run([*cmd, str(tmp_path / "run"), "--resume"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert len(teacher.sent) == paid == 10  # every answer came from the cache
        clean = subprocess.run([*cmd, str(tmp_path / "clean")], capture_output=True, text=True)
        assert clean.returncode == 0, clean.stderr[-2000:]
    resumed, uninterrupted = (read_records(tmp_path / d / "steps" / "book") for d in ("run", "clean"))
    assert [r.id for r in resumed] == [r.id for r in uninterrupted] and len(resumed) == 10


def test_a_finished_round_that_comes_out_different_when_redone_redoes_the_rounds_after_it(tmp_path, capsys):
    """Round 1 finished with failed calls; its damaged shard is redone once the teacher is healthy, so its
    rows change: round 2 was curated against (accumulate) and trained on top of the old round 1, so that
    is redone too; its generated rows, made from an unchanged plan, stay as they were."""

    def answer(prompt):
        return f"Work it out one step at a time for this problem.\n#### {len(prompt) % 97}"

    teacher = Teacher(failing=lambda prompt: "larger" in prompt.lower() or "compare" in prompt.lower(), answer=answer)
    with serve_in_thread(teacher.server.app()) as url:
        recipe = tiny_recipe(tmp_path, backend="openai", model="simulated", base_url=f"{url}/v1", max_retries=0)
        data = yaml.safe_load(recipe.read_text())
        data["curation"] = {"verify": False, "quality": False}
        recipe.write_text(yaml.safe_dump(data))
        root = tmp_path / "run"
        assert main(["run", str(recipe), "--run-dir", str(root)]) == 0
        r1, r2 = root / "rounds" / "01", root / "rounds" / "02"
        failed = sum(r.error is not None for r in read_records(r1 / "generated"))
        assert failed and any(r.error for r in read_records(r2 / "generated"))
        old_student = (r2 / "student" / "model.safetensors").read_bytes()
        teacher.failing = lambda prompt: False
        for shard in (r1 / "generated").glob("part-*.parquet"):
            if any(r.error for r in read_records_of(shard)):
                shard.unlink()
                break
        capsys.readouterr()
        assert main(["run", str(recipe), "--run-dir", str(root), "--resume"]) == 0
    out, err = capsys.readouterr()
    assert "round 2: finished earlier, but part of it is damaged or was made from what has changed" in out
    assert f"{r2 / 'curated'}: derived from rows that have changed since; redoing it" in err
    assert not any(r.error for r in read_records(r1 / "generated"))
    kept_in_round_1 = {r.id for r in read_records(r1 / "curated")}
    assert kept_in_round_1 <= {r.id for r in read_records(r2 / "train")}  # accumulate: the new rows are in
    assert (r2 / "student" / "model.safetensors").read_bytes() != old_student


def read_records_of(shard):
    import pyarrow.parquet as pq

    from synthloop.records import from_table

    return from_table(pq.read_table(shard))


def test_a_damaged_student_checkpoint_of_a_finished_round_is_trained_again(tmp_path, capsys):
    recipe, root = tiny_recipe(tmp_path, rounds=1), tmp_path / "run"
    assert main(["run", str(recipe), "--run-dir", str(root)]) == 0
    weights = root / "rounds" / "01" / "student" / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    capsys.readouterr()
    assert main(["run", str(recipe), "--run-dir", str(root), "--resume"]) == 0
    out, err = capsys.readouterr()
    assert (
        "student: model.safetensors truncated or changed since it was written (checksum differs); training it again"
        in err
    )
    assert "round 1: trained 3 steps" in out and len(weights.read_bytes()) == len(good)


def test_damaged_markers_plan_and_eval_are_redone_and_a_damaged_manifest_is_one_line(tmp_path, capsys):
    recipe, root = tiny_recipe(tmp_path, rounds=1), tmp_path / "run"
    assert main(["run", str(recipe), "--run-dir", str(root)]) == 0
    r1 = root / "rounds" / "01"
    evaluation = (r1 / "eval.json").read_text()
    for damaged in (r1 / "curated" / "_SUCCESS.json", r1 / "eval.json", r1 / "plan.json"):
        damaged.write_text(damaged.read_text()[:20])
    capsys.readouterr()
    assert main(["run", str(recipe), "--run-dir", str(root), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "curated: its _SUCCESS.json cannot be read; redoing it" in err
    assert "eval.json: unreadable or of another student; evaluating again" in err
    assert json.loads((r1 / "eval.json").read_text())["macro"] == json.loads(evaluation)["macro"]
    (root / "manifest.json").write_text('{"rounds": ')
    assert main(["run", str(recipe), "--run-dir", str(root), "--resume"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"synthloop: error: {root / 'manifest.json'} is damaged (Expecting value: line 1 column 12 (char 11)); "
        f"restore it, or start a new --run-dir with --cache {root}/cache/responses.sqlite to reuse the answers "
        "already paid for"
    )


def test_a_step_made_from_rows_that_changed_since_is_made_again_even_in_a_later_process(tmp_path, capsys):
    """A kill between an upstream step's rewrite and its downstream step's leaves the old downstream
    marked complete: its marker's digest of its inputs tells it apart."""
    import shutil

    teacher = Teacher(failing=lambda prompt: "beta" in prompt)
    root = tmp_path / "run"
    with serve_in_thread(teacher.server.app()) as url:
        job = write_job(tmp_path / "job.yaml", url, ["alpha", "beta", "gamma"])
        data = yaml.safe_load(job.read_text())
        data["steps"].append({"name": "more", "task": "textbook", "from": "book"})
        job.write_text(yaml.safe_dump(data))
        assert main(["generate", str(job), "--run-dir", str(root)]) == 0
        more = root / "steps" / "more"
        assert len(read_records(more)) == 2  # made from the two calls that did not fail
        shutil.copytree(more, tmp_path / "old-more")
        teacher.failing = lambda prompt: False
        assert main(["generate", str(job), "--run-dir", str(root), "--resume"]) == 0
        shutil.rmtree(more)
        shutil.copytree(tmp_path / "old-more", more)  # as a kill right after `book` was rewritten leaves it
        capsys.readouterr()
        assert main(["generate", str(job), "--run-dir", str(root), "--resume"]) == 0
    assert "more: derived from rows that have changed since; redoing it" in capsys.readouterr().err
    assert len(read_records(more)) == 3


def test_a_plan_made_from_an_evaluation_that_changed_since_is_made_again_with_its_round(tmp_path, capsys):
    recipe, root = tiny_recipe(tmp_path), tmp_path / "run"
    assert main(["run", str(recipe), "--run-dir", str(root)]) == 0
    r1, r2 = root / "rounds" / "01", root / "rounds" / "02"
    evaluation = json.loads((r1 / "eval.json").read_text())
    evaluation["per_skill"] = {"addition": 1.0, "comparison": 0.0}  # as a re-evaluated student would score
    (r1 / "eval.json").write_text(json.dumps(evaluation))
    before = json.loads((r2 / "plan.json").read_text())["counts"]
    capsys.readouterr()
    assert main(["run", str(recipe), "--run-dir", str(root), "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"{r2 / 'plan.json'}: unreadable or made from an evaluation that has changed since; planning again" in err
    after = json.loads((r2 / "plan.json").read_text())["counts"]
    assert after["comparison"] > before["comparison"]  # the budget follows the new weakness
    generated = read_records(r2 / "generated")
    assert sum(r.skill == "comparison" for r in generated) == after["comparison"]
