"""A real PostgreSQL gradebook: the test starts its own server (initdb + pg_ctl, on a Unix socket in a
temporary folder, no TCP), and runs release -> autograde -> feedback -> grades with
`c.CourseDirectory.db_url` pointing at it. Grades equal a sqlite run of the same submissions, and two
`autograde` batches grading different submissions (two graders' folders) at once against the same
database lose nothing and double nothing."""

import csv
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import ASSIGNMENT, NOTEBOOK, released_course, tool_env
from tinytorch_course.examples.build import write_submission
from tinytorch_course.grading.course import Course

pytestmark = pytest.mark.slow
SECTIONS = {"a": ["ana", "ben", "cai"], "b": ["dee", "eli", "fay"]}
EXAMPLE = {
    "ana": "reference",
    "ben": "adam-no-bias-correction",
    "cai": "blank",
    "dee": "plain-whole-arrays",
    "eli": "sgd-slice-assign-0d",
    "fay": "estimate-total-without-grads",
}


def server_binaries() -> Path:
    "The folder of initdb and pg_ctl (Debian keeps them in /usr/lib/postgresql/<version>/bin)."
    found = shutil.which("initdb") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)), None
    )
    assert found, "PostgreSQL's server is missing: apt-get install -y postgresql (make test installs it)"
    return Path(found).resolve().parent  # (a symlink on PATH may be a wrapper of postgresql-common)


@pytest.fixture(scope="module")
def postgres():
    "A PostgreSQL server of our own; yields its SQLAlchemy URL (psycopg 3, Unix socket only)."
    bindir, base = server_binaries(), Path(tempfile.mkdtemp(prefix="tinytorch-pg-"))
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: use the account Debian's package creates
        account = pwd.getpwnam("postgres")
        os.chown(base, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    run = lambda *args: subprocess.run(as_user + [str(a) for a in args], check=True, capture_output=True, text=True)
    run(bindir / "initdb", "-D", base / "data", "-U", "grader", "--auth=trust", "-E", "UTF8")
    run(
        bindir / "pg_ctl",
        "-D",
        base / "data",
        "-l",
        base / "server.log",
        "-w",
        "-o",
        f"-k {base} -c listen_addresses='' -c max_connections=50",
        "start",
    )
    try:
        run(bindir / "createdb", "-h", base, "-U", "grader", "gradebook")
        yield f"postgresql+psycopg://grader@/gradebook?host={base}"
    finally:
        run(bindir / "pg_ctl", "-D", base / "data", "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def grading(course_root, *args, wait=True):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinytorch_course.cli", *args],
        cwd=course_root,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if wait:
        out, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, out[-3000:]
    return proc


def section(dest, students, db_url=None) -> Course:
    course = released_course(dest, db_url=db_url)
    for student in students:
        write_submission(course.root, student, EXAMPLE[student])
    return course


def scores(course) -> dict:
    "{student: (score, {cell: score})} from the course's gradebook."
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, course.course_id) as gb:
        return {
            s.student_id: (
                round(s.score, 6),
                {
                    g.name: round(g.score, 6)
                    for g in gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, s.student_id).grades
                },
            )
            for s in gb.assignment_submissions(ASSIGNMENT)
        }


def test_postgres_gradebook_matches_sqlite_with_two_batches_at_once(postgres, tmp_path):
    everyone = SECTIONS["a"] + SECTIONS["b"]
    lite = section(tmp_path / "sqlite", everyone)
    grading(lite.root, "autograde", "--workers", "2")

    a, b = (section(tmp_path / name, SECTIONS[name], postgres) for name in "ab")
    assert a.db_url.startswith("postgresql+psycopg://")
    running = [grading(course.root, "autograde", "--workers", "1", wait=False) for course in (a, b)]
    for proc in running:  # both batches write the same database at the same time
        out, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, out[-3000:]

    on_postgres = scores(a)
    assert sorted(on_postgres) == sorted(everyone), "every submission once: none lost, none doubled"
    assert on_postgres == scores(lite), "the same grades, cell by cell, as sqlite"

    grading(a.root, "feedback")
    assert (
        sorted(p.parent.parent.name for p in a.root.glob(f"feedback/*/{ASSIGNMENT}/{NOTEBOOK}.html")) == SECTIONS["a"]
    )
    grading(a.root, "grades")
    with open(a.root / "grades.csv", newline="") as f:
        rows = {r["student_id"]: float(r["score"]) for r in csv.DictReader(f)}
    assert rows == pytest.approx({student: score for student, (score, _) in on_postgres.items()}, abs=1e-6)
