"""The judge scorer against a real OpenAI-compatible server on loopback, whose judge reads the reference
and the student's answer from the prompt it is sent: every grade can be checked exactly."""

import pytest

from synthloop.config import ScorerConfig, parse_recipe
from synthloop.scoring.context import ScoringContext
from synthloop.scoring.item import ScoringFailed, TaskItem, refuse_unscored
from synthloop.scoring.scorers import make_scorer
from synthloop.sources.build import build_source
from synthloop.storage.response_cache import ResponseCache
from synthloop.teachers.base import TeacherUnavailable
from synthloop.teachers.engine import BudgetExhausted
from synthloop.testing import free_port, serve_in_thread
from synthloop.testing.judges import grading_judge
from synthloop.testing.simulated_server import SimulatedServer

ITEMS = [TaskItem(f"i{n}", f"What is {n} + {n}?", str(2 * n), "sums") for n in range(6)]
RIGHT = ["Doubling 0 gives 0.\n#### 0", "The answer is 2.", "**4**", "\\boxed{6}", "8", "Answer: 10"]
WRONG = ["#### 1", "The answer is 3.", "", "either 6 or 7", "I have no idea", "#### 11"]


@pytest.fixture
def judge():
    servers = []

    def start(tmp_path=None, **behaviour):
        server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0, responder=grading_judge(**behaviour))
        context = serve_in_thread(server.app())
        url = context.__enter__()
        servers.append(context)
        config = ScorerConfig.model_validate(
            {"name": "judge", "judge": {"teacher": {"backend": "openai", "base_url": f"{url}/v1",
                                                    "model": "simulated", "max_retries": 0}}}
        )  # fmt: skip
        cache = ResponseCache(tmp_path / "responses.sqlite") if tmp_path else None
        return server, make_scorer(config, ScoringContext(cache=cache, run_id="run")), config

    yield start
    for context in servers:
        context.__exit__(None, None, None)


def test_the_judge_grades_against_the_reference(judge):
    server, scorer, _ = judge()
    right, wrong = scorer.score(RIGHT, ITEMS), scorer.score(WRONG, ITEMS)
    assert [s.value for s in right] == [1.0] * 6, right
    assert [s.value for s in wrong] == [0.0] * 6, wrong
    assert right[0].extracted == "0" and "matches the reference" in right[0].detail
    assert "judge score 2" in wrong[0].detail
    assert wrong[2].detail == "an empty answer"  # not sent
    assert sum(server.completed.values()) == 11


def test_the_judge_sees_the_question_the_reference_and_the_whole_reply():
    from synthloop.scoring.judge import grading_request

    request = grading_request("be fair", ITEMS[3], "Three and three.\n#### 6", 64)
    system, user = (m.content for m in request.messages)
    assert "be fair" in system and "hedges between several answers" in system
    assert user == "Question:\nWhat is 3 + 3?\n\nReference answer:\n6\n\nStudent's answer:\nThree and three.\n#### 6"


def test_an_unusable_reply_is_unscored_after_one_repair_and_too_many_stop_scoring(judge):
    server, scorer, _ = judge(prose="always")
    scores = scorer.score(RIGHT[:2], ITEMS[:2])
    assert all(s.unscored and s.value == 0.0 and "I would give it 9" in s.detail for s in scores)
    assert sum(server.completed.values()) == 4, "one call and one repair each"
    with pytest.raises(ScoringFailed, match=r"could not grade 2 of 2 answers \(judge reply unusable"):
        refuse_unscored(scores)


def test_a_reply_repaired_to_json_counts(judge):
    _, scorer, _ = judge(prose="first")
    assert [s.value for s in scorer.score(RIGHT[:2] + WRONG[:1], ITEMS[:3])] == [1.0, 1.0, 0.0]


def test_a_judge_that_fails_stops_scoring_instead_of_scoring_zero(judge):
    _, scorer, _ = judge(fail=1.0)
    with pytest.raises(ScoringFailed, match=r"could not grade 3 of 3 answers \(judge call failed"):
        refuse_unscored(scorer.score(RIGHT[:3], ITEMS[:3]))


def test_a_few_failed_judge_calls_score_zero_marked_unscored(judge):
    items = [TaskItem(f"i{n}", f"What is {n} + {n}?", str(2 * n), "sums") for n in range(60)]
    _, scorer, _ = judge(fail=0.08)
    scores = scorer.score([f"#### {2 * n}" for n in range(60)], items)
    failed = [s for s in scores if s.detail.startswith("judge call failed")]
    assert 0 < len(failed) <= 6 and all(s.unscored and s.value == 0.0 for s in failed)
    assert all(s.value == 1.0 and not s.unscored for s in scores if s not in failed)
    assert refuse_unscored(scores) == scores  # under a tenth: scored, counted, not stopped


def test_a_budget_cap_on_the_judge_stops_scoring_instead_of_scoring_zero(tmp_path):
    server = SimulatedServer(max_concurrent=0, seconds_per_token=0.0, responder=grading_judge())
    with serve_in_thread(server.app()) as url:
        teacher = {"backend": "openai", "base_url": f"{url}/v1", "model": "simulated", "max_total_tokens": 1}
        config = ScorerConfig.model_validate({"name": "judge", "judge": {"teacher": teacher}})
        scorer = make_scorer(config, ScoringContext(cache=ResponseCache(tmp_path / "c.sqlite"), run_id="r"))
        with pytest.raises(BudgetExhausted, match=r"task\.scorer\.judge\.teacher"):
            scorer.score(RIGHT, ITEMS)


def test_judge_calls_are_cached_in_the_runs_cache(judge, tmp_path):
    server, scorer, _ = judge(tmp_path)
    first = scorer.score(RIGHT, ITEMS)
    calls = sum(server.completed.values())
    assert scorer.score(RIGHT, ITEMS) == first and sum(server.completed.values()) == calls


def test_the_cache_attached_later_is_used(judge, tmp_path):
    """The loop builds the source (and the judge) before the run directory exists, then attaches the cache."""
    server, scorer, _ = judge()
    scorer.context.attach(ResponseCache(tmp_path / "late.sqlite"), "run")
    scorer.score(RIGHT[:2], ITEMS[:2])
    calls = sum(server.completed.values())
    scorer.score(RIGHT[:2], ITEMS[:2])
    assert sum(server.completed.values()) == calls == 2


def test_an_unreachable_judge_fails_when_built_naming_its_key():
    config = ScorerConfig.model_validate(
        {"name": "judge", "judge": {"teacher": {"backend": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1",
                                                "model": "m", "max_retries": 0}}}
    )  # fmt: skip
    with pytest.raises(TeacherUnavailable, match=r"task\.scorer\.judge\.teacher"):
        make_scorer(config, ScoringContext())
    make_scorer(config, ScoringContext(check=False))  # a dry run builds it without a call


def test_a_dataset_task_with_a_judge_scorer_builds_one_judge_for_its_categories(judge, tmp_path):
    _, _, config = judge()
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(f'{{"question": "q{n}?", "answer": "{n}", "category": "c{n % 2}"}}\n' for n in range(8)))
    url = config.judge.teacher.base_url
    recipe = parse_recipe(
        f"""name: j
task:
  type: dataset
  path: {rows}
  scorer: {{name: judge, judge: {{teacher: {{backend: openai, base_url: {url}, model: simulated}}}}}}
teacher: {{backend: openai, base_url: {url}, model: simulated}}
generation: {{samples: 4, temperature: 0.8}}
curation: {{self_consistency: {{min_agreement: 0.5}}}}
""",
        "r.yaml",
    )
    context = ScoringContext()
    source = build_source(recipe, 0, context)
    assert {s.name for s in source.scorers.values()} == {"judge"} and len(context.judges) == 1
    items = source.eval_items()
    assert [s.value for s in source.score([f"#### {i.answer}" for i in items], items)] == [1.0] * len(items)
