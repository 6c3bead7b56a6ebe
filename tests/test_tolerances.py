"""Tolerances come from submissions: every correct style sits far below each hidden check's limit,
every bug lands above one (measured in-process; test_grading_fairness.py proves it under nbgrader)."""

import pytest

from calibration import measure
from tinytorch_course.examples.submissions import BUGS, CORRECT

MARGIN = 0.1  # a correct style may use at most a tenth of any tolerance
FLOAT16_MARGIN = 0.35  # float16 keeps three digits: a correct style's rounding moves with the inputs drawn


def over_margin(ratios: dict) -> dict:
    "The checks a correct style uses more of than its margin allows."
    return {c: r for c, r in ratios.items() if r > (FLOAT16_MARGIN if "float16" in c else MARGIN)}


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


# ---- over the grader's per-submission draws, not one fixed set of inputs -----------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SALTS = st.lists(st.text("0123456789abcdef", min_size=32, max_size=32), min_size=3, max_size=3, unique=True)


@pytest.mark.parametrize("name", sorted(CORRECT))
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(salts=SALTS)
def test_correct_styles_pass_on_every_draw_of_the_hidden_inputs(name, salts):
    result = measure(name, salts)
    assert result["failed"] == [] and result["failed_checks"] == [], result["by_salt"]
    assert not over_margin(result["ratios"]), over_margin(result["ratios"])


@pytest.mark.parametrize("name", sorted(BUGS))
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(salts=SALTS)
def test_every_bug_fails_a_check_on_every_draw(name, salts):
    result = measure(name, salts)
    caught = [salt for salt, checks in result["by_salt"].items() if checks or result["failed"]]
    assert caught == salts, f"{name} passes every check on draws {sorted(set(salts) - set(caught))}"
