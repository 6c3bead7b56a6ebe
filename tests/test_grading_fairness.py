"""The grader is fair and discriminating, under the real `nbgrader autograde`:
every correct style earns 100/100, every plausible bug loses points, the blank version earns <= 10."""
import pytest

from helpers import ASSIGNMENT, NOTEBOOK, make_course, run_tool
from tinytorch_course.examples import BUGS, CORRECT
from tinytorch_course.submissions import write_submission

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    "One course, every example submitted, graded by `nbgrader autograde`; {student: {cell: (score, max)}}."
    course = make_course(tmp_path_factory.mktemp("fairness"))
    run_tool(course, "nbgrader", "generate_assignment", ASSIGNMENT, "--force")
    for name in ["blank", *CORRECT, *BUGS]:
        write_submission(course, name, name)
    run_tool(course, "nbgrader", "autograde", ASSIGNMENT)
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s.student_id: {g.name: (g.score, g.max_score)
                               for g in gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, s.student_id).grades}
                for s in gb.assignment_submissions(ASSIGNMENT)}


def total(cells: dict) -> float:
    return sum(score for score, _ in cells.values())


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_style_earns_full_marks(graded, name):
    lost = {cell: s for cell, s in graded[name].items() if s[0] < s[1]}
    assert total(graded[name]) == 100 and not lost, f"{name} lost points in {lost}"


@pytest.mark.parametrize("name", sorted(BUGS))
def test_bug_loses_points(graded, name):
    caught = sorted(cell for cell, (score, most) in graded[name].items() if score < most)
    print(f"{name}: {total(graded[name]):.0f}/100, caught by {', '.join(caught)}")
    assert total(graded[name]) < 100 and caught


def test_blank_student_version_earns_at_most_10(graded):
    assert total(graded["blank"]) <= 10


def test_enough_examples():
    assert len(BUGS) >= 20 and len(CORRECT) >= 6
