"""The graded cells of module 07 tell a student what is checked: every hidden check is named in its
cell, every visible assertion says what it expected, and the points add up as the README states."""

import ast

import nbformat
import pytest

from helpers import SOURCE_NB
from tinytorch_course.checks import harness
from tinytorch_course.grading.course import points

CELLS = nbformat.read(SOURCE_NB, as_version=4).cells
GRADED = {
    c.metadata.nbgrader["grade_id"]: c
    for c in CELLS
    if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade") and c.metadata.nbgrader.get("points")
}


def visible(cell) -> str:
    return cell.source.split("### BEGIN HIDDEN TESTS")[0]


def test_every_graded_cell_has_probes_and_every_probe_a_cell():
    assert set(GRADED) == set(harness.PROBES)


@pytest.mark.parametrize("grade_id", sorted(harness.PROBES))
def test_each_graded_cell_names_its_hidden_checks(grade_id):
    text = visible(GRADED[grade_id])
    missing = [p["check"] for p in harness.PROBES[grade_id] if f"- {p['check']}\n" not in text]
    assert not missing, f"{grade_id} does not list its hidden checks {missing}"
    hidden = GRADED[grade_id].source.split("### BEGIN HIDDEN TESTS")[1]
    assert hidden.strip() == f'_observe("{grade_id}", globals())\n### END HIDDEN TESTS'


@pytest.mark.parametrize("grade_id", sorted(harness.PROBES))
def test_every_visible_assertion_says_what_it_expected(grade_id):
    bare = [
        node.lineno
        for node in ast.walk(ast.parse(visible(GRADED[grade_id])))
        if isinstance(node, ast.Assert) and node.msg is None
    ]
    assert not bare, f"{grade_id}: assertions without a message on lines {bare}"


def test_points_add_up_and_corners_weigh_at_most_ten():
    totals = points()
    assert totals["auto"] + totals["manual"] == 100 and 10 <= totals["manual"] <= 15
    assert GRADED["test-corner-cases"].metadata.nbgrader["points"] <= 10
    assert all(2 <= c.metadata.nbgrader["points"] <= 10 for c in GRADED.values())


def test_the_prompt_names_every_corner_the_grader_tries():
    prose = "\n".join(c.source for c in CELLS if c.cell_type == "markdown")
    for words in ["**0-d**", "**non-contiguous**", "**float64** and **float16**", "1, 2 and 3\ndimensions"]:
        assert words in prose, words


def test_the_prompt_states_the_float16_gradients_the_grader_uses():
    "The float16 corners use gradients of at least harness.SMALLEST_GRADIENT; the prompt and the trap say so."
    prose = " ".join("\n".join(c.source for c in CELLS if c.cell_type == "markdown").split())
    assert prose.count(f"gradients of at least {harness.SMALLEST_GRADIENT} in size") == 2


def test_answer_a_model_answer_is_what_estimate_training_memory_gives():
    from tinytorch.core.optimizers import estimate_training_memory as estimate

    n, gib = 7_000_000_000, 2**30
    weights_and_grads = 2 * estimate(n, "adam")["params"]
    totals = [
        estimate(n, "sgd", momentum=0.9)["total"],
        estimate(n, "adam")["total"],
        weights_and_grads + estimate(n, "adam", bytes_per_value=1)["optimizer_state"],
    ]
    [rubric] = [c.source for c in CELLS if c.metadata.get("nbgrader", {}).get("grade_id") == "written-memory-at-scale"]
    rubric = " ".join(rubric.split())
    assert "{:.0f}, {:.0f} and {:.0f} GB".format(*(t / 1e9 for t in totals)) in rubric
    assert "{:.1f}, {:.1f} and {:.1f} GiB".format(*(t / gib for t in totals)) in rubric
    assert [t <= 80e9 for t in totals] == [False, False, True] and "only the 8-bit Adam fits" in rubric


def test_written_answers_are_manually_graded_markdown_cells():
    answers = [c for c in CELLS if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "markdown"]
    assert [c.metadata.nbgrader["grade_id"] for c in answers] == [
        "written-memory-at-scale",
        "written-memory-bound-step",
        "written-l2-vs-decoupled",
    ]
    assert all(c.metadata.nbgrader["grade"] and "Rubric (instructor only" in c.source for c in answers)
