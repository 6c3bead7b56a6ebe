"""The grader is fair, discriminating and in proportion, under `make autograde` (nbgrader's pipeline with our
preprocessors, on two workers; tests/test_grading_parallel.py shows it grades exactly as `nbgrader autograde`):
every correct style earns every autograded point, every plausible bug loses points, a slip confined to
one corner (a 0-d, non-contiguous or float64/float16 parameter) costs at most that corner's 10 points,
and the blank version earns <= 10. The written answers wait for an instructor in every case."""

import pytest

from helpers import ASSIGNMENT, AUTO, NOTEBOOK, released_course
from tinytorch_course.examples.build import write_submission
from tinytorch_course.examples.submissions import BUGS, CORNER_SLIPS, CORRECT
from tinytorch_course.grading.autograde import autograde
from tinytorch_course.grading.course import Course

pytestmark = pytest.mark.slow
CORNER_POINTS = 10


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    "One course, every example submitted, graded by `nbgrader autograde`; {student: {cell: (score, max)}}."
    course = released_course(tmp_path_factory.mktemp("fairness")).root
    for name in ["blank", *CORRECT, *BUGS]:
        write_submission(course, name, name)
    autograde(Course(course), workers=2, progress=False)
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {
            s.student_id: {
                g.name: (g.score, g.max_score, g.needs_manual_grade or g.auto_score is None)
                for g in gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, s.student_id).grades
            }
            for s in gb.assignment_submissions(ASSIGNMENT)
        }


def auto_cells(cells: dict) -> dict:
    "The cells the grader scores itself (not the written answers)."
    return {cell: s for cell, s in cells.items() if not cell.startswith("written-")}


def total(cells: dict) -> float:
    return sum(score for score, _, _ in auto_cells(cells).values())


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_style_earns_every_autograded_point(graded, name):
    lost = {cell: s for cell, s in auto_cells(graded[name]).items() if s[0] < s[1]}
    assert total(graded[name]) == AUTO and not lost, f"{name} lost points in {lost}"
    written = {cell: s for cell, s in graded[name].items() if cell.startswith("written-")}
    assert len(written) == 3 and all(manual for _, _, manual in written.values()), "answers wait for a person"


@pytest.mark.parametrize("name", sorted(BUGS))
def test_bug_loses_points(graded, name):
    caught = sorted(cell for cell, (score, most, _) in auto_cells(graded[name]).items() if score < most)
    print(f"{name}: {total(graded[name]):.2f}/{AUTO:g}, caught by {', '.join(caught)}")
    assert total(graded[name]) < AUTO and caught


@pytest.mark.parametrize("name", CORNER_SLIPS)
def test_a_slip_in_one_corner_costs_at_most_that_corners_points(graded, name):
    lost = AUTO - total(graded[name])
    print(f"{name}: loses {lost:.2f} points")
    assert 0 < lost <= CORNER_POINTS


def test_blank_student_version_earns_at_most_10(graded):
    assert total(graded["blank"]) <= 10
    assert not any(manual for cell, (_, _, manual) in graded["blank"].items() if cell.startswith("written-")), (
        "an untouched answer cell scores 0 without waiting for a person"
    )


def test_enough_examples():
    assert len(BUGS) >= 20 and len(CORRECT) >= 6 and set(CORNER_SLIPS) <= set(BUGS)
