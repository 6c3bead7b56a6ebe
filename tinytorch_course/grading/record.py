"""The gradebook's single writer, and what it wrote, read back for `make grades`, the report and the LMS.

Only the process that runs a batch calls `record`: workers (local or on Dask) return a `Result` and
never touch the gradebook, so sqlite never sees two writers and PostgreSQL sees one per batch. For
each submission `record` writes its grades, `autograded/<student>/07_optimizers/optimizers.ipynb`
(starting with a *Grading report* cell, made inert: formgrader shows it) and `grading.json` (the
`Result`, for the report, and the fingerprint that lets a rerun skip it). `grade_rows` reads all of
that back, one row per submission.

No student can stop the writer: `timestamp.txt` is read defensively (`intake.read_timestamp`), a
folder name that cannot be a student id never reaches the gradebook, and `record_safely` turns
whatever recording one submission raises into that student's error, with the reason, and goes on.
"""

import json
import os
import warnings
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from .course import ASSIGNMENT, NOTEBOOK, Course
from .intake import read_timestamp, student_id_problem
from .pipeline import RECORD
from .result import BAD_TIMESTAMP, ERROR, LATE, NO_CGROUPS, UNSANDBOXED, Event, Result, printable
from .sanitize import inert_markdown
from .worker import run

MARKER = "grading.json"
NEEDS_MANUAL = "needs manual grading"
COLUMNS = [
    "student_id",
    "score",
    "max_score",
    "late_penalty",
    "timestamp",
    "status",
    "manual_grading",
    "sandboxed",
    "notes",
]


def report_cell(result: Result) -> nbformat.NotebookNode:
    "The *Grading report* cell that opens the autograded notebook (and so the feedback)."
    lines = [f"## Grading report for {result.student}", ""]
    if result.graded:
        lines += [f"- {e.message}" for e in result.events] or ["- Every cell ran to completion."]
        if not result.sandboxed:
            lines += [f"- **{UNSANDBOXED}.**"]
        elif not result.cgroups:
            lines += [f"- {NO_CGROUPS}."]
    else:
        reason, *more = notes(result)
        lines += [f"- **Not graded, score 0:** {reason}"] + [f"- {note}" for note in more]
    return nbformat.v4.new_markdown_cell(inert_markdown("\n".join(lines)))  # names and reasons can hold markup


def notes(result: Result) -> list:
    "What grades.csv and the grading report say: why it was not graded (and a bad timestamp), or what happened."
    if not result.graded:
        return [result.reason] + [e.message for e in result.events if e.kind == BAD_TIMESTAMP]
    return [e.message for e in result.events]


def record(course: Course, result: Result, fp: str) -> None:
    "Write one submission's grades, its autograded notebook and its grading record."
    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's own session bookkeeping, harmless
        _record(course, result, fp)


def record_safely(course: Course, result: Result, fp: str) -> Result:
    """`record`, and when recording this student fails, their error with the reason instead: the batch
    goes on. The error goes to the gradebook (score 0) if it can, else to the grading record alone
    (`grade_rows` lists both); either way a rerun grades the student again. Returns what was recorded."""
    try:
        record(course, result, fp)
        return result
    except Exception as exc:
        reason = f"The grader could not record this submission ({type(exc).__name__}: {exc})"[:500]
        failed = Result.failed(result.student, ERROR, reason, result.sandboxed)
    try:
        record(course, failed, "")
    except Exception:
        write_record(course, failed, "")
    return failed


def write_record(course: Course, result: Result, fp: str) -> None:
    "Write `grading.json` alone (for a submission that cannot be in the gradebook)."
    out = course.autograded(result.student)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / MARKER, json.dumps({**result.to_json(), "fingerprint": fp}, indent=1))


def _record(course: Course, result: Result, fp: str) -> None:
    student = result.student
    if student_id_problem(student):  # never into the gradebook: formgrader's pages would show it as markup
        write_record(course, result, fp)
        return
    timestamp, problem = read_timestamp(course.submitted(student))
    if problem and BAD_TIMESTAMP not in result.kinds():
        result.events.append(
            Event(BAD_TIMESTAMP, f"{problem}: it was ignored, so no late penalty applies. Check when this came in.")
        )
    with Gradebook(course.db_url, course.course_id) as gb:
        gb.update_or_create_student(student)
        gb.update_or_create_submission(ASSIGNMENT, student, timestamp=timestamp)  # None: on time
        late = gb.find_submission(ASSIGNMENT, student).total_seconds_late
    if late > 0 and LATE not in result.kinds():
        result.events.append(Event(LATE, f"Handed in {late / 3600:.1f} hours after the due date."))
    if result.graded:
        nb = nbformat.reads(result.notebook, as_version=4)
        resources = {
            "nbgrader": {"notebook": NOTEBOOK, "assignment": ASSIGNMENT, "student": student, "db_url": course.db_url},
            "tinytorch": {"verdicts": result.verdicts},
        }
        nb, _ = run(RECORD, nb, resources, course.config)
    else:
        nb = nbformat.v4.new_notebook()
        with Gradebook(course.db_url, course.course_id) as gb:
            for grade in gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, student).grades:
                grade.auto_score, grade.needs_manual_grade = 0, False
            gb.db.commit()
    nb.cells.insert(0, report_cell(result))
    out = course.autograded(student)
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / "timestamp.txt"  # the time as parsed, never the student's file (feedback copies it)
    if timestamp is not None:
        atomic_write(stamp, timestamp.strftime("%Y-%m-%d %H:%M:%S.%f UTC\n"))
    elif stamp.exists():
        stamp.unlink()
    atomic_write(out / f"{NOTEBOOK}.ipynb", nbformat.writes(nb))
    write_record(course, result, fp)


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_record(course: Course, student: str) -> dict:
    "The grading record `record` wrote for `student` ({} if none): the Result's fields and the fingerprint."
    marker = course.autograded(student) / MARKER
    return json.loads(marker.read_text()) if marker.exists() else {}


def is_done(course: Course, student: str, fp: str) -> bool:
    "Whether this exact submission is already graded and recorded (a rerun skips it)."
    if read_record(course, student).get("fingerprint") != fp:
        return False
    with Gradebook(course.db_url, course.course_id) as gb:
        try:
            gb.find_submission(ASSIGNMENT, student)
        except MissingEntry:
            return False
    return True


def grade_rows(course: Course, with_record: bool = False) -> list:
    """One row per submission (the columns of grades.csv): each in the gradebook, and each whose folder
    is still under submitted/ but could only be recorded in its grading record (its error and reason,
    score 0). `with_record` adds `record`, its `Result` (None for a submission graded by plain nbgrader,
    which writes no record)."""
    rows = []
    with Gradebook(course.db_url, course.course_id) as gb:
        for sub in gb.assignment_submissions(ASSIGNMENT):
            info = read_record(course, sub.student_id)
            result = Result.from_json(info) if info else None
            said = [] if result is None else notes(result)
            if result is not None and not result.sandboxed:
                said.insert(0, UNSANDBOXED)
            elif result is not None and result.graded and not result.cgroups:
                said.insert(0, NO_CGROUPS)
            rows.append(
                {
                    "student_id": sub.student_id,
                    "score": sub.score,
                    "max_score": sub.max_score,
                    "late_penalty": sub.late_submission_penalty,
                    "timestamp": sub.timestamp.isoformat() if sub.timestamp else "",
                    "status": result.status if result else "graded by nbgrader",
                    "manual_grading": NEEDS_MANUAL if sub.needs_manual_grade else "done",
                    "sandboxed": "unknown" if result is None else "yes" if result.sandboxed else "NO",
                    "notes": "; ".join(n for n in said if n),
                    **({"record": result} if with_record else {}),
                }
            )
        max_score = gb.find_assignment(ASSIGNMENT).max_score
    in_gradebook = {r["student_id"] for r in rows}
    for marker in course.root.glob(f"autograded/*/{ASSIGNMENT}/{MARKER}"):
        student = marker.parent.parent.name
        if student in in_gradebook or not course.submitted(student).is_dir():
            continue
        result = Result.from_json(json.loads(marker.read_text()))
        rows.append(
            {
                "student_id": printable(student),  # a folder name need not be UTF-8
                "score": 0.0,
                "max_score": max_score,
                "late_penalty": 0.0,
                "timestamp": "",
                "status": result.status,
                "manual_grading": "",
                "sandboxed": "yes" if result.sandboxed else "NO",
                "notes": "; ".join(n for n in notes(result) if n),
                **({"record": result} if with_record else {}),
            }
        )
    return sorted(rows, key=lambda r: r["student_id"])
