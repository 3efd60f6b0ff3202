"""Hostile or absurd recipe and job files: each is one line, a non-zero exit, and nothing written
(no run directory), through the real CLI."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from synthloop.cli.main import main
from synthloop.testing import serve_in_thread
from synthloop.testing.simulated_server import SimulatedServer

BOMB = """a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
name: bomb
skills: {addition: {difficulty: 1}}
"""


def tiny(**changes):
    recipe = yaml.safe_load((Path(__file__).parent / "tiny_recipe.yaml").read_text())
    for path, value in changes.items():
        node = recipe
        *parents, last = path.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return yaml.safe_dump(recipe)


CASES = {
    "binary": (os.urandom(2000) + b"\x00\xff", "not UTF-8 text"),
    "nul": (b"name: x\x00\n", "NUL bytes"),
    "alias bomb": (BOMB.encode(), "more than 100000 values"),
    "deep nesting": (("[" * 20000 + "]" * 20000).encode(), "nested too deeply"),
    "long name": (tiny(name="x" * 300).encode(), "name: must be 1 to 100"),
    "escaping name": (tiny(name="../../escaped").encode(), "name: must be 1 to 100"),
    "absolute name": (tiny(name="/tmp/escaped").encode(), "name: must be 1 to 100"),
    "hidden name": (tiny(name=".hidden").encode(), "not starting with '.'"),
    "bool rounds": (tiny(rounds=True).encode(), "rounds"),
    "float rounds": (tiny(rounds=2.5).encode(), "rounds"),
    "string budget": (tiny(generation__budget_per_round="400").encode(), "budget_per_round"),
    "huge budget": (tiny(generation__budget_per_round=10**12).encode(), "budget_per_round"),
    "huge probes": (tiny(evaluation__probes_per_skill=10**9).encode(), "probes_per_skill"),
    "huge golden": (tiny(grounding__golden__size=10**10).encode(), "size"),
    "huge hidden": (tiny(student__architecture__hidden_size=10**6).encode(), "hidden_size"),
    "heads": (tiny(student__architecture__heads=3).encode(), "multiple of heads"),
    "bool temperature": (tiny(generation__temperature=True).encode(), "generation.temperature"),
    "string float": (tiny(grounding__ratio="0.2").encode(), "grounding.ratio"),
    "string bool": (tiny(curation__dedup={"exact": "yes"}).encode(), "curation.dedup.exact"),
    "infinite floor": (tiny(allocation__floor=float("inf")).encode(), "allocation.floor"),
    "huge seed": (tiny(seed=10**30).encode(), "seed"),
    "negative seed": (tiny(seed=-1).encode(), "seed"),
    "odd llama head": (
        tiny(student__architecture={"family": "llama", "hidden_size": 30, "heads": 2}).encode(),
        "must be even",
    ),
    "examples past positions": (
        tiny(student__architecture__max_positions=64, student__train__max_len=256).encode(),
        "max_len 256 is longer than",
    ),
    "answers past positions": (
        tiny(
            student__architecture__max_positions=64, student__train__max_len=64, evaluation__max_new_tokens=64
        ).encode(),
        "max_new_tokens 64 leaves no room",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_recipe_is_one_line_and_writes_nothing(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    content, expected = CASES[case]
    (tmp_path / "recipe.yaml").write_bytes(content)
    for args in (["run", "recipe.yaml", "--dry-run"], ["run", "recipe.yaml"]):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("synthloop: error:") and expected in err and "\n" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"]


def test_an_oversized_recipe_file_is_refused(tmp_path, capsys):
    (tmp_path / "big.yaml").write_text("# " + "x" * (2 << 20))
    assert main(["run", str(tmp_path / "big.yaml"), "--dry-run"]) == 2
    assert "a recipe file is at most" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("step", "expected"),
    [({"name": "../out", "task": "textbook", "inputs": ["a"]}, "name: must be"),
     ({"name": "s", "task": "textbook", "inputs": ["a"], "samples": 10**9}, "samples"),
     ({"name": "s", "task": "textbook", "inputs": ["a"], "samples": True}, "samples"),
     ({"name": "/abs", "task": "textbook", "inputs": ["a"]}, "name: must be"),
     ({"name": "s", "task": "textbook", "inputs": ["a"], "limit": 2.5}, "limit"),
     ({"name": "s", "task": "textbook", "inputs": ["a"], "temperature": True}, "temperature"),
     ({"name": "s", "task": "textbook", "inputs": ["a"], "repair": "no"}, "repair")],
)  # fmt: skip
def test_hostile_job_steps_are_refused(step, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    job = {"name": "job", "teacher": {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"},
           "steps": [step]}  # fmt: skip
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    assert main(["generate", "job.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err
    (tmp_path / "bin.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert main(["generate", "bin.yaml"]) == 2
    assert "not UTF-8 text" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin.yaml", "job.yaml"]


HUGE = {"family": "llama", "hidden_size": 32768, "layers": 256, "heads": 32, "intermediate_size": 131072}


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    from synthloop.testing.tiny_model import build_tiny_chat_model

    return build_tiny_chat_model(tmp_path_factory.mktemp("base") / "model")


def base_folder(tmp_path, tiny_base, keep, config=None):
    """A copy of the tiny base model with only the files in `keep`, and its config.json changed by `config`."""
    folder = tmp_path / "base"
    folder.mkdir()
    for file in tiny_base.iterdir():
        if any(file.name.startswith(prefix) for prefix in keep):
            shutil.copy(file, folder / file.name)
    if config:
        data = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**data, **config}))
    return folder


def refused_before_anything(recipe_text, expected, tmp_path, capsys):
    """`run` refuses with one line; `--dry-run` says a run would stop; nothing is written either way."""
    (tmp_path / "recipe.yaml").write_text(recipe_text)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["run", "recipe.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("synthloop: error:") and expected in err and "\n" not in err, err
    assert main(["run", "recipe.yaml", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert expected in out and "a run here would stop before any call" in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_student_too_big_for_this_machine_is_refused_before_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    refused_before_anything(tiny(student__architecture=HUGE), "GiB to train", tmp_path, capsys)


@pytest.mark.parametrize(
    ("keep", "config", "expected"),
    [
        (["config"], None, "no usable tokenizer"),
        (["config", "tokenizer", "special", "chat"], None, "no weights"),
        (["config", "tokenizer", "special", "chat", "model"], {"num_hidden_layers": 512, "hidden_size": 16384,
                                                             "intermediate_size": 65536}, "GiB to train"),
    ],
)  # fmt: skip
def test_a_base_student_missing_a_part_or_too_big_is_refused_before_anything(
    keep, config, expected, tiny_base, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    folder = base_folder(tmp_path, tiny_base, keep, config)
    refused_before_anything(tiny(student__base=str(folder)), expected, tmp_path, capsys)


def test_an_uncached_hub_student_is_refused_before_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    refused_before_anything(tiny(student__base="no-such-org/no-such-model-xyz"), "download the model", tmp_path, capsys)


def test_a_base_student_in_a_folder_or_the_hub_cache_passes_with_its_true_size(tiny_base, tmp_path):
    """The preflight counts parameters without reading weights; the count is the loaded model's."""
    from synthloop.config import parse_recipe
    from synthloop.training.model import count_parameters, load_model
    from synthloop.training.preflight import check_student

    real = count_parameters(load_model(tiny_base))
    assert check_student(parse_recipe(tiny(student__base=str(tiny_base)), "r")).parameters == real
    # The same model as a Hub id in a Hugging Face cache: the cache's own layout, read by a fresh process.
    snapshot = tmp_path / "hub" / "models--some-org--tiny" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_base, snapshot)
    (tmp_path / "hub" / "models--some-org--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--some-org--tiny" / "refs" / "main").write_text("0" * 40)
    (tmp_path / "recipe.yaml").write_text(tiny(student__base="some-org/tiny"))
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-c", "import sys; from synthloop.cli.main import main; sys.exit(main(sys.argv[1:]))"]
    done = subprocess.run([*command, "run", "recipe.yaml", "--dry-run"], cwd=tmp_path, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert f"student: {real:,} parameters" in done.stdout.decode(), done.stdout.decode()


@pytest.mark.parametrize("command", ["run", "generate"])
@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--run-dir", "afile"], "--run-dir afile is a file"),
        (["--run-dir", "afile/sub"], "afile is a file, not a folder"),
        (["--cache", "adir"], "--cache adir is a folder"),
        (["--cache", "afile/responses.sqlite"], "afile is a file, not a folder"),
        (["--cache", "notes.txt"], "not a response cache"),
        (["--cache", "notes.txt", "--dry-run"], "not a response cache"),
    ],
)
def test_unusable_run_dir_or_cache_paths_are_one_line_and_write_nothing(
    command, flags, expected, tmp_path, monkeypatch, capsys
):
    """Checked before the run folder is made (the cache is opened only after it)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipe.yaml").write_text(tiny())
    (tmp_path / "afile").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("my notes\n")
    (tmp_path / "adir").mkdir()
    server = SimulatedServer(seconds_per_token=0.0)  # a teacher that answers: only the paths are wrong
    with serve_in_thread(server.app()) as url:
        job = {"name": "job", "teacher": {"backend": "openai", "model": "simulated", "base_url": url},
               "steps": [{"name": "s", "task": "textbook", "inputs": ["a"]}]}  # fmt: skip
        (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
        before = {p.name: p.read_bytes() if p.is_file() else None for p in tmp_path.iterdir()}
        assert main([command, "recipe.yaml" if command == "run" else "job.yaml", *flags]) == 2
    assert sum(server.completed.values()) == 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("synthloop: error:") and expected in err and "\n" not in err, err
    assert {p.name: p.read_bytes() if p.is_file() else None for p in tmp_path.iterdir()} == before
    assert list((tmp_path / "adir").iterdir()) == []


def test_a_dry_run_leaves_an_empty_cache_file_as_it_was(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipe.yaml").write_text(tiny())
    (tmp_path / "empty.sqlite").write_bytes(b"")
    assert main(["run", "recipe.yaml", "--dry-run", "--cache", "empty.sqlite"]) == 0
    assert "0 already cached" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.sqlite", "recipe.yaml"]
    assert (tmp_path / "empty.sqlite").read_bytes() == b""


def test_a_key_pasted_as_api_key_env_is_refused_without_repeating_it(tmp_path, monkeypatch, capsys):
    """Left to run, the key would sit in manifest.json and in the 'variable not set' error."""
    monkeypatch.chdir(tmp_path)
    key = "sk-live-0123456789abcdef"
    teacher = {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1", "api_key_env": key}
    (tmp_path / "recipe.yaml").write_text(tiny(teacher=teacher))
    for args in (["run", "recipe.yaml"], ["run", "recipe.yaml", "--dry-run"]):
        assert main(args) == 2
        captured = capsys.readouterr()
        assert "teacher.api_key_env: must be the name of an environment variable" in captured.err
        assert key not in captured.err + captured.out and "\n" not in captured.err.strip()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"]


def test_a_megabyte_model_name_is_refused_in_a_short_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipe.yaml").write_text(tiny(teacher={"model": "m" * 1_000_000}))
    assert main(["run", "recipe.yaml", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "teacher.model: String should have at most 1000 characters" in err and len(err) < 300, err[:300]


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_recipe_or_job_that_is_not_a_regular_file_is_refused_without_reading(kind, tmp_path, monkeypatch, capsys):
    """A fifo nobody writes to would block the read forever."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "recipe.yaml"
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    commands = {
        "recipe": (["run", "recipe.yaml", "--dry-run"], ["curate", "x", "--recipe", "recipe.yaml", "--out", "o"]),
        "job": (["generate", "recipe.yaml"],),
    }
    for what, argvs in commands.items():
        for args in argvs:
            assert main(args) == 2
            err = capsys.readouterr().err.strip()
            assert err.endswith(f"recipe.yaml: not a regular file; a {what} is a YAML text file"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"]


def test_a_job_step_that_could_make_too_many_calls_is_refused_before_any(tmp_path, monkeypatch, capsys):
    """Each bound alone is legal (1,000 samples, any number of input lines, 100 items a call); the product of
    a chain of steps is what a dry run would have to enumerate."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "subjects.txt").write_text("".join(f"subject {i}\n" for i in range(20_000)))
    steps = [{"name": "tree", "task": "topics", "inputs_file": "subjects.txt", "count": 100},
             {"name": "book", "task": "textbook", "from": "tree", "samples": 10}]  # fmt: skip
    job = {"name": "job", "teacher": {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"},
           "steps": steps}  # fmt: skip
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    for args in (["generate", "job.yaml", "--dry-run"], ["generate", "job.yaml"]):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert "step 'book' could make 20,000,000 calls (2,000,000 inputs x 10 each)" in err and "\n" not in err, err
    steps[1]["limit"] = 100_000  # the way out the error names
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    assert main(["generate", "job.yaml", "--dry-run"]) == 0
    assert "step book (textbook): (inputs estimated)" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.yaml", "subjects.txt"]


def test_an_integer_of_thousands_of_digits_is_one_line(tmp_path, capsys):
    (tmp_path / "r.yaml").write_text("name: a\nrounds: " + "9" * 5000 + "\nskills: {addition: {difficulty: 1}}\n")
    assert main(["run", str(tmp_path / "r.yaml"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "a value cannot be read" in err and "\n" not in err
