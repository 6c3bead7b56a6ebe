"""Check my notebook: the grader's path, without the hidden tests, before you hand in.

    python -m tinytorch_course.student.check [modules/07_optimizers/optimizers.ipynb]

Run it from the repository's top folder after saving the notebook. It reads the *saved* file, as
the grader will, and checks that:

1. it is the file that is graded (`modules/07_optimizers/optimizers.ipynb`) and a readable notebook;
2. the cells you may not change (the read-only and graded cells) are as released, and no cell the
   grader needs was deleted;
3. it runs top to bottom in a fresh kernel, as the grader runs it (cells tagged `demo`, which only
   draw or time, are skipped there too), and every visible test passes;
4. the written answers are written.

It ends with a checklist: what will be graded, what failed, what to fix. It needs only what the
course's `binder/` installs. It never sees the hidden tests: a notebook it accepts can still lose
hidden-test points, but not to a missing file, a damaged cell, a name that only existed in your
live kernel, or a failing visible test.
"""

import argparse
import copy
import hashlib
import json
import sys
from pathlib import Path

import nbformat

from .notebook import grade_id, is_demo, nbgrader_meta

MANIFEST = Path(__file__).with_name("check_manifest.json")  # written by the course's `make release`
ANSWER_STUB = "YOUR ANSWER HERE"


def checksum(cell) -> str:
    "nbgrader's cell checksum (nbgrader.utils.compute_checksum), without needing nbgrader."
    meta = nbgrader_meta(cell)
    grade, solution = bool(meta.get("grade")), bool(meta.get("solution"))
    locked = not solution and (grade or bool(meta.get("locked")))
    digest = hashlib.md5()
    for part in (cell.source, cell.cell_type, str(grade), str(solution), str(locked), meta["grade_id"]):
        digest.update(part.encode("utf-8"))
    if meta.get("grade"):
        digest.update(str(float(meta["points"])).encode())
    return digest.hexdigest()


def manifest_of(release_nb, notebook: str) -> dict:
    "What the checker needs to know of the released notebook at `notebook` (no solution, no hidden test)."
    cells = []
    for cell in release_nb.cells:
        meta = nbgrader_meta(cell)
        if meta.get("grade_id") and (meta.get("grade") or meta.get("locked") or meta.get("solution")):
            cells.append(
                {
                    "grade_id": meta["grade_id"],
                    "type": cell.cell_type,
                    "graded": bool(meta.get("grade")),
                    "solution": bool(meta.get("solution")),
                    "points": float(meta.get("points", 0)),
                    "checksum": None if meta.get("solution") else checksum(cell),
                }
            )
    return {"notebook": notebook, "cells": cells}


def check(path: Path, manifest: dict, timeout: int = 60) -> dict:
    "Every finding, grouped: {'defects': [...], 'failed_tests': [...], 'passed_tests': [...], 'graded': ...}."
    found = {"defects": [], "failed_tests": [], "passed_tests": [], "errors": []}
    expected = Path(manifest["notebook"])
    if path.name != expected.name or path.parent.name != expected.parent.name:
        found["defects"].append(f"Only {expected} is graded; you checked {path}. Save your work under that name.")
    others = sorted(p.name for p in path.parent.glob("*.ipynb") if p.name != expected.name)
    if others:
        found["notes"] = [f"Ignored by the grader: {', '.join(others)} (only {expected.name} is graded)."]
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:
        found["defects"].append(
            f"{path} cannot be read as a notebook ({str(exc).splitlines()[0][:120]}): it would score 0."
        )
        return found
    by_id = {grade_id(c): c for c in nb.cells}
    for want in manifest["cells"]:
        cell = by_id.get(want["grade_id"])
        if cell is None:
            found["defects"].append(
                f"Cell {want['grade_id']} was deleted. "
                + (
                    "It holds your answer: the grader will find nothing there and score it 0."
                    if want["solution"]
                    else "The grader will put the original back, but check nothing of yours depended on its removal."
                )
            )
        elif want["checksum"] and checksum(cell) != want["checksum"]:
            found["defects"].append(
                f"Cell {want['grade_id']} was changed, and it is read-only: the grader will replace "
                "it with the original. Undo your change (or copy the cell from a fresh copy)."
            )
        elif want["solution"] and want["type"] == "markdown" and cell.source.strip() == ANSWER_STUB:
            found["defects"].append(f"Written answer {want['grade_id']} is still empty: it will score 0.")
    found["graded"] = {
        "auto": sum(w["points"] for w in manifest["cells"] if w["graded"] and w["type"] == "code"),
        "written": sum(w["points"] for w in manifest["cells"] if w["graded"] and w["type"] == "markdown"),
    }
    _run(nb, path.parent, timeout, found)
    return found


def _run(nb, folder: Path, timeout: int, found: dict) -> None:
    "Run the saved notebook in a fresh kernel, as the grader does; record visible tests and errors."
    from nbclient import NotebookClient

    work = copy.deepcopy(nb)
    work.cells = [c for c in work.cells if not is_demo(c)]
    for cell in work.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    NotebookClient(
        work, timeout=timeout, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(folder)}}
    ).execute()
    for cell in work.cells:
        meta = nbgrader_meta(cell)
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if cell.cell_type != "code":
            continue
        if meta.get("grade") and not meta.get("solution"):
            target = found["failed_tests"] if errors else found["passed_tests"]
            target.append(meta["grade_id"] + (f": {errors[0]['ename']}: {errors[0]['evalue'][:200]}" if errors else ""))
        elif errors:
            where = (
                meta.get("grade_id") or f"a cell starting {cell.source.strip().splitlines()[0][:40]!r}"
                if cell.source.strip()
                else "an empty cell"
            )
            found["errors"].append(f"{where}: {errors[0]['ename']}: {errors[0]['evalue'][:200]}")


def checklist(found: dict) -> str:
    lines = ["Check my notebook: the grader's path without its hidden tests", ""]
    graded = found.get("graded")
    if graded:
        lines.append(
            f"Will be graded: {len(found['passed_tests']) + len(found['failed_tests'])} test cells "
            f"({graded['auto']:g} points, by the grader) and your written answers ({graded['written']:g} points, "
            "by your instructor)."
        )
    lines += [f"  {n}" for n in found.get("notes", [])]
    lines.append(f"[{'x' if not found['defects'] else ' '}] the file and its read-only cells are as the grader expects")
    lines += [f"      - {d}" for d in found["defects"]]
    lines.append(
        f"[{'x' if not found['failed_tests'] and graded else ' '}] every visible test passes in a fresh "
        f"kernel ({len(found['passed_tests'])} passed, {len(found['failed_tests'])} failed)"
    )
    lines += [f"      - FAILED {t} (this cell would score 0)" for t in found["failed_tests"]]
    if found["errors"]:
        lines.append("[ ] other cells raised errors in a fresh kernel (a name from a deleted or later cell?):")
        lines += [f"      - {e}" for e in found["errors"]]
    lines += [
        "",
        "Ready to hand in."
        if ready(found)
        else "Fix the items above, save, and run this check again. Then hand in the saved notebook.",
    ]
    return "\n".join(lines)


def ready(found: dict) -> bool:
    return bool(found.get("graded")) and not (found["defects"] or found["failed_tests"] or found["errors"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tinytorch_course.student.check", description=__doc__.split("\n")[0]
    )
    manifest = json.loads(MANIFEST.read_text())
    parser.add_argument("notebook", nargs="?", default=manifest["notebook"])
    parser.add_argument("--timeout", type=int, default=60, help="seconds a cell may run (the grader allows 60)")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON, not the checklist")
    args = parser.parse_args(argv)
    path = Path(args.notebook)
    if not path.exists():
        print(f"{path} does not exist: the grader looks for {manifest['notebook']}.")
        return 1
    found = check(path, manifest, args.timeout)
    print(json.dumps(found, indent=1) if args.json else checklist(found))
    return 0 if ready(found) else 1


if __name__ == "__main__":
    sys.exit(main())
