"""Measure, in-process, how close each example submission comes to every hidden tolerance.

For each example, the notebook's code cells run in one namespace (cells tagged `demo`, which only
draw or time, are skipped, as in grading). Each graded cell's hidden probes
(`tinytorch_course.checks.harness`) report straight to a list, and the judge
(`tinytorch_course.checks.judge`) rules on them exactly as in grading, recording error / tolerance
for every numerical check. Used by test_tolerances.py; run it directly for the table:
python tests/calibration.py
"""

import contextlib
import io
import json
import warnings

from tinytorch_course.checks import harness
from tinytorch_course.checks.judge import judge_cell
from tinytorch_course.examples.build import build
from tinytorch_course.examples.submissions import BUGS, CORRECT
from tinytorch_course.student.notebook import cell_source


def measure(name: str, salts=(None,)) -> dict:
    """{check: error / tolerance} for submission `name`'s numerical checks, plus under 'failed' the graded
    cells whose visible part raised and under 'failed_checks' the hidden checks the judge failed.

    With several `salts` (the grader's per-submission draws of the hidden inputs), the notebook runs once
    and every hidden probe runs once per salt: 'ratios' holds the worst ratio over them, and 'by_salt'
    the checks each draw failed."""
    nb = json.loads(build(name))
    ns, ratios, failed = {"__name__": "__calibration__"}, {}, []
    by_salt = {salt: [] for salt in salts}
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src, meta = cell_source(cell), cell.get("metadata", {}).get("nbgrader", {})
        if "demo" in cell.get("metadata", {}).get("tags", []) and not meta:
            continue
        visible, _, hidden = src.partition("### BEGIN HIDDEN TESTS")
        reports = {salt: [] for salt in salts}

        def observe(cell_id, namespace, out=reports):
            for salt, published in out.items():
                harness.observe(cell_id, namespace, salt, publish=published.append)

        ns["_observe"] = observe
        for part in (visible, hidden):  # hidden checks are measured even when a visible assert fails
            try:
                with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    code = part.replace("from tinytorch_course.checks.harness import observe as _observe", "")
                    exec(compile(code, meta.get("grade_id", "cell"), "exec"), ns)
            except Exception:  # as under autograde, a failing cell does not stop the notebook
                if meta.get("grade") and meta["grade_id"] not in failed:
                    failed.append(meta["grade_id"])
        for salt in salts:
            for verdict in judge_cell(meta.get("grade_id", ""), reports[salt], salt):
                if verdict["ratio"] is not None:
                    ratios[verdict["check"]] = max(ratios.get(verdict["check"], 0.0), verdict["ratio"])
                if not verdict["passed"]:
                    by_salt[salt].append(verdict["check"])
    failed_checks = sorted({check for checks in by_salt.values() for check in checks})
    return {"ratios": ratios, "failed": failed, "failed_checks": failed_checks, "by_salt": by_salt}


def hidden_points(result: dict) -> dict:
    """{salt: the points the graded cells would earn on that draw}: a cell whose visible part raised earns
    nothing, any other its points times the share of its hidden checks passed (as the judge scores)."""
    from helpers import SOURCE_NB, nbgrader_meta, read_nb

    points = {
        nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c).get("points", 0))
        for c in read_nb(SOURCE_NB)["cells"]
        if nbgrader_meta(c).get("grade")
    }
    cell_of = {spec["check"]: cell for cell, specs in harness.PROBES.items() for spec in specs}
    return {
        salt: sum(
            points[cell] * (1 - sum(cell_of[c] == cell for c in failed) / len(specs))
            for cell, specs in harness.PROBES.items()
            if cell not in result["failed"]
        )
        for salt, failed in result["by_salt"].items()
    }


if __name__ == "__main__":
    rows = {name: measure(name) for name in list(CORRECT) + list(BUGS)}
    checks = sorted({k for r in rows.values() for k in r["ratios"]})
    for check in checks:
        ok = max(rows[n]["ratios"].get(check, 0) for n in CORRECT)
        caught = sorted((r["ratios"][check], n) for n, r in rows.items() if n in BUGS and r["ratios"].get(check, 0) > 1)
        print(
            f"{check:48s} worst correct {ok:8.2e}  bugs caught {len(caught):2d}"
            + (f", nearest {caught[0][1]} at {caught[0][0]:.1e}" if caught else "")
        )
