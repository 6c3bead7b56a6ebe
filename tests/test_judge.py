"""The judge, in-process: the reference package passes every hidden check through the real harness, and
a report that is missing, doubled, an exception, malformed or forged fails its own check and no other."""

import numpy as np
import pytest

import tinytorch.core.optimizers as reference
from tinytorch.core.tensor import Tensor
from tinytorch_course.checks import harness
from tinytorch_course.checks.judge import judge_cell, judge_check

NAMESPACE = {**vars(reference), "Tensor": Tensor}


def reports_for(cell_id):
    reports = []
    harness.observe(cell_id, NAMESPACE, publish=reports.append)
    return reports


@pytest.mark.parametrize("cell_id", sorted(harness.PROBES))
def test_the_reference_package_passes_every_check(cell_id):
    failed = [v["message"] for v in judge_cell(cell_id, reports_for(cell_id)) if not v["passed"]]
    assert not failed


def test_a_bad_report_fails_only_its_own_check():
    cell = "test-sgd-plain"
    good = reports_for(cell)
    first = harness.PROBES[cell][0]
    for bad, expect in [
        ([], "no result reached"),
        ([good[0], good[0]], "more than once"),
        ([{**good[0], "value": None, "error": "IndexError: too many indices"}], "raised IndexError"),
        ([{**good[0], "value": "100"}], "could not read"),
        ([{**good[0], "value": [[[{"__array__": "<f8", "shape": [10**9], "b64": ""}]]]}], "could not read"),
        ([{**good[0], "value": {"is_list": True, "same": True}}], "could not read"),
    ]:
        verdict = judge_check(first, bad)
        assert not verdict["passed"] and expect in verdict["message"], verdict
    verdicts = judge_cell(cell, good[1:])  # the first check's report is gone; the others still pass
    assert [v["passed"] for v in verdicts] == [False] + [True] * (len(verdicts) - 1)


def test_a_wrong_trajectory_fails_with_the_size_of_the_error_not_the_answer():
    [spec] = [s for s in harness.PROBES["test-sgd-plain"] if s["check"] == "SGD (lr=0.1)"]
    runs = [
        [[harness.encode(np.array(x) * 0.5) for x in harness.init(seed)] for _ in range(spec["steps"])]
        for seed in spec["seeds"]
    ]
    verdict = judge_check(spec, [{"check": spec["check"], "value": runs}])
    assert not verdict["passed"] and "miss by" in verdict["message"] and "[" not in verdict["message"]


# ---- nothing but finite, well-formed, right numbers passes -------------------------------------
from functools import cache  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tinytorch_course.checks.judge import decode  # noqa: E402

SPECS = [spec for specs in harness.PROBES.values() for spec in specs]
WRONG_TYPES = [None, "x", 7, 1.5, True, [], {}, np.zeros(2)]


@cache
def good_report(check: str) -> dict:
    "The report the reference package gives for `check` (it passes: see the test above)."
    [cell] = [cell for cell, specs in harness.PROBES.items() if any(s["check"] == check for s in specs)]
    return next(r for r in reports_for(cell) if r["check"] == check)


def nodes(value, path=()):
    "(path, node) of every node of a decoded report, the root included."
    yield path, value
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from nodes(child, (*path, key))


def replaced(value, path, new):
    "A copy of `value` with the node at `path` replaced by `new`."
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy


@st.composite
def damaged(draw, check):
    "A report for `check` with one node made non-finite, emptied, or of another type."
    value = decode(good_report(check)["value"])
    every = list(nodes(value))
    floats = [(p, n) for p, n in every if isinstance(n, np.ndarray) and n.dtype.kind == "f" and n.size]
    leaves = [(p, n) for p, n in every if not isinstance(n, (dict, list, np.ndarray))]
    lists = [(p, n) for p, n in every if isinstance(n, list) and n]
    kinds = [k for k, pool in [("non-finite", floats + leaves), ("empty", lists), ("wrong type", every)] if pool]
    kind = draw(st.sampled_from(kinds))
    bad = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    if kind == "non-finite":
        path, node = draw(st.sampled_from(floats + leaves))
        if isinstance(node, np.ndarray):
            new = node.copy()
            new.reshape(-1)[draw(st.integers(0, node.size - 1))] = bad
        else:
            new = bad
    elif kind == "empty":
        path, new = draw(st.sampled_from(lists))[0], []
    else:
        path, node = draw(st.sampled_from(every))
        new = draw(st.sampled_from([w for w in WRONG_TYPES if type(w) is not type(node)]))
    return kind, path, {**good_report(check), "value": harness.encode(replaced(value, path, new))}


@pytest.mark.parametrize("spec", SPECS, ids=[s["check"] for s in SPECS])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_nan_an_infinity_an_empty_list_or_a_wrong_type_never_passes(spec, data):
    kind, path, report = data.draw(damaged(spec["check"]))
    verdict = judge_check(spec, [report])
    assert not verdict["passed"], f"{kind} at {path} passed: {verdict}"


def test_an_optimizer_that_writes_nan_fails_every_numerical_check():
    "The live hole: max(0.0, nan) is 0.0, so an all-NaN trajectory once scored an error of 0."
    nan_ns = dict(NAMESPACE)
    for name in ("SGD", "Adam", "AdamW"):

        def step(self, _step=NAMESPACE[name].step):
            _step(self)
            for p in self.params:
                p.data[...] = np.nan

        nan_ns[name] = type(name, (NAMESPACE[name],), {"step": step})
    passed = []
    for cell in harness.PROBES:
        reports = []
        harness.observe(cell, nan_ns, publish=reports.append)
        passed += [v["check"] for v in judge_cell(cell, reports) if v["passed"]]
    moving = {"trajectory", "first-step", "decay-only", "corner", "contract", "resume"}  # the velocity is right
    assert not [c for c in passed if next(s for s in SPECS if s["check"] == c)["probe"] in moving], passed
