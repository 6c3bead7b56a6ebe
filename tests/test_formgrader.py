"""The instructor's loop in a real browser: a written answer graded in JupyterLab's Formgrader tab.

JupyterLab 4 runs from the grader's environment (with nbgrader's extensions) on 127.0.0.1 with a
token, serving a course with one autograded submission. Headless Chromium opens Nbgrader > Formgrader,
goes to Manual Grading, opens the submission and types a score for each written answer, as an
instructor does. `make grades` then shows the written points in the total and `manual_grading: done`.
"""

import csv
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import AUTO, ROOT, released_course, tool_env
from tinytorch_course.examples.build import write_submission
from tinytorch_course.grading.autograde import autograde

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"  # Debian's package (make test installs it); Playwright downloads nothing
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
WRITTEN = {"written-memory-at-scale": "4", "written-memory-bound-step": "3", "written-l2-vs-decoupled": "2.5"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = released_course(tmp_path_factory.mktemp("formgrader") / "course")
    write_submission(course.root, "ada", "reference")
    autograde(course, workers=1, progress=False)
    return course


@pytest.fixture(scope="module")
def lab(course, tmp_path_factory):
    "JupyterLab from the grader's environment, in the course folder, as an instructor starts it."
    tmp = tmp_path_factory.mktemp("lab")
    port, token = free_port(), secrets.token_hex(16)
    settings = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')  # no news pop-up
    args = [
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={course.root}",
    ] + (["--allow-root"] if os.geteuid() == 0 else [])
    log = (tmp / "lab.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", *args],
        cwd=course.root,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=tool_env(JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings")),
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("JupyterLab did not start:\n" + (tmp / "lab.log").read_text()[-2000:])
    yield url, token
    proc.terminate()
    proc.wait(timeout=30)


def manual_scores(course) -> dict:
    "{written answer: the score an instructor gave it} in the gradebook, for the one submission."
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, course.course_id) as gb:
        grades = gb.find_submission_notebook("optimizers", "07_optimizers", "ada").grades
        return {g.name: g.manual_score for g in grades if g.name in WRITTEN and g.manual_score is not None}


def open_formgrader(page, url: str, token: str):
    "Nbgrader > Formgrader in JupyterLab's menu bar; the frame it opens."
    page.goto(f"{url}/lab?token={token}")
    page.get_by_text("Nbgrader", exact=True).first.click(timeout=90_000)
    page.get_by_text("Formgrader", exact=True).first.click()
    for _ in range(120):
        frame = next((f for f in page.frames if "/formgrader" in f.url), None)
        if frame is not None:
            return frame
        page.wait_for_timeout(500)
    pytest.fail("the Formgrader tab did not open")


def test_an_instructor_grades_the_written_answers_in_formgrader(course, lab):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium (apt-get install chromium)"
    url, token = lab
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        frame = open_formgrader(page, url, token)
        frame.get_by_role("link", name="Manual Grading").click()
        frame.get_by_role("link", name="07_optimizers").click()
        frame.get_by_role("link", name="optimizers", exact=True).click()
        frame.locator("a", has_text="Submission #1").click()
        for grade_id, score in WRITTEN.items():
            field = frame.locator(f"input.score#{grade_id}")
            field.scroll_into_view_if_needed()
            field.fill(score)
            field.press("Tab")  # formgrader saves a score when its field changes
        saved = manual_scores(course)
        for _ in range(60):  # each save is a request from the page to formgrader's API
            if saved == {k: float(v) for k, v in WRITTEN.items()}:
                break
            page.wait_for_timeout(500)
            saved = manual_scores(course)
        assert saved == {k: float(v) for k, v in WRITTEN.items()}, saved
        frame.locator(f"input.score#{next(iter(WRITTEN))}").scroll_into_view_if_needed()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "formgrader-written-answer.png"))
        browser.close()
    run = subprocess.run(
        [sys.executable, "-m", "tinytorch_course.cli", "grades"],
        cwd=course.root,
        env=tool_env(),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    [row] = list(csv.DictReader((course.root / "grades.csv").open()))
    assert float(row["score"]) == AUTO + sum(float(s) for s in WRITTEN.values())
    assert row["manual_grading"] == "done"
