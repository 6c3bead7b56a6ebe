"""Instructor commands: release, autograde (sandboxed, parallel, resumable), feedback, grades.

    python -m tinytorch_course.grading release              # nbgrader generate_assignment + dist/student/
    python -m tinytorch_course.grading autograde [--workers N] [--force] [--unsandboxed] [--scheduler tcp://host:port]
    python -m tinytorch_course.grading feedback
    python -m tinytorch_course.grading grades [--lms canvas --roster canvas-export.csv]

A submission's path: `course.py` (where it is), `pipeline.py` (nbgrader's preprocessors, ours
included), `sandbox.py` (its kernel in bubblewrap), `judge.py` (the verdicts, outside the kernel),
`batch.py` (the worker pool and the single gradebook writer), and this command line.
"""
import argparse
import csv
import json
import signal
import sys

from nbgrader.api import Gradebook

from .batch import MARKER, UNSANDBOXED, autograde
from .course import ASSIGNMENT, NOTEBOOK, Course

COLUMNS = ["student_id", "score", "max_score", "late_penalty", "timestamp", "status", "manual_grading", "sandboxed",
           "notes"]
NEEDS_MANUAL = "needs manual grading"


def feedback(course: Course) -> list:
    "feedback/<student>/07_optimizers/optimizers.html for every autograded submission."
    course.tool("nbgrader", "generate_feedback", ASSIGNMENT, "--force")
    return sorted(course.root.glob(f"feedback/*/{ASSIGNMENT}/{NOTEBOOK}.html"))


def grade_rows(course: Course, with_record: bool = False) -> list:
    """One row per submission in the gradebook; `with_record` adds `record`, its grading record
    (autograded/<student>/07_optimizers/grading.json: status, events, each check's verdict)."""
    rows = []
    with Gradebook(course.db_url, course.course_id) as gb:
        for sub in gb.assignment_submissions(ASSIGNMENT):
            marker = course.autograded(sub.student_id) / MARKER
            info = json.loads(marker.read_text()) if marker.exists() else {}
            sandboxed = info.get("sandboxed", None)
            notes = [info.get("reason") or "; ".join(info.get("events", []))]
            if sandboxed is False:
                notes.insert(0, UNSANDBOXED)
            rows.append({"student_id": sub.student_id, "score": sub.score, "max_score": sub.max_score,
                         "late_penalty": sub.late_submission_penalty,
                         "timestamp": sub.timestamp.isoformat() if sub.timestamp else "",
                         "status": info.get("status", "graded by nbgrader"),
                         "manual_grading": NEEDS_MANUAL if sub.needs_manual_grade else "done",
                         "sandboxed": {True: "yes", False: "NO"}.get(sandboxed, "unknown"),
                         "notes": "; ".join(n for n in notes if n), **({"record": info} if with_record else {})})
    return sorted(rows, key=lambda r: r["student_id"])


def grades(course: Course, path: str = "grades.csv") -> list:
    rows = grade_rows(course)
    with open(course.root / path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def print_table(rows: list) -> None:
    print(f"\n{'student':22s} {'score':>7s}  status / notes")
    for r in rows:
        manual = f" ({NEEDS_MANUAL})" if r["manual_grading"] == NEEDS_MANUAL else ""
        print(f"{r['student_id']:22s} {r['score']:5.1f}/{r['max_score']:.0f}  {r['status']}{manual}"
              + (f": {r['notes'][:80]}" if r["notes"] else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinytorch_course.grading", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("release", help="generate the student version and build dist/student/")
    auto = sub.add_parser("autograde", help="grade every submitted/<student>/07_optimizers/")
    auto.add_argument("--workers", type=int, default=0, help="parallel notebooks (default: number of cores)")
    auto.add_argument("--force", action="store_true", help="regrade submissions already graded")
    auto.add_argument("--memory-gib", type=float, default=4.0, help="address-space limit of each notebook's kernel")
    auto.add_argument("--unsandboxed", action="store_true",
                      help="grade without bubblewrap (unsafe: student code can reach the course folder); "
                           "every row of grades.csv says so")
    auto.add_argument("--scheduler", default=None,
                      help="grade on a Dask cluster: the scheduler's address, e.g. tcp://host:8786")
    sub.add_parser("feedback", help="HTML feedback for every graded submission")
    gr = sub.add_parser("grades", help="write grades.csv and print the table")
    gr.add_argument("--lms", choices=["canvas"], help="also write the LMS's import file (grades-canvas.csv)")
    gr.add_argument("--roster", help="the LMS's roster export (for Canvas: its gradebook export CSV)")
    gr.add_argument("--column", default=ASSIGNMENT, help="the LMS's assignment column name")
    gr.add_argument("--match", default="SIS Login ID", help="the roster column holding nbgrader's student ids")
    args = parser.parse_args(argv)
    course = Course(".")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed batch still stops its workers
    if args.command == "release":
        from .student_repo import release
        print(f"student repository: {release(course)}")
    elif args.command == "autograde":
        from .sandbox import SandboxUnavailable
        try:
            results = autograde(course, args.workers, args.force, args.memory_gib, sandbox=not args.unsandboxed,
                                scheduler=args.scheduler)
        except SandboxUnavailable as exc:
            print(f"make autograde refuses to grade: {exc}", file=sys.stderr)
            return 2
        print(f"{len(results)} submissions: " + ", ".join(f"{n} {s}" for s, n in _count(results.values())))
    elif args.command == "feedback":
        print(f"{len(feedback(course))} feedback files under feedback/")
    elif args.command == "grades":
        rows = grades(course)
        print_table(rows)
        print("\nwritten: grades.csv")
        if args.lms == "canvas":
            from .lms import canvas_csv, report
            if not args.roster:
                parser.error("--lms canvas needs --roster (Canvas: Grades > Export, as CSV)")
            out = course.root / "grades-canvas.csv"
            print(report(canvas_csv(rows, args.roster, out, args.column, args.match), out))
    return 0


def _count(values) -> list:
    from collections import Counter
    return sorted(Counter(values).items())


if __name__ == "__main__":
    sys.exit(main())
