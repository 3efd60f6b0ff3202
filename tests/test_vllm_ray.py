"""`teacher.backend: vllm` with `--engine ray`: the calls go through Ray Data LLM's own processor on a
real local Ray, with the one stage that needs a GPU and vLLM played by a stand-in
(`synthloop.testing.vllm_stand_in`). Every input is written once, in order; a call vLLM fails is kept as
failed and sent again by `--resume`; replies that do not parse are repaired; a budget cap and a
SIGKILL lose nothing and pay nothing twice. Without GPUs, or on the local engine, the run fails before
anything is written, saying what to do."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from synthloop.cli.main import main
from synthloop.config import RecipeError, default_recipe_text, parse_recipe
from synthloop.storage.shards import read_records

ray = pytest.importorskip("ray", reason="the 'ray' extra is not installed")
pytestmark = pytest.mark.slow

TOPICS = [f"topic {i}" for i in range(30)]
TOPICS[7] = "topic FAIL 7"  # the stand-in fails every call whose prompt says FAIL

WRAPPER = """
import sys
import synthloop.runners.ray_vllm as ray_vllm
from synthloop.testing.vllm_stand_in import StandInEngines
ray_vllm.ENGINES = lambda cfg: StandInEngines(cfg, sys.argv[1], float(sys.argv[2]))
from synthloop.cli.main import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def local_ray():
    from synthloop.runners.ray_setup import connect

    connect(None, num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def teacher_model(tmp_path_factory) -> str:
    """A small local model: Ray's chat template, tokenizer and detokenizer stages use its tokenizer."""
    from synthloop.testing.tiny_model import build_tiny_chat_model

    return str(build_tiny_chat_model(tmp_path_factory.mktemp("teacher") / "model"))


@pytest.fixture
def stand_in(tmp_path, monkeypatch, teacher_model) -> Path:
    """vLLM played by the stand-in in this process; returns the file that logs each row it answers."""
    import synthloop.runners.ray_vllm as ray_vllm
    from synthloop.testing.vllm_stand_in import StandInEngines

    log = tmp_path / "sent.log"
    monkeypatch.setattr(ray_vllm, "ENGINES", lambda cfg: StandInEngines(cfg, str(log)))
    return log


def sent(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def job_file(tmp_path: Path, steps: list[dict], model: str = "org/teacher-7b", **teacher) -> Path:
    teacher = {"backend": "vllm", "model": model, "batch_size": 4, "replicas": 1, **teacher}
    job = {"name": "book", "shard_size": 10, "steps": steps, "teacher": teacher}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def book(topics: list[str] = TOPICS) -> list[dict]:
    return [{"name": "book", "task": "textbook", "inputs": topics}]


def generate(job: Path, run: Path, *extra: str) -> int:
    return main(["generate", str(job), "--run-dir", str(run), "--engine", "ray", *extra])


def test_every_input_is_written_once_in_order_and_a_failed_call_is_kept_then_sent_again_by_resume(
    tmp_path, local_ray, stand_in, teacher_model
):
    job, run = job_file(tmp_path, book(), model=teacher_model, replicas=2), tmp_path / "run"
    assert generate(job, run) == 0
    rows = read_records(run / "steps" / "book")
    assert [r.skill for r in rows] == TOPICS
    failed = [r for r in rows if r.error]
    assert [r.skill for r in failed] == ["topic FAIL 7"]
    assert "vLLM: ValueError: the stand-in was told to fail" in failed[0].error
    assert all(
        r.answer and r.teacher_backend == "vllm" and r.teacher_model == teacher_model for r in rows if not r.error
    )
    assert len(sent(stand_in)) == 30
    calls = json.loads((run / "metrics.json").read_text())["steps"]["book"]["calls"]
    assert (calls["issued"], calls["answered"], calls["failed"], calls["cached"]) == (30, 29, 1, 0)
    assert calls["completion_tokens"] == sum(r.completion_tokens for r in rows) > 0

    assert generate(job, run, "--resume") == 0  # the failed call, and only it, is sent again
    assert len(sent(stand_in)) == 31 and "FAIL 7" in sent(stand_in)[-1]
    assert [r.skill for r in read_records(run / "steps" / "book")] == TOPICS

    again = tmp_path / "again"  # a second run on the same cache sends nothing that was answered
    assert main(["generate", str(job), "--run-dir", str(again), "--engine", "ray", "--cache",
                 str(run / "cache" / "responses.sqlite")]) == 0  # fmt: skip
    assert len(sent(stand_in)) == 32  # the failing call only
    assert [r.answer for r in read_records(again / "steps" / "book")] == [r.answer for r in rows]


def test_replies_that_do_not_parse_get_one_repair_call_and_structured_outputs_need_none(
    tmp_path, local_ray, stand_in, teacher_model
):
    steps = [{"name": "topics", "task": "topics", "inputs": ["algebra", "geometry", "FAIL here"], "samples": 2}]
    run = tmp_path / "run"
    # the stand-in answers in words, not JSON: every sample is repaired
    assert generate(job_file(tmp_path, steps, model=teacher_model), run) == 0
    rows = read_records(run / "steps" / "topics")
    assert sorted(r.parse_status for r in rows if not r.error) == ["repaired"] * 4
    assert sum(bool(r.error) for r in rows) == 2  # the failing input's two samples, kept
    repairs = [line for line in sent(stand_in) if "Your reply could not be used" in line]
    # the stand-in's reply depends on the prompt only, so a prompt's two samples need the same repair
    assert len(sent(stand_in)) == 6 + 2 and len(repairs) == 2
    stats = json.loads((run / "metrics.json").read_text())["steps"]["topics"]
    assert stats["repaired"] == 4 and stats["repair_calls"]["issued"] == 2

    stand_in.unlink()
    broken = tmp_path / "broken"  # a repair call vLLM fails is kept as failed, and --resume sends it again
    steps_broken = [{"name": "topics", "task": "topics", "inputs": ["algebra", "BREAKS REPAIRS"]}]
    assert generate(job_file(tmp_path, steps_broken, model=teacher_model), broken) == 0
    rows = read_records(broken / "steps" / "topics")
    assert [r.parse_status for r in rows] == ["repaired", "failed"] and "the repair call failed" in rows[1].error
    assert generate(job_file(tmp_path, steps_broken, model=teacher_model), broken, "--resume") == 0
    assert len([line for line in sent(stand_in) if "BREAKS REPAIRS" in line and "could not be used" in line]) == 2

    stand_in.unlink()
    structured = tmp_path / "structured"
    assert generate(job_file(tmp_path, steps, structured_output=True, model=teacher_model), structured) == 0
    rows = read_records(structured / "steps" / "topics")
    assert sorted(r.parse_status for r in rows if not r.error) == ["schema"] * 4
    assert not [line for line in sent(stand_in) if "Your reply could not be used" in line]


def test_an_engine_that_fails_outright_stops_the_run_with_its_error_in_one_line(
    tmp_path, local_ray, stand_in, capsys, teacher_model
):
    run = tmp_path / "run"
    assert generate(job_file(tmp_path, book(["topic 0", "topic CRASH 1", "topic 2"]), model=teacher_model), run) == 2
    err = capsys.readouterr().err
    assert "synthloop: error: vLLM on the cluster stopped: RuntimeError: the stand-in engine crashed." in err
    assert "rerun with --resume" in err and "Traceback" not in err


def test_samples_of_one_prompt_get_seeds_of_their_own():
    from synthloop.runners.ray_vllm import call_rows
    from synthloop.teachers.base import Message, SamplingParams, TeacherRequest

    request = TeacherRequest((Message("user", "hi"),), SamplingParams(temperature=0.8, max_tokens=32, n=3))
    table = call_rows(["abcdef0123456789abcdef01"], {"abcdef0123456789abcdef01": request}, 5, None)
    params = [json.loads(p) for p in table.column("sampling").to_pylist()]
    assert table.column("index").to_pylist() == [5, 5, 5] and table.column("sample").to_pylist() == [0, 1, 2]
    assert len({p["seed"] for p in params}) == 3 and {p["n"] for p in params if "n" in p} <= {1}
    assert all(p["temperature"] == 0.8 and p["max_tokens"] == 32 for p in params)


def test_a_budget_cap_holds_calls_back_and_a_raised_cap_goes_on_paying_nothing_twice(
    tmp_path, local_ray, stand_in, teacher_model
):
    run = tmp_path / "run"
    topics = [f"topic {i}" for i in range(20)]
    # each call is held at its worst case: the estimated prompt and max_tokens 1024 (textbook's default)
    assert generate(job_file(tmp_path, book(topics), model=teacher_model, max_total_tokens=8_000), run) == 3
    first = len(sent(stand_in))
    assert 0 < first < 20
    assert generate(job_file(tmp_path, book(topics), model=teacher_model, max_total_tokens=10**9), run, "--resume") == 0
    assert len(sent(stand_in)) == 20, "the calls answered before the cap are not sent again"
    assert [r.skill for r in read_records(run / "steps" / "book")] == topics


def test_a_run_killed_in_the_vllm_pass_resumes_and_sends_only_what_the_cache_lacks(tmp_path, local_ray, teacher_model):
    topics = [f"topic {i}" for i in range(120)]
    run, log = tmp_path / "run", tmp_path / "sent.log"
    job = job_file(tmp_path, book(topics), model=teacher_model, replicas=1)
    address = ray.get_runtime_context().gcs_address
    command = [sys.executable, "-c", WRAPPER, str(log), "0.05", "generate", str(job), "--run-dir", str(run),
               "--engine", "ray", "--address", address]  # fmt: skip
    first = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cache = run / "cache" / "responses.sqlite"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and first.poll() is None and answered_in(cache) < 30:
        time.sleep(0.05)
    assert first.poll() is None, first.stderr.read().decode()[-2000:]
    os.killpg(first.pid, signal.SIGKILL)  # the driver and its children, in the middle of the pass
    first.wait()
    time.sleep(1.0)  # Ray's own workers of the killed job finish their current row, if any
    kept, before = answered_in(cache), len(sent(log))
    assert 30 <= kept < 120
    again = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    rows = read_records(run / "steps" / "book")
    assert [r.skill for r in rows] == topics and all(r.error is None for r in rows), "each input once, in order"
    resent = sent(log)[before:]
    assert len(resent) == 120 - kept, "the resumed run sends exactly what the cache lacked"


def answered_in(cache: Path) -> int:
    try:
        with sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT count(*) FROM responses").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_vllm_on_the_local_engine_fails_before_anything_is_written(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["generate", str(job_file(tmp_path, book())), "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert "teacher.backend vllm runs on a Ray cluster's GPU workers: add --engine ray" in err
    assert not run.exists()


def test_a_cluster_without_gpus_fails_before_anything_is_written(tmp_path, local_ray, capsys):
    run = tmp_path / "run"
    assert generate(job_file(tmp_path, book(), engine_kwargs={"tensor_parallel_size": 2}), run) == 2
    err = capsys.readouterr().err
    assert "needs 2 GPU(s) for one replica, and the Ray cluster has 0" in err
    assert not run.exists(), "the same command goes on once the cluster has GPUs"


def test_the_recipe_is_a_processor_config_ray_accepts_and_rows_carry_what_vllms_stages_need():
    from ray.llm._internal.batch.stages import ChatTemplateStage, vLLMEngineStage

    from synthloop.config import VLLMTeacherConfig
    from synthloop.runners.ray_vllm import call_rows, prepare_row, processor_config
    from synthloop.teachers.base import Message, TeacherRequest

    cfg = VLLMTeacherConfig(backend="vllm", model="org/m", replicas=4, batch_size=32, accelerator_type="H100",
                            engine_kwargs={"tensor_parallel_size": 2, "max_model_len": 8192})  # fmt: skip
    config = processor_config(cfg)
    assert (config.model_source, config.batch_size, config.accelerator_type) == ("org/m", 32, "H100")
    assert config.engine_kwargs["tensor_parallel_size"] == 2 and config.should_continue_on_error
    assert config.get_concurrency() == {"min_size": 1, "max_size": 4}
    assert cfg.gpus_per_replica == 2

    request = TeacherRequest((Message("system", "be brief"), Message("user", "hi")), response_schema={"type": "object"})
    row = prepare_row(call_rows(["0" * 24], {"0" * 24: request}, 0, {"type": "object"}).to_pylist()[0])
    stages = [ChatTemplateStage(fn_constructor_kwargs={"model": "org/m"}, map_batches_kwargs={}),
              vLLMEngineStage(fn_constructor_kwargs={"model": "org/m", "engine_kwargs": {}, "task_type": "generate",
                                                     "batch_size": 4, "max_concurrent_batches": 1},
                              map_batches_kwargs={})]  # fmt: skip
    for stage in stages:
        assert set(stage.get_required_input_keys()) <= set(row), type(stage).__name__
    assert row["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert json.loads(row["sampling_params"]["structured_outputs"]["json"]) == {"type": "object"}


@pytest.mark.parametrize(
    ("teacher", "says"),
    [
        ({"requests_per_minute": 60}, "requests_per_minute: does not apply to backend vllm"),
        ({"max_retries": 2}, "max_retries: does not apply to backend vllm"),
        ({"concurrency": 64}, "concurrency: does not apply"),
        ({"engine_kwargs": {"tensor_parallel_size": 0}}, "engine_kwargs.tensor_parallel_size"),
        ({"replicas": 0}, "replicas"),
    ],
)
def test_a_bad_vllm_teacher_names_the_key(teacher, says):
    text = recipe_with(teacher={"backend": "vllm", "model": "org/m", **teacher})
    with pytest.raises(RecipeError, match=says):
        parse_recipe(text, "recipe.yaml")


def recipe_with(**keys) -> str:
    return yaml.safe_dump(yaml.safe_load(default_recipe_text()) | keys)


def test_a_judge_cannot_be_vllm_on_ray():
    text = recipe_with(curation={"judge": {"teacher": {"backend": "vllm", "model": "org/m"}}})
    with pytest.raises(RecipeError, match="vllm serve MODEL"):
        parse_recipe(text, "recipe.yaml")
