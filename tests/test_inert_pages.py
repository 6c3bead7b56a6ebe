"""Pages that show student work run none of it: formgrader, the feedback page, the class report.

One submission puts a script in every place a student's text reaches a page (`examples/scripted.py`:
a markdown cell, a written answer, stdout, HTML, JavaScript, Markdown, SVG and image outputs, an
image's alt text and width, a raw cell, an error message); another hands in no notebook and a file
whose name is an `<img onerror>`, which the grading report quotes. Both are graded by the real
pipeline (`make autograde`, `make feedback`, `make report`). Headless Chromium then opens formgrader's
submission page through JupyterLab with the instructor's token, the feedback pages and the class
report: no payload's global exists, no link runs JavaScript, and the answer, the judge's messages and
the honest figure still show.
"""

import copy
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers import SOURCE_NB, released_course, tool_env
from test_formgrader import CHROMIUM, CHROMIUM_FLAGS, lab  # noqa: F401  (lab: JupyterLab serving `course`)
from tinytorch_course.cli import feedback
from tinytorch_course.examples.build import write_submission
from tinytorch_course.examples.scripted import ANSWER, FIGURE, PLACES
from tinytorch_course.grading.autograde import autograde
from tinytorch_course.grading.sanitize import CSP, inert_markdown, inert_notebook

FILE_NAME = '<img src=x onerror="window.PWN_filename=1">.txt'  # quoted: CommonMark reads it as HTML
PAGES = {"mallory": "scripts-in-pages", "nofile": None}

# What the page ran, which links run JavaScript, its text, how many honest figures loaded, its CSP.
PROBE = """() => ({
  ran: Object.keys(window).filter(k => k.startsWith("PWN_")),
  links: [...document.querySelectorAll("a[href]")].filter(a => a.protocol === "javascript:").map(a => a.href),
  text: document.body.innerText,
  figures: [...document.images].filter(i => i.src.startsWith("data:image/png") && i.naturalWidth === %d).length,
  csp: document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.content || "",
})""" % FIGURE[0]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = released_course(tmp_path_factory.mktemp("inert") / "course")
    write_submission(course.root, "mallory", "scripts-in-pages")
    course.submitted("nofile").mkdir(parents=True)
    (course.submitted("nofile") / FILE_NAME).write_text("my notes\n")
    autograde(course, workers=2, progress=False)
    feedback(course)
    run = subprocess.run(
        [sys.executable, "-m", "tinytorch_course.cli", "report"],
        cwd=course.root,
        env=tool_env(),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    return course


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium (apt-get install chromium)"
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def visit(browser, url: str) -> dict:
    page = browser.new_page()
    try:
        page.goto(url, wait_until="load", timeout=120_000)
        return page.evaluate(PROBE)
    finally:
        page.close()


def assert_inert(seen: dict, where: str):
    ran = {name: PLACES.get(name, name) for name in seen["ran"]}
    assert not ran, f"{where} ran student code: {ran}"
    assert not seen["links"], f"{where} has links that run JavaScript: {seen['links']}"


def assert_still_useful(seen: dict, student: str, where: str):
    if student == "mallory":
        assert ANSWER in seen["text"] and 'onerror="window.PWN_answer=1"' in seen["text"], (
            f"{where}: the answer is gone"
        )
        assert "<script>window.PWN_md_script=1</script>" in seen["text"], f"{where}: the markdown is gone"
        assert seen["figures"] >= 1, f"{where}: the honest PNG figure does not show"
    else:
        assert FILE_NAME in seen["text"], f"{where}: the reason no longer names the file"


def submission_id(course, student) -> str:
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, course.course_id) as gb:
        return gb.find_submission_notebook("optimizers", "07_optimizers", student).id


@pytest.mark.slow
@pytest.mark.parametrize("student", sorted(PAGES))
def test_feedback_runs_nothing(course, browser, student):
    page = course.root / "feedback" / student / "07_optimizers" / "optimizers.html"
    seen = visit(browser, page.as_uri())
    assert_inert(seen, f"{student}'s feedback")
    assert_still_useful(seen, student, f"{student}'s feedback")
    assert seen["csp"] == CSP
    if student == "mallory":
        assert "Hidden checks:" in seen["text"], "the judge's messages are gone"


@pytest.mark.slow
@pytest.mark.parametrize("student", sorted(PAGES))
def test_formgrader_runs_nothing(course, lab, browser, student):  # noqa: F811
    url, token = lab
    seen = visit(browser, f"{url}/formgrader/submissions/{submission_id(course, student)}/?token={token}")
    assert "Submission" in seen["text"], "formgrader did not show the submission"
    assert_inert(seen, f"formgrader's page for {student}")
    assert_still_useful(seen, student, f"formgrader's page for {student}")


@pytest.mark.slow
def test_the_class_report_runs_nothing(course, browser):
    seen = visit(browser, (course.root / "report.html").as_uri())
    assert_inert(seen, "the class report")
    assert seen["csp"] == CSP
    assert "<script>window.PWN_error=" in seen["text"], "the student's error message is not shown as text"


def test_the_instructors_notebook_is_left_as_written():
    "Plain markdown (prose, code, math, tables) and the source's outputs pass unchanged: feedback stays readable."
    source = nbformat.read(SOURCE_NB, as_version=4)
    assert inert_notebook(copy.deepcopy(source)) == source


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[x](javascript:alert(1))",
        "[x](java&#115;cript:alert(1))",
        "[x]( \tJaVa\nScRiPt:alert(1))",
        "[x][1]\n\n[1]: javascript:alert(1)",
        "![a](https://tracker.example/pixel.png)",
        "<!-- hidden from the grader -->",
        "ends with ``` and ````",
        "<b>bold</b> beside ```` a fence",
    ],
)
def test_markdown_that_would_render_markup_is_kept_as_text(text):
    from tinytorch_course.grading.sanitize import AS_TEXT_NOTE, markdown_is_inert

    kept = inert_markdown(text)
    assert markdown_is_inert(kept)
    if not markdown_is_inert(text):
        assert kept.startswith(AS_TEXT_NOTE) and text in kept, kept


def test_a_markdown_cell_shows_only_the_images_it_attaches():
    "An attached PNG stays; an attachment that is not an image, or one that is missing, leaves the text."
    from tinytorch_course.examples.scripted import PNG
    from tinytorch_course.grading.sanitize import AS_TEXT_NOTE

    cells = [
        nbformat.v4.new_markdown_cell("![plot](attachment:plot.png)", attachments={"plot.png": {"image/png": PNG}}),
        nbformat.v4.new_markdown_cell("![page](attachment:p)", attachments={"p": {"text/html": "<script>x</script>"}}),
        nbformat.v4.new_markdown_cell("![gone](attachment:missing.png)"),
    ]
    nb = inert_notebook(nbformat.v4.new_notebook(cells=copy.deepcopy(cells)))
    assert nb.cells[0] == cells[0]
    assert nb.cells[1].attachments == {} and nb.cells[1].source.startswith(AS_TEXT_NOTE)
    assert nb.cells[2].source.startswith(AS_TEXT_NOTE) and "attachment:missing.png" in nb.cells[2].source


def test_execution_counts_are_numbers():
    "nbconvert prints In [..] and Out [..] unescaped, and the student's kernel reports them."
    cell = nbformat.v4.new_code_cell("1", execution_count=3)
    cell.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "1"}, execution_count=3)]
    forged = copy.deepcopy(cell)
    forged.id = "forged"
    nb = nbformat.v4.new_notebook(cells=[copy.deepcopy(cell), forged])
    nb.cells[1].execution_count = nb.cells[1].outputs[0].execution_count = "<img src=x onerror=alert(1)>"
    nb = inert_notebook(nb)
    assert nb.cells[0] == cell
    assert nb.cells[1].execution_count is None and nb.cells[1].outputs[0].execution_count is None
