"""Human review: the decision log, its fold, the queue and audit slice, the agreement figures, and the
decisions reaching the next round's training mix."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from synthloop.records import Record, Verdict
from synthloop.review.agreement import (
    RowFacts,
    confusion_figures,
    kept_error_estimate,
    krippendorff_alpha,
)
from synthloop.review.apply import apply_human
from synthloop.review.decisions import DecisionLog, ReviewError, human_verdicts, new_decision
from synthloop.review.queue import Thresholds, disagreement, draw_audit_slice, review_order

TINY = Path(__file__).parent / "tiny_recipe.yaml"


def test_decisions_are_appended_fsynced_and_read_back(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path)
    first = new_decision(1, "r1", "ann", "accept")
    second = new_decision(1, "r1", "bob", "reject", "wrong_answer")
    log.append(first)
    log.append(second)
    assert [d.id for d in log.read()] == [first.id, second.id]
    assert log.path == tmp_path / "review" / "decisions.jsonl"
    assert log.path.read_text().count("\n") == 2


def test_a_torn_last_line_is_dropped_and_the_next_append_repairs_it(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path)
    log.append(new_decision(1, "r1", "ann", "accept"))
    with log.path.open("ab") as f:
        f.write(b'{"round": 1, "row_id": "r2", "revi')  # a kill -9 mid-write: never acknowledged
    assert len(log.read()) == 1
    log.append(new_decision(1, "r3", "ann", "accept"))
    assert [d.row_id for d in log.read()] == ["r1", "r3"]
    assert all(json.loads(line) for line in log.path.read_text().splitlines())


def test_a_damaged_line_in_the_middle_fails_closed_naming_file_and_line(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path)
    log.append(new_decision(1, "r1", "ann", "accept"))
    with log.path.open("a") as f:
        f.write('{"round": "one"}\n')
    log.append(new_decision(1, "r2", "ann", "accept"))
    with pytest.raises(ReviewError, match=r"decisions.jsonl:2: damaged decision"):
        log.read()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1, "r", "", "accept"), "reviewer: give a name"),
        ((1, "r", "ann", "maybe"), "action: 'maybe' is not one of"),
        ((1, "r", "ann", "reject"), "reason: a rejection needs a reason"),
        ((1, "r", "ann", "accept", None, {"answer": "  "}), "edit.answer: the answer cannot be empty"),
        ((1, "r", "ann", "accept", None, {"question": "x"}), "'question' cannot be edited"),
        ((1, "r", "ann", "reject", "bad", {"answer": "1"}), "only an accepted row can be edited"),
        ((1, "r", "ann", "undo"), "an undo names the decision"),
    ],
)
def test_bad_decisions_are_refused_naming_the_field(args: tuple, message: str) -> None:
    with pytest.raises(ReviewError, match=message):
        new_decision(*args)


def test_undo_takes_back_only_ones_own_latest_and_restores_the_one_before() -> None:
    accept = new_decision(1, "r1", "ann", "accept")
    reject = new_decision(1, "r1", "ann", "reject", "wrong_answer")
    assert human_verdicts([accept, reject])["r1"].keep is False
    undo = new_decision(1, "r1", "ann", "undo", undoes=reject.id)
    assert human_verdicts([accept, reject, undo])["r1"].keep is True
    not_hers = new_decision(1, "r1", "bob", "undo", undoes=accept.id)
    assert human_verdicts([accept, not_hers])["r1"].keep is True
    undo_all = new_decision(1, "r1", "ann", "undo", undoes=accept.id)
    assert "r1" not in human_verdicts([accept, reject, undo, undo_all])


def test_two_reviewers_who_disagree_are_both_kept_and_the_row_fails_closed() -> None:
    ann = new_decision(1, "r1", "ann", "accept")
    bob = new_decision(1, "r1", "bob", "reject", "wrong_reasoning")
    verdict = human_verdicts([ann, bob])["r1"]
    assert verdict.keep is False and verdict.conflict and verdict.reviewers == ["ann", "bob"]
    assert "reviewers disagree" in verdict.detail()


def row(
    question: str, answer: str | None = "4", verdicts: list[Verdict] | None = None, skill: str = "addition"
) -> Record:
    record = Record("solution", skill, question, "synthetic", 1, answer=answer, reasoning="2+2", reference_answer="4")
    record.verdicts = verdicts or [Verdict("verify", True)]
    return record


def test_a_human_verdict_overrides_the_stages_and_an_edit_keeps_its_original() -> None:
    rejected = row("q1", verdicts=[Verdict("verify", False, "wrong_answer")])
    kept = row("q2")
    edited = row("q3")
    decisions = [
        new_decision(1, rejected.id, "ann", "accept"),
        new_decision(1, kept.id, "ann", "reject", "unclear_question"),
        new_decision(1, edited.id, "ann", "accept", edit={"answer": "5", "reasoning": "2+3"}),
    ]
    out = apply_human([rejected, kept, edited], human_verdicts(decisions))
    assert rejected.kept and rejected.reject_reason is None
    assert not kept.kept and kept.reject_reason == "unclear_question"
    original, new = out[2], out[3]
    assert original.id == edited.id and not original.kept and original.reject_reason == "replaced_by_edit"
    assert new.kept and new.answer == "5" and new.reasoning == "2+3" and new.source == "human"
    assert new.parent_ids == [original.id] and new.id != original.id
    assert "original answer: 4" in (new.human_verdict.detail or "")
    assert [v.stage for v in new.verdicts] == ["verify", "human"]
    decisions = [new_decision(1, row("q4").id, "a", "accept", edit={"answer": "9"})]
    synthetic = apply_human([row("q4")], human_verdicts(decisions), "synthetic")
    assert synthetic[1].source == "synthetic"


def test_accepting_a_row_without_an_answer_does_not_train_on_it() -> None:
    failed = row("q", answer=None, verdicts=[Verdict("generate", False, "teacher_error")])
    apply_human([failed], human_verdicts([new_decision(1, failed.id, "ann", "accept")]))
    assert not failed.kept and failed.reject_reason == "no_answer"


def test_disagreements_come_first_by_how_pressing() -> None:
    t = Thresholds(judge=7.0)
    conflict = [Verdict("verify", True), Verdict("judge", False, "low_judge_score", 3.0)]
    near = [Verdict("verify", True), Verdict("judge", True, None, 7.0)]
    narrow = [Verdict("self_consistency", True, None, 0.5)]
    plain = [Verdict("verify", True), Verdict("judge", True, None, 10.0)]
    scores = {name: disagreement(v, t) for name, v in [("conflict", conflict), ("near", near), ("narrow", narrow)]}
    assert disagreement(plain, t) is None
    assert "judge rejected it" in scores["conflict"][1] and "near the threshold" in scores["near"][1]
    assert scores["conflict"][0] > scores["narrow"][0] > scores["near"][0]
    order = review_order([(s[0], name) for name, s in scores.items()], ["a1", "a2", "near"])
    assert order == ["conflict", "a1", "narrow", "a2", "near"]


def test_the_audit_slice_is_stratified_by_kept_and_skill_in_proportion() -> None:
    population = {f"k{i}": (True, "addition" if i < 300 else "logic") for i in range(400)}
    population |= {f"r{i}": (False, "addition") for i in range(20)}
    drawn = draw_audit_slice(1, population, 60, seed=3)
    assert len(drawn.rows) == 60 and len(set(drawn.rows)) == 60
    assert drawn.strata["kept/addition"] == {"population": 300, "sampled": 30}
    assert drawn.strata["kept/logic"] == {"population": 100, "sampled": 10}
    assert drawn.strata["rejected/addition"] == {"population": 20, "sampled": 20}  # short side: all of it
    assert drawn.weight(next(r for r in drawn.rows if r.startswith("r"))) == 1.0
    assert drawn.rows == draw_audit_slice(1, population, 60, seed=3).rows  # seeded


def test_kappa_and_alpha_match_worked_examples() -> None:
    from collections import Counter

    # Cohen's kappa: 20 both reject, 5 stage only, 10 human only, 15 both keep -> po .7, pe .5, kappa .4
    figures = confusion_figures(Counter({"reject/reject": 20, "reject/keep": 5, "keep/reject": 10, "keep/keep": 15}))
    assert figures["kappa"] == pytest.approx(0.4)
    assert figures["precision"] == pytest.approx(0.8) and figures["recall"] == pytest.approx(20 / 30)
    # Krippendorff's nominal alpha, checked by hand: 4 units, 2 coders, one disagreement.
    units = [["a", "a"], ["b", "b"], ["a", "b"], ["a", "a"]]
    # o_aa = 4, o_bb = 2, o_ab = o_ba = 1; n_a = 5, n_b = 3, n = 8; alpha = 1 - 7 * 2 / (2 * 5 * 3) = 8/15
    assert krippendorff_alpha(units) == pytest.approx(8 / 15)
    assert krippendorff_alpha([["a", "a"], ["a", "a"]]) is None  # no variation: undefined
    assert krippendorff_alpha([["a", "b"], ["b", "a"]]) == pytest.approx(-0.5)


def test_the_kept_error_interval_covers_the_truth_in_most_seeded_trials() -> None:
    rng = random.Random(0)
    facts, truth = {}, {}
    for i in range(2000):
        wrong = rng.random() < 0.12
        score = 4.0 + 5.0 * rng.random() if wrong else 7.0 + 3.0 * rng.random()  # a judge that half-knows
        facts[f"k{i}"] = RowFacts(True, "s", [Verdict("judge", True, None, round(score))])
        truth[f"k{i}"] = wrong
    true_rate = sum(truth.values()) / len(truth)
    covered = 0
    for seed in range(100):
        drawn = draw_audit_slice(1, {k: (True, "s") for k in facts}, 80, seed)
        humans = human_verdicts(
            [
                new_decision(1, k, "oracle", "reject", "wrong") if truth[k] else new_decision(1, k, "oracle", "accept")
                for k in drawn.rows
            ]
        )
        estimate = kept_error_estimate(facts, drawn, humans)
        covered += estimate["low"] <= true_rate <= estimate["high"]
    assert covered >= 90


def test_too_few_audited_rows_give_no_estimate_rather_than_a_guess() -> None:
    facts = {"a": RowFacts(True, "s", [])}
    drawn = draw_audit_slice(1, {"a": (True, "s")}, 1, 0)
    assert kept_error_estimate(facts, drawn, {})["error_rate"] is None


# --- the server, over real HTTP ----------------------------------------------------------------------


class Client:
    def __init__(self, url: str, token: str):
        self.url, self.token = url.rstrip("/"), token

    def call(self, path: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"X-Review-Token": self.token if token is None else token, "Content-Type": "application/json"}
        request = urllib.request.Request(self.url + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())


def start(run: Path, **kwargs: object) -> Client:
    from synthloop.review.server import serve

    urls: list[str] = []
    kwargs = {"port": 0, "reviewer": "ann", "token": "t0k", "ready": urls.append, **kwargs}
    threading.Thread(target=serve, args=(run, 1), kwargs=kwargs, daemon=True).start()
    deadline = time.time() + 30
    while not urls and time.time() < deadline:
        time.sleep(0.05)
    return Client(urls[0].split("?")[0], "t0k")


def test_the_api_needs_the_token_and_refuses_bad_decisions_losing_nothing(one_round_copy: Path) -> None:
    run = one_round_copy
    client = start(run)
    assert client.call("/api/state", token="wrong")[0] == 401
    status, state = client.call("/api/state")
    assert status == 200 and state["rows"] == 361 and len(state["queue"]) == 100  # 400 made, 39 exact duplicates
    first = state["queue"][0]["id"]
    assert client.call(
        "/api/decide", {"row_id": first, "reviewer": "ann", "action": "accept", "edit": {"answer": ""}}
    ) == (
        400,
        {"error": "edit.answer: the answer cannot be empty; reject the row instead (key r)"},
    )
    assert client.call("/api/decide", {"row_id": "nope", "reviewer": "ann", "action": "accept"})[0] == 400
    ok = client.call("/api/decide", {"row_ids": [first, "nope"], "reviewer": "ann", "action": "accept"})
    assert ok[0] == 400  # a bulk action is all or nothing
    assert DecisionLog(run).read() == []
    status, made = client.call("/api/decide", {"row_id": first, "reviewer": "ann", "action": "reject", "reason": "x"})
    assert status == 200 and DecisionLog(run).read()[0].id == made["decisions"][0]["id"]
    assert client.call("/api/undo", {"reviewer": "bob", "decision_id": made["decisions"][0]["id"]})[0] == 400
    assert client.call("/api/undo", {"reviewer": "ann", "decision_id": made["decisions"][0]["id"]})[0] == 200
    assert human_verdicts(DecisionLog(run).read()) == {}


def test_two_reviewers_on_the_same_row_at_once_are_both_kept(one_round_copy: Path) -> None:
    run = one_round_copy
    first, second = start(run), start(run)  # two servers on one run, as two reviewers might
    row_id = first.call("/api/state")[1]["queue"][0]["id"]
    barrier = threading.Barrier(2)

    def decide(client: Client, who: str, action: str) -> None:
        barrier.wait()
        body = {"row_id": row_id, "reviewer": who, "action": action}
        client.call("/api/decide", body | ({"reason": "wrong_answer"} if action == "reject" else {}))

    threads = [threading.Thread(target=decide, args=a) for a in ((first, "ann", "accept"), (second, "bob", "reject"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shown = first.call(f"/api/row/{row_id}")[1]["decisions"]
    assert sorted(d["reviewer"] for d in shown) == ["ann", "bob"]
    figures = first.call("/api/figures")[1]
    assert figures["reviewers"]["rows_disagreed"] == 1


def test_a_port_in_use_and_a_run_without_rounds_are_one_line(one_round: Path, tmp_path: Path) -> None:
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    env = {**os.environ}
    busy = subprocess.run(
        [sys.executable, "-m", "synthloop.cli.main", "review", str(one_round), "--port", str(port)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    taken.close()
    assert busy.returncode == 2 and f"port {port} on 127.0.0.1 is in use" in busy.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.json").write_text(json.dumps({"recipe": {}, "rounds": {}}))
    none = subprocess.run(
        [sys.executable, "-m", "synthloop.cli.main", "review", str(empty)], capture_output=True, text=True, timeout=60
    )
    assert none.returncode == 2 and "has no round with finished curation yet" in none.stderr
    assert none.stderr.count("\n") == 1


def test_decisions_change_the_next_rounds_mix_and_not_the_finished_one(reviewed: dict) -> None:
    from synthloop.storage.shards import read_marker, read_records

    run = reviewed["run"]
    train_before = read_records(run / "rounds" / "01" / "train")
    dropped, rescued, edited = reviewed["dropped"], reviewed["rescued"], reviewed["edited"]
    cmd = [sys.executable, "-m", "synthloop.cli.main", "run", str(TINY), "--run-dir", str(run), "--resume"]
    done = subprocess.run([*cmd, "--rounds", "2"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "round 1: already done, skipped" in done.stdout  # decisions made after it do not redo it
    assert [r.id for r in read_records(run / "rounds" / "01" / "train")] == [r.id for r in train_before]
    train = read_records(run / "rounds" / "02" / "train")
    ids = {r.id for r in train}
    assert dropped.id not in ids  # the tiny recipe accumulates: round 1's rows train again, minus the rejected
    assert rescued.id in ids  # a row the verifier rejected, accepted by a human
    assert edited.id not in ids
    human = [r for r in train if r.source == "human"]
    assert [r.answer for r in human] == ["edited 42"] and human[0].parent_ids == [edited.id]
    assert human[0].human_verdict is not None and rescued.id in {r.id for r in train if r.human_verdict}
    marker = read_marker(run / "rounds" / "02" / "train")
    assert marker["review_decisions"] == 3 and marker["human_edited"] == 1
    again = subprocess.run([*cmd, "--rounds", "2"], capture_output=True, text=True, timeout=600)
    assert "round 2: already done, skipped" in again.stdout  # the digests agree: nothing redone


# --- what an outside tester found, kept fixed --------------------------------------------------------


def test_a_torn_tail_of_any_length_is_cut_and_the_next_line_is_whole(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path)
    log.append(new_decision(1, "r1", "ann", "accept"))
    with log.path.open("ab") as f:
        f.write(b'{"round": 1, "reason": "' + b"x" * (3 << 20))  # 3 MiB, no newline: a crash mid-write
    log.append(new_decision(1, "r2", "ann", "accept"))
    assert [d.row_id for d in log.read()] == ["r1", "r2"]


def test_a_whole_last_line_without_its_newline_is_kept(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path)
    log.append(new_decision(1, "r1", "ann", "accept"))
    log.append(new_decision(1, "r2", "ann", "accept"))
    log.path.write_bytes(log.path.read_bytes().rstrip(b"\n"))  # an editor dropped the final newline
    assert [d.row_id for d in log.read()] == ["r1", "r2"]
    log.append(new_decision(1, "r3", "ann", "accept"))
    assert [d.row_id for d in log.read()] == ["r1", "r2", "r3"]


@pytest.mark.parametrize(
    "line",
    [
        '{"action": "undo", "undoes": ["x"], "round": 1, "row_id": "r", "reviewer": "a", "id": "i", "time": "t"}',
        '{"action": "accept", "round": true, "row_id": "r", "reviewer": "a", "id": "i", "time": "t"}',
        '{"action": "reject", "reason": 5, "round": 1, "row_id": "r", "reviewer": "a", "id": "i", "time": "t"}',
        '{"action": "accept", "edit": {"answer": " "}, "round": 1, "row_id": "r", "reviewer": "a", "id": "i", '
        '"time": "t"}',
        '{"action": "accept", "round": 1, "row_id": "r", "reviewer": "a\\ud800", "id": "i", "time": "t"}',
        "[" * 200_000,
        '{"batch": []}',
    ],
)
def test_every_kind_of_damaged_line_is_one_error_naming_the_line(tmp_path: Path, line: str) -> None:
    log = DecisionLog(tmp_path)
    log.append(new_decision(1, "r1", "ann", "accept"))
    with log.path.open("a") as f:
        f.write(line + "\n")
    with pytest.raises(ReviewError, match=r"decisions.jsonl:2: damaged decision"):
        log.read()


def test_a_bulk_decision_is_one_line(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path)
    log.append([new_decision(1, f"r{i}", "ann", "reject", "wrong_answer") for i in range(500)])
    assert log.path.read_bytes().count(b"\n") == 1 and len(log.read()) == 500


def test_weights_follow_the_rows_decided_in_each_stratum() -> None:
    from synthloop.review.agreement import stage_agreement
    from synthloop.review.queue import AuditSlice

    # kept: 900 rows, 10 sampled and decided, 1 of them wrong; rejected: 100 rows, 10 sampled, 2 decided, 1 wrong
    kept = [f"k{i}" for i in range(10)]
    rejected = [f"r{i}" for i in range(10)]
    audit = AuditSlice(1, kept + rejected, {"kept/s": {"population": 900, "sampled": 10},
                                            "rejected/s": {"population": 100, "sampled": 10}},
                       {**{k: "kept/s" for k in kept}, **{r: "rejected/s" for r in rejected}})  # fmt: skip
    facts = {k: RowFacts(True, "s", [Verdict("verify", True)]) for k in kept}
    facts |= {r: RowFacts(False, "s", [Verdict("verify", False, "wrong_answer")]) for r in rejected}
    decisions = [
        new_decision(1, k, "h", "reject", "x") if k == "k0" else new_decision(1, k, "h", "accept") for k in kept
    ]
    decisions += [new_decision(1, "r0", "h", "reject", "x"), new_decision(1, "r1", "h", "accept")]
    figures = stage_agreement(facts, audit, human_verdicts(decisions))["verify"]
    # stage rejects & human rejects: 50; human rejects overall: 90 (kept) + 50 (rejected) = 140
    assert figures["recall"] == pytest.approx(50 / 140)
    assert sum(figures["weighted"].values()) == pytest.approx(1000)


def test_an_edit_counts_as_a_correction_in_the_figures() -> None:
    facts = {f"k{i}": RowFacts(True, "s", [Verdict("verify", True)]) for i in range(4)}
    drawn = draw_audit_slice(1, {k: (True, "s") for k in facts}, 4, 0)
    decisions = [new_decision(1, "k0", "h", "accept", edit={"answer": "5"})]
    decisions += [new_decision(1, k, "h", "accept") for k in ("k1", "k2", "k3")]
    assert kept_error_estimate(facts, drawn, human_verdicts(decisions))["human_only"]["error_rate"] == 0.25


def test_duplicates_are_one_row_to_decide_and_one_row_to_train(one_round_copy: Path) -> None:
    from synthloop.reports.dataset import exported_rows
    from synthloop.review.rounds import ReviewRound
    from synthloop.storage.shards import read_records

    run = one_round_copy
    rdir = run / "rounds" / "01"
    curated, rejected = read_records(rdir / "curated"), read_records(rdir / "rejected")
    ids = [r.id for r in curated + rejected]
    twice = next(i for i in ids if ids.count(i) > 1 and i not in {r.id for r in curated})
    review = ReviewRound(run, 1)
    assert len(review) == len(set(ids)) and review.duplicates == len(ids) - len(set(ids))
    assert sum(f.kept for f in review.facts.values()) == len(curated)
    DecisionLog(run).append(new_decision(1, twice, "ann", "accept"))
    assert [r.id for r in exported_rows(run, [1], "golden")].count(twice) == 1


def test_the_server_refuses_a_damaged_log_before_and_after_it_starts(one_round_copy: Path) -> None:
    run = one_round_copy
    log = DecisionLog(run)
    log.append(new_decision(1, "r", "ann", "accept"))
    with log.path.open("a") as f:
        f.write("garbage\n")
    started = subprocess.run(
        [sys.executable, "-m", "synthloop.cli.main", "review", str(run), "--port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert started.returncode == 2 and "decisions.jsonl:2: damaged decision" in started.stderr
    log.path.write_text(log.path.read_text().replace("garbage\n", ""))
    client = start(run)
    row_id = client.call("/api/state")[1]["queue"][0]["id"]
    with log.path.open("a") as f:
        f.write("garbage\n")
    size = log.path.stat().st_size
    status, said = client.call("/api/decide", {"row_id": row_id, "reviewer": "ann", "action": "accept"})
    assert status == 400 and "damaged decision" in said["error"] and log.path.stat().st_size == size


def test_undo_refuses_what_cannot_be_undone_and_bulk_undo_is_one_line(one_round_copy: Path) -> None:
    run = one_round_copy
    client = start(run)
    queue = [item["id"] for item in client.call("/api/state")[1]["queue"][:3]]
    made = client.call("/api/decide", {"row_ids": [*queue, queue[0]], "reviewer": "ann", "action": "accept"})[1]
    ids = [d["id"] for d in made["decisions"]]
    assert len(ids) == 3  # a row named twice is decided once
    assert client.call("/api/undo", {"reviewer": "ann", "decision_ids": ids})[0] == 200
    assert human_verdicts(DecisionLog(run).read()) == {}
    assert "undone already" in client.call("/api/undo", {"reviewer": "ann", "decision_id": ids[0]})[1]["error"]
    undo_id = DecisionLog(run).read()[-1].id
    assert "cannot be undone" in client.call("/api/undo", {"reviewer": "ann", "decision_id": undo_id})[1]["error"]
    assert DecisionLog(run).path.read_text().count("\n") == 2  # the bulk and its undo: a line each


def test_bad_text_and_unchanged_edits(one_round_copy: Path) -> None:
    run = one_round_copy
    client = start(run)
    row_id = client.call("/api/state")[1]["queue"][0]["id"]
    answer = client.call(f"/api/row/{row_id}")[1]["answer"]
    status, said = client.call("/api/decide", {"row_id": row_id, "reviewer": "a\ud800", "action": "accept"})
    assert status == 400 and "reviewer" in said["error"]
    assert client.call("/api/decide", {"row_id": row_id, "reviewer": {"x": 1}, "action": "accept"})[0] == 400
    made = client.call("/api/decide", {"row_id": row_id, "reviewer": "ann", "action": "accept",
                                       "edit": {"answer": f" {answer} "}})[1]  # fmt: skip
    assert made["decisions"][0]["edit"] == {}  # nothing changed: a plain accept


def test_a_repeated_line_counts_once_and_can_still_be_undone() -> None:
    reject = new_decision(1, "r1", "ann", "reject", "wrong_answer")
    undo = new_decision(1, "r1", "ann", "undo", undoes=reject.id)
    assert human_verdicts([reject, reject, undo]) == {}  # a line restored from a backup twice


def test_a_cut_tail_is_kept_beside_the_log(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    log = DecisionLog(tmp_path)
    first = new_decision(1, "r1", "ann", "accept")
    second = new_decision(1, "r2", "ann", "accept")
    log.path.parent.mkdir(parents=True)
    log.path.write_bytes(b"\r".join(json.dumps(dataclasses.asdict(d)).encode() for d in (first, second)))  # CR only
    log.append(new_decision(1, "r3", "ann", "accept"))
    assert [d.row_id for d in log.read()] == ["r3"]
    kept = list(log.path.parent.glob("decisions.jsonl.cut-*"))
    assert len(kept) == 1 and b"r1" in kept[0].read_bytes() and b"r2" in kept[0].read_bytes()
    assert "moved to" in capsys.readouterr().err


def test_a_bulk_edit_and_an_oversize_line_are_refused(one_round_copy: Path) -> None:
    run = one_round_copy
    client = start(run)
    queue = [item["id"] for item in client.call("/api/state")[1]["queue"][:2]]
    status, said = client.call("/api/decide", {"row_ids": queue, "reviewer": "a", "action": "accept",
                                               "edit": {"answer": "1"}})  # fmt: skip
    assert status == 400 and "an edit is for one row" in said["error"]
    with pytest.raises(ReviewError, match="decide fewer rows at once"):
        DecisionLog(run).append([new_decision(1, f"r{i}", "a", "reject", "x" * 60_000) for i in range(400)])
    assert not DecisionLog(run).path.exists()


def test_another_audit_size_is_refused_once_the_slice_is_drawn(one_round_copy: Path) -> None:
    from synthloop.review.rounds import ReviewRound

    ReviewRound(one_round_copy, 1)
    with pytest.raises(ReviewError, match="drawn with 100 rows"):
        ReviewRound(one_round_copy, 1, audit_size=40)
    assert len(ReviewRound(one_round_copy, 1).audit.rows) == 100
