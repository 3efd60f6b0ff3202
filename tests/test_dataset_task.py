"""`task: dataset`: a user's train and eval files, categories and scorers, and generation aimed at the
student's failures on the train split, run against a scripted teacher behind a real HTTP server."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthloop.cli.main import main
from synthloop.config import RecipeError, parse_recipe
from synthloop.loop import run_loop
from synthloop.skills.export import export_skills
from synthloop.sources.build import build_source
from synthloop.storage.atomic import read_json
from synthloop.storage.input_files import InputFileError
from synthloop.storage.shards import read_records
from synthloop.testing import serve_in_thread
from synthloop.testing.scripted_teacher import ScriptedTeacher

SKILLS = ["addition", "subtraction", "comparison"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def recipe_text(train: str, eval_: str, url: str = "http://127.0.0.1:9/v1", extra: str = "") -> str:
    return f"""
name: ds
rounds: 2
task: {{type: dataset, train: {train}, eval: {eval_}, train_probe_per_category: 16}}
teacher: {{backend: openai, base_url: {url}, model: scripted, max_retries: 0}}
generation: {{budget_per_round: 60, samples: 5, temperature: 0.8, shard_size: 50}}
curation: {{self_consistency: {{min_agreement: 0.8}}}}
grounding: {{ratio: 0.2}}
student:
  architecture: {{family: gpt2, hidden_size: 32, layers: 1, heads: 2, intermediate_size: 64}}
  train: {{steps_per_round: 5, batch_size: 8}}
evaluation: {{max_new_tokens: 16}}
{extra}"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exported")
    export_skills(out, SKILLS, train_per_skill=40, eval_per_skill=10, difficulties=[1], seed=0)
    return out


def source_of(text: str):
    recipe = parse_recipe(text, "r.yaml")
    return build_source(recipe, 0)


def test_export_writes_plain_rows_and_train_shares_no_question_with_eval(exported):
    train = [json.loads(line) for line in (exported / "train.jsonl").read_text().splitlines()]
    evaluation = [json.loads(line) for line in (exported / "eval.jsonl").read_text().splitlines()]
    assert {tuple(sorted(r)) for r in train + evaluation} == {("answer", "category", "question")}
    assert {r["category"] for r in evaluation} == set(SKILLS) and len(evaluation) == 30
    assert not {r["question"] for r in train} & {r["question"] for r in evaluation}


def test_jsonl_parquet_and_save_to_disk_folders_read_alike(exported, tmp_path):
    import datasets

    rows = [json.loads(line) for line in (exported / "train.jsonl").read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train.parquet")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "train_saved"))
    sources = [
        source_of(recipe_text(str(train), str(exported / "eval.jsonl")))
        for train in (exported / "train.jsonl", tmp_path / "train.parquet", tmp_path / "train_saved")
    ]
    assert sources[0].train == sources[1].train == sources[2].train
    assert sources[0].categories() == {name: "" for name in sorted(SKILLS)}


def test_a_dataset_dict_folder_names_its_splits(exported, tmp_path):
    import datasets

    rows = [json.loads(line) for line in (exported / "train.jsonl").read_text().splitlines()]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(InputFileError, match=r"several splits; give the folder of one: .*dd/train"):
        source_of(recipe_text(str(tmp_path / "dd"), str(exported / "eval.jsonl")))


def test_eval_without_category_is_one_category_said_once(exported, tmp_path):
    rows = [json.loads(line) for line in (exported / "eval.jsonl").read_text().splitlines()]
    plain = write_jsonl(tmp_path / "eval.jsonl", [{"question": r["question"], "answer": r["answer"]} for r in rows])
    source = source_of(recipe_text(str(exported / "train.jsonl"), str(plain)))
    assert list(source.categories()) == ["all"] and {i.category for i in source.train} == {"all"}
    assert sum("no 'category' column" in notice for notice in source.notices) == 1


def test_a_category_only_in_eval_gets_exercises_and_is_said(exported, tmp_path):
    train = [json.loads(line) for line in (exported / "train.jsonl").read_text().splitlines()]
    only_two = write_jsonl(tmp_path / "train.jsonl", [r for r in train if r["category"] != "comparison"])
    source = source_of(recipe_text(str(only_two), str(exported / "eval.jsonl")))
    assert any("in eval but not in train: comparison" in notice for notice in source.notices)
    from synthloop.weak_categories import plan_targets

    recipe = parse_recipe(recipe_text(str(only_two), str(exported / "eval.jsonl")), "r.yaml")
    targets = plan_targets(source, {"addition": 5, "comparison": 5, "subtraction": 5}, None, recipe, 0)
    assert targets["comparison"]["mode"] == "exercises" and targets["addition"]["mode"] == "variations"


def test_one_file_is_split_by_seed_per_category(exported):
    text = recipe_text("x", "y").replace(
        "train: x, eval: y", f"path: {exported / 'train.jsonl'}, eval_share: 0.25, split_seed: 3"
    )
    a, b = source_of(text), source_of(text)
    assert [i.id for i in a.eval] == [i.id for i in b.eval]
    assert {i.category for i in a.eval} == set(SKILLS) and len(a.eval) == 30 and len(a.train) == 90
    other = source_of(text.replace("split_seed: 3", "split_seed: 4"))
    assert [i.id for i in other.eval] != [i.id for i in a.eval]


def test_train_rows_that_repeat_an_eval_question_are_dropped(exported, tmp_path):
    evaluation = [json.loads(line) for line in (exported / "eval.jsonl").read_text().splitlines()]
    train = [json.loads(line) for line in (exported / "train.jsonl").read_text().splitlines()]
    reworded = [{**row, "question": row["question"].replace("What is", "what's")} for row in evaluation[4:6]]
    leaky = write_jsonl(tmp_path / "train.jsonl", train + evaluation[:4] + reworded)
    source = source_of(recipe_text(str(leaky), str(exported / "eval.jsonl")))
    assert len(source.train) == len(train)
    assert any("6 train items repeat an eval question (or a light edit" in notice for notice in source.notices)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"answer": "3"}, "line 2: missing or empty 'question'"),
        ({"question": "q?", "answer": ""}, "line 2: missing or empty 'answer'"),
        ({"question": "q?", "answer": "3", "reasoning": 5}, "line 2: 'reasoning' must be text"),
        ({"question": "q?", "answer": "3", "category": "addition", "choices": ["a"]}, "line 2: 'choices' must be"),
        ({"question": "q?", "answer": "3"}, "line 2: no 'category', but the eval data has categories"),
        ({"question": "q?", "answer": "3", "category": "x" * 101}, "line 2: 'category' must be a name"),
        ({"question": "q?", "answer": "3", "category": "a\nround 9: FAKE"}, "line 2: 'category' .* line break"),
        ({"question": "q?", "answer": float("nan"), "category": "addition"}, r"line 2: 'answer' is nan \(a missing"),
        ({"question": "q?", "answer": float("inf"), "category": "addition"}, "line 2: 'answer' is inf"),
        ({"question": "q?", "answer": {"v": 3}, "category": "addition"}, "line 2: 'answer' must be text or a number"),
        ({"question": ["q?"], "answer": "3", "category": "addition"}, "line 2: 'question' must be text, got list"),
    ],
)
def test_a_bad_row_names_its_file_and_line(tmp_path, exported, row, message):
    good = {"question": "What is 1 + 1?", "answer": "2", "category": "addition"}
    bad = write_jsonl(tmp_path / "train.jsonl", [good, row])
    with pytest.raises(InputFileError, match=message):
        source_of(recipe_text(str(bad), str(exported / "eval.jsonl")))


def test_a_missing_value_in_a_parquet_answer_column_names_its_row(tmp_path, exported):
    import pyarrow as pa
    import pyarrow.parquet as pq

    questions, answers = ["What is 1 + 1?", "What is 2 + 2?"], [2.0, float("nan")]
    table = pa.table({"question": questions, "answer": answers, "category": ["addition"] * 2})
    pq.write_table(table, tmp_path / "train.parquet")
    with pytest.raises(InputFileError, match=r"train.parquet row 2: 'answer' is nan"):
        source_of(recipe_text(str(tmp_path / "train.parquet"), str(exported / "eval.jsonl")))


def test_eval_rows_that_repeat_another_are_scored_once(tmp_path, exported):
    evaluation = [json.loads(line) for line in (exported / "eval.jsonl").read_text().splitlines()]
    doubled = write_jsonl(tmp_path / "eval.jsonl", evaluation + evaluation[:5])
    source = source_of(recipe_text(str(exported / "train.jsonl"), str(doubled)))
    assert len(source.eval_items()) == len(evaluation)
    assert "task.eval: 5 rows repeat another row; each is kept once" in source.notices


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("scorer: numerc}", "unknown scorer 'numerc'; did you mean 'numeric'?"),
        ("path: a.jsonl}", "either train and eval, or path"),
    ],
)
def test_task_recipe_errors_name_the_key(exported, change, message):
    text = recipe_text(str(exported / "train.jsonl"), str(exported / "eval.jsonl"))
    text = text.replace("train_probe_per_category: 16}", f"train_probe_per_category: 16, {change}")
    with pytest.raises(RecipeError, match=message):
        parse_recipe(text, "r.yaml")


def test_a_described_category_must_be_in_the_eval_data(exported):
    text = recipe_text(str(exported / "train.jsonl"), str(exported / "eval.jsonl"))
    text = text.replace("train_probe_per_category: 16}", "train_probe_per_category: 16, categories: {nope: {}}}")
    with pytest.raises(RecipeError, match=r"task\.categories: nope not in the eval data"):
        source_of(text)


def test_a_dataset_task_needs_a_verifier_and_a_temperature(exported):
    base = recipe_text(str(exported / "train.jsonl"), str(exported / "eval.jsonl"))
    with pytest.raises(RecipeError, match="something must verify the teacher's"):
        parse_recipe(base.replace("samples: 5", "samples: 1"), "r.yaml")
    with pytest.raises(RecipeError, match="temperature 0 makes every sample"):
        parse_recipe(base.replace("temperature: 0.8", "temperature: 0"), "r.yaml")


@pytest.fixture(scope="module")
def dataset_run(exported, tmp_path_factory):
    teacher = ScriptedTeacher(error_rate=0.2)
    received: list[str] = []
    original = teacher.chat

    async def spy(request):
        received.append(json.dumps((await request.json())["messages"]))
        return await original(request)

    teacher.chat = spy
    root = tmp_path_factory.mktemp("ds") / "run"
    with serve_in_thread(teacher.app()) as url:
        recipe = parse_recipe(
            recipe_text(str(exported / "train.jsonl"), str(exported / "eval.jsonl"), f"{url}/v1"), "r"
        )
        run_loop(recipe, root, log=lambda line: None)
    return root, teacher, received


@pytest.mark.slow
def test_the_loop_closes_on_a_dataset_task(dataset_run, exported):
    root, _, received = dataset_run
    metrics = read_json(root / "metrics.json")
    assert [r["round"] for r in metrics["rounds"]] == [1, 2]
    for entry in metrics["rounds"]:
        assert set(entry["eval"]["per_skill"]) == set(SKILLS)
        assert set(entry["counts"]["kept_per_category"]) == set(SKILLS)
        assert entry["counts"]["kept"] == sum(entry["counts"]["kept_per_category"].values()) > 0
    # The eval split is never shown to the teacher.
    evaluation = [json.loads(line)["question"] for line in (exported / "eval.jsonl").read_text().splitlines()]
    assert not any(json.dumps(q)[1:-1] in prompt for q in evaluation for prompt in received)
    # Round 2's examples are the train items the student got wrong in round 1.
    wrong = {i for ids in read_json(root / "rounds/01/eval.json")["train_probe"]["wrong"].values() for i in ids}
    plan = read_json(root / "rounds/02/plan.json")
    examples = {e for target in plan["targets"].values() for e in target.get("examples", [])}
    assert examples and examples <= wrong
    assert all(t["why"].endswith("answered wrong") for t in plan["targets"].values() if t["mode"] == "variations")


@pytest.mark.slow
def test_every_kept_row_traces_to_its_problem_and_example_and_is_verified(dataset_run, exported):
    root, teacher, _ = dataset_run
    train_ids = {
        item.id for item in source_of(recipe_text(str(exported / "train.jsonl"), str(exported / "eval.jsonl"))).train
    }
    for number in (1, 2):
        problems = {row.id: row for row in read_records(root / f"rounds/0{number}/problems")}
        kept = read_records(root / f"rounds/0{number}/curated")
        for row in kept:
            problem = problems[row.parent_ids[0]]
            assert problem.kind == "problem" and problem.question == row.question
            assert set(problem.parent_ids) <= train_ids
            assert row.reference_answer == row.answer  # the verified majority became its reference
            assert any(v.stage == "self_consistency" and v.keep for v in row.verdicts)
        wrong, checked = teacher.wrong_share(kept)
        assert checked == len(kept) and wrong <= 0.05 * checked
        train = read_records(root / f"rounds/0{number}/train")
        assert {r.source for r in train} == {"synthetic", "human"}


@pytest.mark.slow
def test_a_dataset_run_resumes_without_calling_the_teacher_again(dataset_run, exported, tmp_path):
    root, _, _ = dataset_run
    teacher = ScriptedTeacher()
    with serve_in_thread(teacher.app()) as url:
        recipe = parse_recipe(
            recipe_text(str(exported / "train.jsonl"), str(exported / "eval.jsonl"), f"{url}/v1"), "r"
        )
        lines: list[str] = []
        run_loop(recipe, root, resume=True, log=lines.append)
    assert "round 1: already done, skipped" in lines and "round 2: already done, skipped" in lines
    assert sum(teacher.calls.values()) == 0


def test_cli_bad_task_file_writes_nothing(tmp_path, exported, capsys):
    bad = write_jsonl(tmp_path / "train.jsonl", [{"question": "q"}])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(recipe_text(str(bad), str(exported / "eval.jsonl")))
    assert main(["run", str(recipe), "--run-dir", str(tmp_path / "run")]) == 2
    assert "train.jsonl line 1: missing or empty 'answer'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_real_tiny_model_as_teacher_is_rejected_with_a_clear_report(exported, tmp_path):
    """A real model behind `transformers serve` that writes garbage: nothing it writes reaches training,
    and the run stops before training with one line saying why."""
    from synthloop.storage.rundir import EmptyOutputError
    from synthloop.testing import transformers_serve
    from synthloop.testing.tiny_model import build_tiny_chat_model

    model = build_tiny_chat_model(tmp_path / "model")
    with transformers_serve(str(model)) as base:
        text = recipe_text(str(exported / "train.jsonl"), str(exported / "eval.jsonl"), f"{base}/v1")
        text = text.replace("model: scripted", f"model: {model}").replace(
            "budget_per_round: 60, samples: 5", "budget_per_round: 6, samples: 3, max_tokens: 24"
        )
        recipe = parse_recipe(text, "r")
        with pytest.raises(EmptyOutputError) as stopped:
            run_loop(recipe, tmp_path / "run", log=lambda line: None)
    message = str(stopped.value)
    assert message.startswith("round 1: curation kept 0 of") and "fix the cause and rerun with --resume" in message
    assert "usable problems of 6 asked" in message
    assert not (tmp_path / "run" / "rounds" / "01" / "train").exists()


SCORER_ROWS = {  # per scorer: rows it can use, and a right reply to each
    "exact": [({"question": "Capital of France?", "answer": "Paris"}, "The answer is paris.")],
    "numeric": [({"question": "Half of 3?", "answer": "1.5"}, "#### 3/2")],
    "math": [({"question": "Expand (x+1)^2.", "answer": "x^2+2x+1"}, "\\boxed{(x+1)^2}")],
    "choice": [({"question": "Capital of Italy?", "answer": "C", "choices": ["Paris", "Lyon", "Rome"]}, "Rome")],
    "regex": [({"question": "A date?", "answer": "\\d{4}-\\d{2}-\\d{2}"}, "Answer: 2024-01-31")],
    "code": [
        (
            {"question": "Write add.", "answer": "-", "tests": "assert add(2, 3) == 5"},
            "def add(a, b):\n    return a + b",
        )
    ],
}


@pytest.mark.parametrize("name", sorted(SCORER_ROWS))
def test_each_scorer_builds_for_a_task_and_scores_its_rows(tmp_path, name):
    """(The judge scorer, which needs a model, is built the same way in tests/test_scorer_judge.py.)"""
    if name == "code":
        from synthloop.curation.sandbox import probe_isolation

        if probe_isolation()["bwrap"] is not None:
            pytest.skip(f"bubblewrap does not work here ({probe_isolation()['bwrap']}): apt-get install bubblewrap")
    rows = [{**row, "category": f"c{i}"} for i, (row, _) in enumerate(SCORER_ROWS[name] * 2)]
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    text = recipe_text(str(path), str(path)).replace("train_probe_per_category: 16}", f"scorer: {name}}}")
    text = text.replace(f"train: {path}, eval: {path}", f"path: {path}, eval_share: 0.5")
    source = source_of(text)
    assert {scorer.name for scorer in source.scorers.values()} == {name}
    replies = dict((row["question"], reply) for row, reply in SCORER_ROWS[name])
    items = source.eval_items()
    assert [s.value for s in source.score([replies[i.question] for i in items], items)] == [1.0] * len(items)
    assert [s.value for s in source.score(["I am not sure."] * len(items), items)] == [0.0] * len(items)


def test_a_category_has_its_own_scorer(exported):
    text = recipe_text(str(exported / "train.jsonl"), str(exported / "eval.jsonl")).replace(
        "train_probe_per_category: 16}", "categories: {addition: {scorer: {name: numeric, tolerance: 0.5}}}}"
    )
    source = source_of(text)
    assert source.scorers["addition"].name == "numeric" and source.scorers["addition"].tolerance == 0.5
    assert source.scorers["subtraction"].name == "exact"


def test_a_reference_the_scorer_cannot_use_stops_the_run_before_anything_is_written(exported, tmp_path):
    text = recipe_text(str(exported / "train.jsonl"), str(exported / "eval.jsonl"))
    text = text.replace("train_probe_per_category: 16}", "train_probe_per_category: 16, scorer: choice}")
    with pytest.raises(InputFileError, match=r"eval item .*: the choice scorer needs 'choices'"):
        run_loop(parse_recipe(text, "r.yaml"), tmp_path / "run", log=lambda line: None)
    assert not (tmp_path / "run").exists()


def test_exact_scorer_compares_numbers_by_value_and_text_without_case():
    from synthloop.config import ScorerConfig
    from synthloop.scoring.item import TaskItem
    from synthloop.scoring.scorers import make_scorer

    scorer = make_scorer(ScorerConfig(name="exact"))
    items = [TaskItem("a", "q", "0.5", "c"), TaskItem("b", "q", "Paris", "c"), TaskItem("c", "q", "12", "c")]
    right = scorer.score(["#### 1/2", "The answer is paris.", "#### 12"], items)
    wrong = scorer.score(["#### 0.6", "#### Lyon", "no answer here"], items)
    assert [s.value for s in right] == [1.0, 1.0, 1.0] and [s.value for s in wrong] == [0.0, 0.0, 0.0]
    assert wrong[2].extracted is None and wrong[2].detail == "no final answer stated"
