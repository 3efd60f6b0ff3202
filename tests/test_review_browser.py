"""The review page in a real browser: Debian's chromium and chromium-driver, driven by Selenium.

A reviewer works through 20 rows by keyboard only (accept, reject with a listed reason, reject with
their own words, edit, undo, bulk accept of marked rows); the server is killed with SIGKILL and
restarted; nothing is lost; and the decisions change the next round's training data."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthloop.review.decisions import DecisionLog, human_verdicts
from synthloop.storage.shards import read_records

TINY = Path(__file__).parent / "tiny_recipe.yaml"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
selenium = pytest.importorskip("selenium", reason="pip install selenium (in the dev extras)")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs Debian's chromium and chromium-driver (make test installs them as root; apt-get install them)",
)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "synthloop.cli.main", *args]


def start_server(run: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        cli("review", str(run), "--port", "0", "--reviewer", "ann"), stdout=subprocess.PIPE, text=True, env=env
    )
    assert server.stdout is not None
    deadline = time.time() + 60
    while time.time() < deadline:
        line = server.stdout.readline()
        if match := re.search(r"open (http://\S+)", line):
            return server, match.group(1)
    server.kill()
    raise AssertionError("the review server did not print its URL")


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    flags = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000")
    for flag in flags:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def wait_for(condition, what: str, timeout: float = 20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_reviewer_works_through_20_rows_by_keyboard_and_a_kill_loses_nothing(tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    run = tmp_path / "run"
    made = subprocess.run(
        cli("run", str(TINY), "--run-dir", str(run), "--rounds", "1"), capture_output=True, timeout=600
    )
    assert made.returncode == 0, made.stderr
    server, url = start_server(run)
    driver = browser()
    log = DecisionLog(run)
    try:
        driver.get(url)
        wait_for(lambda: driver.execute_script("return document.body.dataset.ready"), "the page")
        assert driver.find_element(By.ID, "reviewer").get_attribute("value") == "ann"

        def text(element_id: str) -> str:  # read in one script call: the page redraws between two calls
            return driver.execute_script(f"return document.getElementById('{element_id}')?.textContent || ''")

        def current() -> str:
            return text("row-id")

        def press(*keys: str) -> None:
            chain = ActionChains(driver)
            for key in keys:
                chain.send_keys(key)
            chain.perform()

        def status() -> str:
            return text("status")

        def act(*keys: str, lines: int, chord: bool = False) -> None:
            """Press `keys` (together when `chord`) and wait until the log has `lines` more and the page says so."""
            before = len(log.read())
            if chord:
                ActionChains(driver).key_down(keys[0]).send_keys(keys[1]).key_up(keys[0]).perform()
            else:
                press(*keys)
            wait_for(lambda: len(log.read()) == before + lines, f"{keys} to be saved (the page says {status()!r})")
            wait_for(lambda: "saved" in status() or "undone" in status(), "the page to say so")

        def next_row(after: str) -> None:
            wait_for(lambda: current() != after, "the next row")

        expected: dict[str, tuple[bool, str | None]] = {}
        for i in range(14):  # 14 rows one by one
            row_id = wait_for(current, "a row")
            if i % 4 == 0:
                act("a", lines=1)
                expected[row_id] = (True, None)
            elif i % 4 == 1:
                act("r", "1", lines=1)  # the first listed reason
                expected[row_id] = (False, "wrong_answer")
            elif i % 4 == 2:
                act("r", "too vague to grade", Keys.ENTER, lines=1)  # free text
                expected[row_id] = (False, "too vague to grade")
            else:
                press("e")
                wait_for(lambda: driver.find_element(By.ID, "editor").is_displayed(), "the editor")
                box = driver.find_element(By.ID, "edit-answer")
                box.clear()
                before = len(log.read())
                ActionChains(driver).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()
                wait_for(lambda: "cannot be empty" in status(), "the empty-answer message")
                assert len(log.read()) == before  # refused, nothing written, the editor still open
                box.send_keys("42 (checked by hand)")
                act(Keys.CONTROL, Keys.ENTER, lines=1, chord=True)
                expected[row_id] = (True, "edit")
            next_row(row_id)
        undone_row = list(expected)[-1]
        act("u", lines=1)  # takes back the last decision and goes back to its row
        del expected[undone_row]
        wait_for(lambda: current() == undone_row, "the undone row")
        act("a", lines=1)
        expected[undone_row] = (True, None)
        next_row(undone_row)
        marked = []
        for _ in range(6):  # and 6 marked, then accepted in bulk
            row_id = wait_for(current, "a row")
            marked.append(row_id)
            press("x", "j")
            next_row(row_id)
        act("A", lines=6)
        expected |= {row_id: (True, None) for row_id in marked}
        assert len(expected) == 20
        os.kill(server.pid, signal.SIGKILL)
        server.wait()

        humans = human_verdicts(log.read(), 1)
        assert set(humans) == set(expected)
        for row_id, (keep, how) in expected.items():
            assert humans[row_id].keep is keep and all(d.reviewer == "ann" for d in humans[row_id].decisions)
            if how == "edit":
                assert humans[row_id].edit["answer"] == "42 (checked by hand)"
            elif not keep:
                assert humans[row_id].reason == how

        server, url = start_server(run)  # restarted: the page shows every decision
        driver.get(url)
        wait_for(lambda: driver.execute_script("return document.body.dataset.ready"), "the page again")
        assert "20 of" in text("progress")
        press("f")
        wait_for(lambda: text("kept-error"), "the figures")
    finally:
        driver.quit()
        server.kill()

    again = cli("run", str(TINY), "--run-dir", str(run), "--resume", "--rounds", "2")
    done = subprocess.run(again, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    train = read_records(run / "rounds" / "02" / "train")
    ids = {r.id for r in train}
    rejected = {row_id for row_id, (keep, _) in expected.items() if not keep}
    edited = {row_id for row_id, (_, how) in expected.items() if how == "edit"}
    assert rejected and not rejected & ids  # accumulate: round 1's rows train again, minus those rejected
    assert {r.parent_ids[0] for r in train if r.source == "human"} == edited
    assert all(r.answer == "42 (checked by hand)" for r in train if r.source == "human")
