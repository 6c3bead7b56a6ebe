"""Grades in the shape an LMS imports: Canvas's gradebook CSV, from the roster Canvas exports.

    make grades LMS=canvas ROSTER=canvas-export.csv [CANVAS_COLUMN="07 Optimizers (12345)"]

Canvas's gradebook import reads the same shape as its export: the identity columns `Student`, `ID`,
`SIS User ID`, `SIS Login ID` and `Section`, then one column per assignment, named as the assignment
(optionally followed by its Canvas id in parentheses, which is how the export names it); an optional
second row, `Points Possible`, gives each assignment's maximum. We write one row per roster student,
in the roster's order, with the identity columns copied from the roster, so Canvas matches each row
to its student.

Nobody is dropped silently. A roster student without a graded submission gets an empty cell (Canvas
leaves an empty cell unchanged) and is listed; a graded student the roster does not know is listed;
so is a score that still waits for manual grading.
"""
import csv
from pathlib import Path

from .grading import NEEDS_MANUAL

IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
NOT_STUDENTS = ("Points Possible", "Student, Test")  # rows Canvas's export adds that are not students


def read_canvas(path) -> tuple:
    """(assignment columns, {"Points Possible": {column: value}} or {}, student rows) of a file in
    Canvas's gradebook shape; raises ValueError naming what is missing."""
    with open(path, newline="", encoding="utf-8-sig") as f:  # Canvas's export starts with a BOM
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in IDENTITY if c not in header]
        if missing:
            raise ValueError(f"{path} is not a Canvas gradebook file: no {', '.join(missing)} column")
        rows = list(reader)
    points = next((r for r in rows if r["Student"].strip() == "Points Possible"), None)
    students = [r for r in rows if r["Student"].strip() not in NOT_STUDENTS]
    columns = [c for c in header if c not in IDENTITY]
    return columns, ({c: points[c] for c in columns} if points else {}), students


def canvas_csv(rows: list, roster, out, column: str, match: str = "SIS Login ID", points: float = 100.0) -> dict:
    """Write Canvas's import file for the grade rows of `grading.grade_rows`; return who needs a look.

    `match` is the roster column that holds the student ids nbgrader uses (by default the SIS login,
    which is what a university JupyterHub usually logs students in with)."""
    _, _, roster_rows = read_canvas(roster)
    if roster_rows and match not in roster_rows[0]:
        raise ValueError(f"the roster has no {match!r} column to match students by")
    graded = {r["student_id"]: r for r in rows}
    on_roster, no_submission, manual = set(), [], []
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(IDENTITY + [column])
        writer.writerow(["Points Possible", "", "", "", "", f"{points:g}"])
        for person in roster_rows:
            key = person[match].strip()
            on_roster.add(key)
            grade = graded.get(key)
            if grade is None:
                no_submission.append(key)
            elif grade.get("manual_grading") == NEEDS_MANUAL:
                manual.append(key)
            writer.writerow([person[c] for c in IDENTITY] + ["" if grade is None else f"{float(grade['score']):.2f}"])
    return {"rows": len(roster_rows), "no_submission": no_submission,
            "not_on_roster": sorted(set(graded) - on_roster), "needs_manual_grading": manual}


def report(result: dict, out: Path) -> str:
    "What the instructor must look at, one line per group."
    lines = [f"written: {out} ({result['rows']} roster students)"]
    for key, what in [("no_submission", "on the roster, no graded submission (cell left empty)"),
                      ("not_on_roster", "graded, but not on the roster (not in the file)"),
                      ("needs_manual_grading", "written answers not graded yet (score without them)")]:
        if result[key]:
            lines.append(f"{len(result[key])} {what}: {', '.join(result[key])}")
    return "\n".join(lines)
