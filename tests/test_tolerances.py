"""Tolerances come from submissions: every correct style sits far below each hidden check's limit,
every bug lands above one (measured in-process; test_grading_fairness.py proves it under nbgrader)."""

import pytest

from calibration import measure
from tinytorch_course.examples.submissions import BUGS, CORRECT

MARGIN = 0.1  # a correct style may use at most a tenth of any tolerance


@pytest.fixture(scope="module")
def measured():
    return {name: measure(name) for name in list(CORRECT) + list(BUGS)}


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_styles_stay_well_inside_every_tolerance(measured, name):
    result = measured[name]
    assert result["failed"] == [] and result["failed_checks"] == []
    worst = max(result["ratios"].items(), key=lambda kv: kv[1])
    print(f"{name}: worst check {worst[0]!r} uses {worst[1]:.1%} of its tolerance")
    assert worst[1] <= MARGIN


@pytest.mark.parametrize("name", sorted(BUGS))
def test_every_bug_fails_a_check(measured, name):
    result = measured[name]
    over = sorted(check for check, ratio in result["ratios"].items() if ratio > 1)
    print(
        f"{name}: fails {result['failed']}; hidden checks failed: {result['failed_checks']}; over tolerance in {over}"
    )
    assert result["failed"] or result["failed_checks"], f"{name} passes every graded cell"
