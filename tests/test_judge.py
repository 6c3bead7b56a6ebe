"""The judge, in-process: the reference package passes every hidden check through the real harness, and
a report that is missing, doubled, an exception, malformed or forged fails its own check and no other."""
import numpy as np
import pytest

import tinytorch.core.optimizers as reference
from tinytorch.core.tensor import Tensor
from tinytorch_course import harness
from tinytorch_course.judge import judge_cell, judge_check

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
    for bad, expect in [([], "no result reached"), ([good[0], good[0]], "more than once"),
                        ([{**good[0], "value": None, "error": "IndexError: too many indices"}], "raised IndexError"),
                        ([{**good[0], "value": "100"}], "could not read"),
                        ([{**good[0], "value": [[[{"__array__": "<f8", "shape": [10**9], "b64": ""}]]]}], "could not read"),
                        ([{**good[0], "value": {"is_list": True, "same": True}}], "could not read")]:
        verdict = judge_check(first, bad)
        assert not verdict["passed"] and expect in verdict["message"], verdict
    verdicts = judge_cell(cell, good[1:])  # the first check's report is gone; the others still pass
    assert [v["passed"] for v in verdicts] == [False] + [True] * (len(verdicts) - 1)


def test_a_wrong_trajectory_fails_with_the_size_of_the_error_not_the_answer():
    [spec] = [s for s in harness.PROBES["test-sgd-plain"] if s["check"] == "SGD (lr=0.1)"]
    runs = [[[harness.encode(np.array(x) * 0.5) for x in harness.init(seed)] for _ in range(spec["steps"])]
            for seed in spec["seeds"]]
    verdict = judge_check(spec, [{"check": spec["check"], "value": runs}])
    assert not verdict["passed"] and "miss by" in verdict["message"] and "[" not in verdict["message"]
