"""`make demo`: the course end to end on bundled examples.

1. Run every module notebook top to bottom.
2. In a scratch course folder (artifacts/demo-course/, so real submissions are never touched):
   release the module and build the student repository, put in example submissions (the reference
   solution, the blank student version, three realistic bugs and a notebook that kills its kernel),
   autograde them in parallel, write feedback, and print the grade table.
"""

import argparse
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
DEMO_COURSE = ROOT / "artifacts" / "demo-course"
EXAMPLES = {
    "ada-reference": "reference",
    "ben-blank": "blank",
    "cai-bias-uncorrected": "adam-no-bias-correction",
    "dee-momentum-dampened": "sgd-momentum-dampening",
    "eli-adamw-coupled": "adamw-l2-coupled",
    "fay-kills-kernel": "kernel-exit",
}


def run_notebook(path: Path) -> dict:
    "Execute one notebook in its own folder; report seconds, cells, figures and the first error."
    nb = nbformat.read(path, as_version=4)
    start, error = time.perf_counter(), ""
    try:
        NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        ).execute()
    except CellExecutionError as exc:
        error = str(exc).strip().splitlines()[-1][:100]
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    return {
        "module": path.parent.name,
        "seconds": time.perf_counter() - start,
        "cells": sum(c.cell_type == "code" for c in nb.cells),
        "figures": sum("image/png" in o.get("data", {}) for o in outputs),
        "error": error,
    }


def notebooks() -> bool:
    rows = [run_notebook(p) for p in sorted((ROOT / "modules").glob("*/*.ipynb"))]
    print(f"\n{'module':18s} {'cells':>5s} {'figures':>7s} {'seconds':>8s}  result")
    for r in rows:
        print(f"{r['module']:18s} {r['cells']:5d} {r['figures']:7d} {r['seconds']:8.1f}  {r['error'] or 'ok'}")
    failed = [r["module"] for r in rows if r["error"]]
    print(
        f"{len(rows) - len(failed)} of {len(rows)} notebooks ran top to bottom"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return not failed


def instructor_path(workers: int = 0) -> bool:
    from .cli import feedback, grades, print_table
    from .examples.build import write_submission
    from .grading.autograde import autograde
    from .grading.course import points, scratch_course
    from .release import release

    if DEMO_COURSE.exists():
        shutil.rmtree(DEMO_COURSE)
    course = scratch_course(DEMO_COURSE)
    print(f"\nrelease: student repository in {release(course).relative_to(ROOT)}")
    for student, example in EXAMPLES.items():
        write_submission(DEMO_COURSE, student, example)
    print(f"autograde: {len(EXAMPLES)} example submissions")
    autograde(course, workers)
    print(f"feedback: {len(feedback(course))} files under {(DEMO_COURSE / 'feedback').relative_to(ROOT)}/")
    rows = grades(course)
    print_table(rows)
    written = points()["manual"]
    print(f"\nThe written answers ({written:g} points) wait for an instructor in formgrader (nbgrader formgrader).")
    return {r["student_id"]: r["score"] for r in rows}["ada-reference"] == points()["auto"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notebooks-only", action="store_true")
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args(argv)
    ok = notebooks()
    if not args.notebooks_only:
        ok = instructor_path(args.workers) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
