"""The three written answers flow through release -> autograde -> manual grade -> grades.csv:
they wait for a person ("needs manual grading") until an instructor scores them, as formgrader does
through nbgrader's API, and then count in the total."""

import csv

import pytest
from nbgrader.api import Gradebook

from helpers import ASSIGNMENT, AUTO, NOTEBOOK, released_course
from tinytorch_course.cli import grades
from tinytorch_course.examples.build import write_submission
from tinytorch_course.grading.autograde import autograde
from tinytorch_course.grading.course import points
from tinytorch_course.grading.record import NEEDS_MANUAL

pytestmark = pytest.mark.slow
WRITTEN = {"written-memory-at-scale": 4.0, "written-memory-bound-step": 3.0, "written-l2-vs-decoupled": 2.5}


def csv_rows(course) -> dict:
    with open(course.root / "grades.csv", newline="") as f:
        return {r["student_id"]: r for r in csv.DictReader(f)}


def set_manual_score(gb, student, grade_id, score):
    "What formgrader's grade API does when an instructor types a score."
    grade = gb.find_grade(grade_id, NOTEBOOK, ASSIGNMENT, student)
    grade.manual_score = score
    grade.needs_manual_grade = grade.manual_score is None and grade.auto_score is None
    gb.db.commit()


def test_written_answers_wait_for_an_instructor_then_count(tmp_path):
    course = released_course(tmp_path)
    write_submission(course.root, "ada", "reference")  # answers written
    write_submission(course.root, "bo", "blank")  # answers left as "YOUR ANSWER HERE"
    autograde(course, workers=2, progress=False)

    grades(course)
    before = csv_rows(course)
    assert float(before["ada"]["score"]) == AUTO and before["ada"]["manual_grading"] == NEEDS_MANUAL
    assert before["bo"]["manual_grading"] == "done", "an untouched answer scores 0 without waiting"

    with Gradebook(course.db_url, course.course_id) as gb:
        for grade_id, score in WRITTEN.items():
            set_manual_score(gb, "ada", grade_id, score)
        nb = gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, "ada")
        assert nb.max_score == 100 and sum(g.max_score for g in nb.grades if g.name in WRITTEN) == points()["manual"]

    grades(course)
    after = csv_rows(course)
    assert float(after["ada"]["score"]) == AUTO + sum(WRITTEN.values())
    assert after["ada"]["manual_grading"] == "done"
    assert float(after["bo"]["score"]) == float(before["bo"]["score"])


def test_make_grades_lms_canvas_lists_who_is_missing(tmp_path):
    import subprocess
    import sys

    from helpers import tool_env
    from tinytorch_course.lms.canvas import read_canvas

    course = released_course(tmp_path)
    write_submission(course.root, "ada", "reference")
    autograde(course, workers=1, progress=False)
    roster = tmp_path / "export.csv"
    with open(roster, "w", newline="") as f:
        csv.writer(f).writerows(
            [
                ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"],
                ["Lovelace, Ada", "1", "S1", "ada", "A"],
                ["Turing, Alan", "2", "S2", "alan", "A"],
            ]
        )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tinytorch_course.cli",
            "grades",
            "--lms",
            "canvas",
            "--roster",
            str(roster),
            "--column",
            "07 Optimizers",
        ],
        cwd=course.root,
        env=tool_env(),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "1 on the roster, no graded submission (cell left empty): alan" in run.stdout
    assert "1 written answers not graded yet (score without them): ada" in run.stdout
    _, _, _, students = read_canvas(course.root / "grades-canvas.csv")
    assert [(s["SIS Login ID"], s["07 Optimizers"]) for s in students] == [("ada", f"{AUTO:.2f}"), ("alan", "")]
