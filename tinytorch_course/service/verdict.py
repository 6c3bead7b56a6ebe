"""What a student may see of a grading `Result`: points, and every hidden check as the course discloses it.

The service keeps each `Result` whole (it holds no expected value: the judge's messages name the
property and the size of the error). A student is shown, per the course setting
`c.HandInService.disclose`:

- `message`: each hidden check's name, pass or fail, and the judge's message (the default);
- `name`:    each hidden check's name and pass or fail;
- `score`:   only each graded cell's points.

Always: the autograded points out of the autograded total, the written answers as "graded by your
instructor", and what happened while grading (a restored cell, a kernel that died). Never the
executed notebook (after nbgrader's OverwriteCells it holds the hidden-test lines), and no line of a
hidden region: every string is filtered against them once more before it leaves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..grading.course import SOURCE
from ..grading.result import GRADED, SKIPPED_DEMO
from .settings import DISCLOSE

WRITTEN_NOTE = "graded by your instructor"


@dataclass(frozen=True)
class Layout:
    "The graded cells of the assignment, in notebook order, and the lines no student may see."

    auto: tuple  # ((grade id, points), ...): test cells the grader scores
    written: tuple  # ((grade id, points), ...): written answers a person grades
    hidden: frozenset  # every line of every hidden-test region of the source

    @property
    def max_points(self) -> float:
        return sum(points for _, points in self.auto)


def layout(source: Path = SOURCE) -> Layout:
    "The layout of the assignment's source notebook."
    import nbformat

    from ..grading.preprocessors import hidden_lines

    nb = nbformat.read(source, as_version=4)
    auto, written = [], []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and float(meta.get("points", 0)) > 0:  # a 0-point cell grades nothing
            is_written = cell.cell_type == "markdown" and meta.get("solution")
            (written if is_written else auto).append((meta["grade_id"], float(meta.get("points", 0))))
    return Layout(tuple(auto), tuple(written), frozenset(hidden_lines(nb)))


def scrub(text: str, hidden: frozenset) -> str:
    "`text` without any line that shows a line of a hidden region."
    if not isinstance(text, str):
        return ""
    return "\n".join(line for line in text.splitlines() if not any(h in line for h in hidden))


def public(result: dict, where: Layout, disclose: str = "message") -> dict:
    "The verdict a student sees, from a stored Result (`Result.to_json()`)."
    if disclose not in DISCLOSE:
        raise ValueError(f"disclose must be one of {DISCLOSE}, not {disclose!r}")
    verdicts = result.get("verdicts", {}) if result.get("status") == GRADED else {}
    cells = []
    for cell, points in where.auto:
        verdict = verdicts.get(cell, {})
        entry = {"cell": cell, "points": float(verdict.get("score", 0.0)), "max": points}
        if disclose != "score":
            entry["checks"] = [
                {"check": scrub(c.get("check", ""), where.hidden), "passed": bool(c.get("passed"))}
                | ({"message": scrub(c.get("message", ""), where.hidden)} if disclose == "message" else {})
                for c in verdict.get("checks", [])
            ]
        cells.append(entry)
    return {
        "status": result.get("status"),
        "reason": scrub(result.get("reason", ""), where.hidden),
        "points": sum(c["points"] for c in cells),
        "max_points": where.max_points,
        "cells": cells,
        "written": [{"cell": cell, "max": points, "note": WRITTEN_NOTE} for cell, points in where.written],
        "events": [
            scrub(e.get("message", ""), where.hidden)
            for e in result.get("events", [])
            if e.get("kind") != SKIPPED_DEMO  # routine, and it says nothing about the student's work
        ],
        "disclose": disclose,
    }
