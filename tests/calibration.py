"""Measure, in-process, how close each example submission comes to every reference tolerance.

For each example, the notebook's code cells run in one namespace (demo cells that only draw or time
are skipped), with the hidden `_check_rule` wrapped so it records error / tolerance instead of
asserting. Used by test_tolerances.py; run it directly for the table: python tests/calibration.py
"""
import contextlib
import io
import json
import warnings

from tinytorch_course.examples import BUGS, CORRECT, build, cell_source

SKIP_TAGS = ("plt.", "time.perf_counter", "seconds_per_call(", "nbdev_export(", "def train(", "descend(", "first_steps_after_resume", "final_weights(")


def measure(name: str) -> dict:
    "{check description: error / tolerance} for submission `name`, plus failing graded cells under 'cells'."
    nb = json.loads(build(name))
    ns, ratios, failed = {"__name__": "__calibration__"}, {}, []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src, meta = cell_source(cell), cell.get("metadata", {}).get("nbgrader", {})
        if not meta and any(tag in src for tag in SKIP_TAGS):
            continue
        visible, _, hidden = src.partition("### BEGIN HIDDEN TESTS")
        for part in (visible, hidden):  # hidden checks are measured even when a visible assert fails
            try:
                with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    exec(compile(part, meta.get("grade_id", "cell"), "exec"), ns)
            except Exception:  # as under autograde, a failing cell does not stop the notebook
                if meta.get("grade") and meta["grade_id"] not in failed:
                    failed.append(meta["grade_id"])
        if meta.get("grade_id") == "grading-helpers":
            ns["_check_rule"] = _recording(ns, ratios)
    return {"ratios": ratios, "failed": failed}


def _recording(ns, ratios):
    "A stand-in for the hidden _check_rule that records error / tolerance per check."
    def check(what, kind, make_opt, hint, steps=6, scale=1.0, tol=1e-3, seeds=(0, 1, 2), **hyper):
        kinds = ("adamw", "adamw-after") if kind == "adamw" else (kind,)
        for seed in seeds:
            init, grads = ns["_init"](seed), ns["_grads"](seed, steps, scale=scale)
            got = ns["_trajectory"](make_opt, init, grads)
            err = min(ns["_worst_error"](got, ns["_reference"](k, init, grads, **hyper), init) for k in kinds)
            ratios[what] = max(ratios.get(what, 0.0), err / tol)
    return check


if __name__ == "__main__":
    rows = {name: measure(name) for name in list(CORRECT) + list(BUGS)}
    checks = sorted({k for r in rows.values() for k in r["ratios"]})
    for check in checks:
        ok = max(rows[n]["ratios"].get(check, 0) for n in CORRECT)
        caught = sorted((r["ratios"][check], n) for n, r in rows.items() if n in BUGS and r["ratios"].get(check, 0) > 1)
        print(f"{check:48s} worst correct {ok:8.2e}  bugs caught {len(caught):2d}"
              + (f", nearest {caught[0][1]} at {caught[0][0]:.1e}" if caught else ""))
