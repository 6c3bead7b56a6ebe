"""The real nbgrader 0.9 pipeline on module 07: release, then autograde the source and the blank student version."""

import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import (
    ASSIGNMENT,
    AUTO,
    MARKERS,
    NOTEBOOK,
    SOURCE_NB,
    cell_source,
    make_course,
    nbgrader_meta,
    read_nb,
    run_tool,
    secret_lines,
    submission_scores,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("course"))
    run_tool(course, "nbgrader", "generate_assignment", ASSIGNMENT, "--force")
    return course


@pytest.fixture(scope="module")
def student_nb(course):
    return course / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"


def test_student_version_holds_no_solution_and_no_hidden_test(student_nb):
    text = student_nb.read_text()
    assert not MARKERS.search(text)
    secret = secret_lines()
    student_lines = {line.strip() for c in read_nb(student_nb)["cells"] for line in cell_source(c).splitlines()}
    leaked = secret & student_lines
    assert not leaked, f"{len(leaked)} solution or hidden-test lines reach students, e.g. {sorted(leaked)[:3]}"
    answers = [
        c for c in read_nb(student_nb)["cells"] if nbgrader_meta(c).get("solution") and c["cell_type"] == "markdown"
    ]
    assert len(answers) == 3 and all(cell_source(c).strip() == "YOUR ANSWER HERE" for c in answers)
    assert "Rubric" not in text and "Model answer" not in text, "the written answers' rubric is instructor-only"


def test_student_stubs_raise_not_implemented_and_nothing_else_breaks(student_nb):
    nb = nbformat.read(student_nb, as_version=4)
    stubs = [c for c in nb.cells if nbgrader_meta(c).get("solution") and c.cell_type == "code"]
    assert stubs and all("raise NotImplementedError()" in cell_source(c) for c in stubs)
    NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(student_nb.parent)}},
    ).execute()
    errors = {o["ename"] for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"}
    assert errors == {"NotImplementedError"}


def test_autograde_gives_the_source_100_and_the_blank_version_at_most_10(course, student_nb):
    for student, nb in [("reference", SOURCE_NB), ("blank", student_nb)]:
        dest = course / "submitted" / student / ASSIGNMENT
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(nb, dest / f"{NOTEBOOK}.ipynb")
    run_tool(course, "nbgrader", "autograde", ASSIGNMENT)
    scores = submission_scores(course)
    assert scores["reference"] == (AUTO, 100.0), "every autograded point; the written answers wait for a person"
    assert scores["blank"][0] <= 10.0
    graded = read_nb(course / "autograded" / "reference" / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    [export_cell] = [c for c in graded["cells"] if "nbdev_export(" in cell_source(c)]
    assert export_cell["outputs"] == [], "grading must skip the export cell: it would write a package"


def _bound_and_used(source: str):
    "Names a cell binds (assignments, defs, classes, imports) and names it reads."
    import ast

    tree = ast.parse(source)
    bound, used = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, ast.Store) else used).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return bound, used


def test_skipped_demo_cells_leave_no_name_undefined_for_a_cell_that_runs():
    "Grading skips the cells tagged demo: no cell that still runs may read a name only they define."
    from tinytorch_course.student.notebook import is_demo

    nb = nbformat.read(SOURCE_NB, as_version=4)
    only_in_demo, problems, skipped = set(), [], 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        bound, used = _bound_and_used(cell.source)
        if is_demo(cell):
            only_in_demo |= bound
            skipped += 1
        else:
            problems += [(index, name) for name in sorted((used - bound) & only_in_demo)]
            only_in_demo -= bound
    assert skipped >= 15, "the figures, races and lab should be tagged demo"
    assert not problems, f"cells that run under grading read names only demo cells define: {problems}"
