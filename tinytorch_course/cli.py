"""The instructor's command line (the Makefile's release, autograde, feedback, grades and report call it).

    python -m tinytorch_course.cli release              # nbgrader generate_assignment + dist/student/
    python -m tinytorch_course.cli collect --lms canvas --zip submissions.zip --roster canvas-export.csv
    python -m tinytorch_course.cli collect [--policy latest-before-due]   # from the hand-in service
    python -m tinytorch_course.cli autograde [--workers N] [--force] [--unsandboxed] [--scheduler tcp://host:port]
    python -m tinytorch_course.cli feedback
    python -m tinytorch_course.cli grades [--lms canvas --roster canvas-export.csv]
    python -m tinytorch_course.cli report
    python -m tinytorch_course.cli serve [--port 8900] [--engine dask --scheduler tcp://host:8786]
    python -m tinytorch_course.cli tokens --roster canvas-export.csv [--replace S] [--revoke S] [--instructor NAME]
    python -m tinytorch_course.cli publish --url https://handin.example.edu --token-file instructor-token.txt

A submission's path is in `grading/` (see its package docstring); what instructors read after it, in `results/`.
"""

import argparse
import signal
import sys

from .grading.autograde import autograde
from .grading.course import ASSIGNMENT, NOTEBOOK, Course
from .grading.record import COLUMNS, NEEDS_MANUAL, grade_rows
from .grading.sandbox import LIMITS
from .results.spreadsheet import write_rows


def feedback(course: Course) -> list:
    "feedback/<student>/07_optimizers/optimizers.html for every autograded submission."
    course.tool("nbgrader", "generate_feedback", ASSIGNMENT, "--force")
    return sorted(course.root.glob(f"feedback/*/{ASSIGNMENT}/{NOTEBOOK}.html"))


def grades(course: Course, path: str = "grades.csv") -> list:
    "grades.csv at the course root (no cell can start a spreadsheet formula); the rows, for the table."
    rows = grade_rows(course)
    write_rows(course.root / path, COLUMNS, [[r[c] for c in COLUMNS] for r in rows])
    return rows


def print_table(rows: list) -> None:
    print(f"\n{'student':22s} {'score':>7s}  status / notes")
    for r in rows:
        manual = f" ({NEEDS_MANUAL})" if r["manual_grading"] == NEEDS_MANUAL else ""
        print(
            f"{r['student_id']:22s} {r['score']:5.1f}/{r['max_score']:.0f}  {r['status']}{manual}"
            + (f": {r['notes'][:80]}" if r["notes"] else "")
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinytorch_course.cli", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("release", help="generate the student version and build dist/student/")
    col = sub.add_parser("collect", help="submissions into submitted/: from the hand-in service, or an LMS's archive")
    col.add_argument("--lms", choices=["canvas"], help="whose archive it is (without it: the hand-in service)")
    col.add_argument("--zip", help="Canvas: the assignment's Download Submissions archive")
    col.add_argument("--roster", help="Canvas: its gradebook export (CSV), to match students")
    col.add_argument("--match", default="SIS Login ID", help="the roster column holding nbgrader's student ids")
    col.add_argument("--policy", default="latest-before-due", help="service: which hand-in is of record")
    col.add_argument("--db-url", default=None, help="service: its database (default: DB_URL, else handin.db)")
    auto = sub.add_parser("autograde", help="grade every submitted/<student>/07_optimizers/")
    auto.add_argument("--workers", type=int, default=0, help="parallel notebooks (default: number of cores)")
    auto.add_argument("--force", action="store_true", help="regrade submissions already graded")
    auto.add_argument(
        "--memory-gib", type=float, default=LIMITS["as"] / 2**30, help="address-space limit of each notebook's kernel"
    )
    auto.add_argument(
        "--unsandboxed",
        action="store_true",
        help="grade without bubblewrap (unsafe: student code can reach the course folder); "
        "every row of grades.csv says so",
    )
    auto.add_argument(
        "--no-cgroups",
        action="store_true",
        help="grade without a control group per sandbox (its processes then share no memory, CPU or process "
        "limit; as a non-root grader, where cgroups cannot be made); every row of grades.csv says so",
    )
    auto.add_argument(
        "--scheduler", default=None, help="grade on a Dask cluster: the scheduler's address, e.g. tcp://host:8786"
    )
    sub.add_parser("feedback", help="HTML feedback for every graded submission")
    gr = sub.add_parser("grades", help="write grades.csv and print the table")
    gr.add_argument("--lms", choices=["canvas"], help="also write the LMS's import file (grades-canvas.csv)")
    gr.add_argument("--roster", help="the LMS's roster export (for Canvas: its gradebook export CSV)")
    gr.add_argument("--column", default=ASSIGNMENT, help="the LMS's assignment column name")
    gr.add_argument("--match", default="SIS Login ID", help="the roster column holding nbgrader's student ids")
    sub.add_parser("report", help="report.html: what the class got wrong, who needs a person")
    sub.add_parser("serve", help="the hand-in service (see python -m tinytorch_course.service --help)", add_help=False)
    tok = sub.add_parser("tokens", help="hand-in tokens: one per roster student, revoke, replace, instructor")
    tok.add_argument("--roster", help="Canvas's gradebook export (CSV): a token for each student without one")
    tok.add_argument("--match", default="SIS Login ID", help="the roster column holding nbgrader's student ids")
    tok.add_argument("--replace", action="append", default=[], help="revoke this student's token and issue a new one")
    tok.add_argument("--revoke", action="append", default=[], help="revoke this person's token")
    tok.add_argument("--instructor", action="append", default=[], help="issue an instructor token (status page)")
    tok.add_argument("--db-url", default=None, help="the service's database (default: DB_URL, else handin.db)")
    pub = sub.add_parser("publish", help="publish feedback/ to the hand-in service, each page for its student only")
    pub.add_argument("--url", required=True, help="the hand-in service, e.g. https://handin.example.edu")
    pub.add_argument("--token-file", required=True, help="a file holding an instructor token")
    pub.add_argument("--student", action="append", default=[], help="only these students")
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["serve"]:
        from .service.serve import main as serve

        return serve(argv[1:])
    args = parser.parse_args(argv)
    course = Course(".")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed batch still stops its workers
    if args.command == "release":
        from .release import release

        print(f"student repository: {release(course)}")
    elif args.command == "collect" and args.lms == "canvas":
        from .lms.collect import collect_canvas, describe

        if not (args.zip and args.roster):
            parser.error("--lms canvas needs --zip (Download Submissions) and --roster (its gradebook export)")
        print(describe(collect_canvas(course, args.zip, args.roster, args.match)))
    elif args.command == "collect":
        from .service.collect import collect_service, describe
        from .service.settings import HandInService, store_url
        from .service.store import Store

        store = Store(store_url(course, args.db_url), HandInService(config=course.config))
        print(describe(collect_service(course, store, args.policy)))
    elif args.command == "tokens":
        from .service.admin import describe_tokens, tokens
        from .service.settings import HandInService, store_url
        from .service.store import Store

        store = Store(store_url(course, args.db_url), HandInService(config=course.config))
        print(
            describe_tokens(tokens(store, course, args.roster, args.match, args.replace, args.revoke, args.instructor))
        )
    elif args.command == "publish":
        from .service.admin import describe_publish, publish, read_token

        print(describe_publish(publish(course, args.url, read_token(args.token_file), args.student)))
    elif args.command == "autograde":
        from .grading.sandbox import SandboxUnavailable

        try:
            results = autograde(
                course,
                args.workers,
                args.force,
                int(args.memory_gib * 2**30),
                sandbox=not args.unsandboxed,
                scheduler=args.scheduler,
                cgroups=not args.no_cgroups,
            )
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
            from .lms.canvas import canvas_csv, report

            if not args.roster:
                parser.error("--lms canvas needs --roster (Canvas: Grades > Export, as CSV)")
            out = course.root / "grades-canvas.csv"
            print(report(canvas_csv(rows, args.roster, out, args.column, args.match), out))
    elif args.command == "report":
        from .results.class_report import write_report

        print(f"written: {write_report(course)}")
    return 0


def _count(values) -> list:
    from collections import Counter

    return sorted(Counter(values).items())


if __name__ == "__main__":
    sys.exit(main())
