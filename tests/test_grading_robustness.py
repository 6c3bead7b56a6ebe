"""Every submission gets a grade and an explanation, whatever it does; nothing under submitted/ changes;
feedback shows hidden tests' messages but never their source."""

import html
import re

import pytest

from helpers import AUTO, released_course, secret_lines, tree_hash
from tinytorch_course.cli import feedback, grades
from tinytorch_course.examples.build import write_submission
from tinytorch_course.examples.submissions import HOSTILE, UNREADABLE
from tinytorch_course.grading.autograde import autograde

pytestmark = pytest.mark.slow
CORRECT_CODE = {
    "infinite-loop",
    "kernel-exit",
    "segfault",
    "huge-allocation",
    "deleted-graded-cells",
    "graded-cell-as-markdown",
}
EXPECTED_NOTE = {
    "infinite-loop": "longer than 10 s",
    "kernel-exit": "kernel died",
    "segfault": "kernel died",
    "huge-allocation": "out of memory",
    "deleted-graded-cells": "put back",
    "corrupt-json": "could not be read",
    "missing-notebook": "No optimizers.ipynb",
    "kernel-exit-everywhere": "kernel kept dying",
}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    course = released_course(tmp_path_factory.mktemp("robust"), timeout=10)
    course_dir = course.root
    names = [*HOSTILE, *UNREADABLE, "adam-eps-inside-sqrt"]
    for name in names:
        write_submission(course_dir, name, name)
    before = tree_hash(course_dir / "submitted")
    results = autograde(course, workers=2, progress=False)
    files = feedback(course)
    return {
        "course": course,
        "names": names,
        "before": before,
        "results": results,
        "feedback": files,
        "rows": {r["student_id"]: r for r in grades(course)},
    }


def test_every_submission_has_a_score_and_a_reason(batch):
    assert set(batch["rows"]) == set(batch["names"])
    for name, note in EXPECTED_NOTE.items():
        assert note in batch["rows"][name]["notes"], f"{name}: {batch['rows'][name]}"
    assert batch["rows"]["corrupt-json"]["score"] == 0 and batch["rows"]["missing-notebook"]["score"] == 0
    assert "demonstration cells" in batch["rows"]["adam-eps-inside-sqrt"]["notes"], "the report lists skipped cells"


@pytest.mark.parametrize("name", sorted(CORRECT_CODE))
def test_correct_code_survives_hostile_cells(batch, name):
    assert batch["rows"][name]["score"] == AUTO, batch["rows"][name]


@pytest.mark.parametrize("name", ["edited-locked-cells", "patched-comparisons", "kernel-exit-everywhere"])
def test_tampering_never_earns_full_marks(batch, name):
    assert batch["rows"][name]["score"] < AUTO


def test_submitted_files_are_never_modified(batch):
    assert tree_hash(batch["course"].root / "submitted") == batch["before"]


def test_every_student_gets_a_feedback_file_that_explains(batch):
    pages = {p.parent.parent.name: html.unescape(p.read_text()) for p in batch["feedback"]}
    assert set(pages) == set(batch["names"])
    for name, note in EXPECTED_NOTE.items():
        assert note in pages[name], f"{name}'s feedback does not say what happened"


def test_feedback_shows_hidden_messages_but_no_hidden_source(batch):
    hidden = secret_lines(("HIDDEN TESTS",))
    for page in batch["feedback"]:
        text = html.unescape(re.sub(r"<[^>]+>", "\n", page.read_text()))
        lines = {line.strip() for line in text.splitlines()}
        assert not hidden & lines, f"{page} shows hidden test source: {sorted(hidden & lines)[:2]}"
    eps_page = next(p for p in batch["feedback"] if p.parent.parent.name == "adam-eps-inside-sqrt").read_text()
    assert "Adam with tiny gradients (1e-6): after 6 steps the weights miss by" in html.unescape(eps_page)
