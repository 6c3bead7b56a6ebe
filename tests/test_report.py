"""`make report`: one self-contained HTML page of what the class got wrong, rendered in headless
Chromium (screenshot in artifacts/screenshots/class-report.png)."""

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, released_course, tool_env
from tinytorch_course.examples.build import write_submission
from tinytorch_course.grading.autograde import autograde
from tinytorch_course.results.class_report import collect, summarize

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
EXAMPLES = [
    "reference",
    "plain-whole-arrays",
    "adam-no-bias-correction",
    "adam-eps-inside-sqrt",
    "blank",
    "kernel-exit",
    "sgd-slice-assign-0d",
    "missing-notebook",
]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = released_course(tmp_path_factory.mktemp("report"))
    for name in EXAMPLES:
        write_submission(course.root, name, name)
    autograde(course, workers=2, progress=False)
    run = subprocess.run(
        [sys.executable, "-m", "tinytorch_course.cli", "report"],
        cwd=course.root,
        env=tool_env(),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    return course


def test_the_pass_rates_show_which_concept_the_class_missed(course):
    summary = summarize(collect(course))
    rate = {check: (p, n) for _, check, p, n in summary["pass_rates"]}
    assert rate["SGD (lr=0.1)"][0] > rate["first Adam step (lr=0.01)"][0], "the bias-correction bug shows"
    assert rate["SGD on 0-d parameters"][0] < rate["SGD on float64 parameters"][0], "the 0-d slip shows"
    assert all(n == len(EXAMPLES) - 1 for p, n in rate.values()), "every graded submission counts once per check"
    people = dict(summary["attention"])
    assert "the kernel died" in people["kernel-exit"] and "not graded" in people["missing-notebook"]
    assert "written answers to grade" in people["reference"]
    messages = [m for m, _ in summary["messages"]]
    assert any("L2 term" in m for m in messages) and any("first Adam step" in m for m in messages), messages


def test_report_renders_in_chromium(course):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium (apt-get install chromium)"
    out = ROOT / "artifacts" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        page.goto((course.root / "report.html").as_uri())
        assert page.locator("#pass-rates").is_visible()
        widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
        assert len(widths) == 2 and min(widths) > 100, "both figures load from the page itself"
        assert page.locator("text=SGD on 0-d parameters").count() >= 1
        page.screenshot(path=str(out / "class-report.png"), full_page=True)
        browser.close()
