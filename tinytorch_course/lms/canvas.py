"""Grades in the shape an LMS imports: Canvas's gradebook CSV, from the gradebook Canvas exports.

    make grades LMS=canvas ROSTER=canvas-export.csv [CANVAS_COLUMN="07 Optimizers (12345)"]

Canvas's export (Grades > Export) starts with its identity columns: `Student` (or `LastName`,
`FirstName`), `ID`, `SIS User ID`, `SIS Login ID`, `Integration ID` (where the account shows it),
`Root Account` (where it has trusts) and `Section`; then one column per assignment, named as the
assignment followed by its Canvas id in parentheses. Under the header it may have a row with an empty
`Student` cell that says `Manual Posting` (or `Muted`) for each assignment with a manual posting
policy, then the `Points Possible` row, then one row per student, the `Student, Test` student (Canvas's
student view) last. The import reads the same shape.

We write one row per roster student, in the roster's order, with every identity column copied from the
roster (so Canvas matches each row to its student), the assignment column and a `Points Possible` row.
Nobody is dropped silently. A roster student without a graded submission gets an empty cell (Canvas
leaves an empty cell unchanged) and is listed; a graded student the roster does not know is listed; so
is a score that still waits for manual grading.
"""

import csv
from pathlib import Path

from ..grading.record import NEEDS_MANUAL
from ..results.spreadsheet import write_rows

NAME_COLUMNS = (["Student"], ["LastName", "FirstName"])  # Canvas's name column, or the two it splits it into
IDENTITY = ["ID", "SIS User ID", "SIS Login ID", "Integration ID", "Root Account", "Section"]
REQUIRED = ["ID", "SIS Login ID", "Section"]
TEST_STUDENT = "Student, Test"


def _name(row: dict) -> str:
    return row.get("Student", "") or ", ".join(filter(None, [row.get("LastName", ""), row.get("FirstName", "")]))


def read_canvas(path) -> tuple:
    """(identity columns, assignment columns, {"Points Possible": {column: value}} or {}, student rows) of a
    file in Canvas's gradebook shape; raises ValueError naming what is missing."""
    with open(path, newline="", encoding="utf-8-sig") as f:  # Canvas's export starts with a BOM
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        names = next((cols for cols in NAME_COLUMNS if all(c in header for c in cols)), None)
        missing = (["Student"] if names is None else []) + [c for c in REQUIRED if c not in header]
        if missing:
            raise ValueError(f"{path} is not a Canvas gradebook file: no {', '.join(missing)} column")
        rows = list(reader)
    identity = names + [c for c in IDENTITY if c in header]
    points = next((r for r in rows if _name(r).strip() == "Points Possible"), None)
    # Not students: the manual-posting row (no name), Points Possible, and Canvas's test student.
    students = [r for r in rows if _name(r).strip() and _name(r).strip() not in ("Points Possible", TEST_STUDENT)]
    columns = [c for c in header if c not in identity]
    return identity, columns, ({c: points[c] for c in columns} if points else {}), students


def canvas_csv(rows: list, roster, out, column: str, match: str = "SIS Login ID", points: float = 100.0) -> dict:
    """Write Canvas's import file for the grade rows of `record.grade_rows`; return who needs a look.

    `match` is the roster column that holds the student ids nbgrader uses (by default the SIS login,
    which is what a university JupyterHub usually logs students in with)."""
    identity, _, _, roster_rows = read_canvas(roster)
    if match not in identity:
        raise ValueError(f"the roster has no {match!r} column to match students by")
    graded = {r["student_id"]: r for r in rows}
    on_roster, no_submission, manual, lines = set(), [], [], []
    for person in roster_rows:
        key = person[match].strip()
        on_roster.add(key)
        grade = graded.get(key)
        if grade is None:
            no_submission.append(key)
        elif grade.get("manual_grading") == NEEDS_MANUAL:
            manual.append(key)
        lines.append([person[c] for c in identity] + ["" if grade is None else f"{float(grade['score']):.2f}"])
    write_rows(out, identity + [column], [["Points Possible"] + [""] * (len(identity) - 1) + [f"{points:g}"], *lines])
    return {
        "rows": len(roster_rows),
        "no_submission": no_submission,
        "not_on_roster": sorted(set(graded) - on_roster),
        "needs_manual_grading": manual,
    }


def roster_ids(roster, match: str = "SIS Login ID") -> dict:
    "{Canvas user ID: the student id nbgrader uses (the `match` column)} for every student on the roster."
    _, _, _, students = read_canvas(roster)
    return {s["ID"].strip(): s[match].strip() for s in students if s["ID"].strip() and s[match].strip()}


def report(result: dict, out: Path) -> str:
    "What the instructor must look at, one line per group."
    lines = [f"written: {out} ({result['rows']} roster students)"]
    for key, what in [
        ("no_submission", "on the roster, no graded submission (cell left empty)"),
        ("not_on_roster", "graded, but not on the roster (not in the file)"),
        ("needs_manual_grading", "written answers not graded yet (score without them)"),
    ]:
        if result[key]:
            lines.append(f"{len(result[key])} {what}: {', '.join(result[key])}")
    return "\n".join(lines)
