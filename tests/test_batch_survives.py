"""No submission can stop a batch or cost another student their grade (`make autograde`).

What a student controls (their folder's name, the files in it, `timestamp.txt`) is read defensively
before the gradebook's single writer sees it, and whatever recording one submission raises becomes
that student's error with a reason. Bad students sit first, in the middle and last of a real batch;
everyone else is graded, every bad one has a row in grades.csv that says why, and a rerun does too.
"""

import csv
import io
import os
import subprocess
import sys

import pytest

from helpers import AUTO, released_course, tool_env
from tinytorch_course.examples.build import write_submission
from tinytorch_course.grading import record as writer
from tinytorch_course.grading.autograde import autograde
from tinytorch_course.grading.record import grade_rows

pytestmark = pytest.mark.slow

FORMULA = "=SUM(2,3)"  # graded: only a spreadsheet reads it as a formula, and grades.csv quotes it
HYPERLINK = '=HYPERLINK("x.example","open")'  # its quotes would be markup in formgrader: refused, listed
BAD_TIME = "not a time"
# Sorted as the batch takes them: a bad timestamp first, in the middle and last.
STUDENTS = {
    FORMULA: ("reference", None),
    HYPERLINK: ("reference", None),
    "aa-not-a-time": ("reference", BAD_TIME),
    "bob": ("reference", None),
    "mm-no-notebook-not-a-time": (None, BAD_TIME),
    "mm-overflow": ("reference", "9" * 30),
    "zz-bad-bytes": (None, None),  # a file whose name is not UTF-8, quoted in the reason
    "zz-past-9999": ("reference", "9999-12-31 23:59:59 -1200"),
}


def cli(course, *args):
    return subprocess.run(
        [sys.executable, "-m", "tinytorch_course.cli", *args],
        cwd=course.root,
        env=tool_env(),
        capture_output=True,
        text=True,
    )


def submit(course, student, name, stamp):
    folder = course.submitted(student)
    if name is None:
        folder.mkdir(parents=True)
    else:
        write_submission(course.root, student, name)
    if stamp is not None:
        (folder / "timestamp.txt").write_text(stamp + "\n")


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    course = released_course(tmp_path_factory.mktemp("survives"), timeout=20)
    for student, (name, stamp) in STUDENTS.items():
        submit(course, student, name, stamp)
    (course.submitted("zz-bad-bytes") / os.fsdecode(b"notes-\xff.txt")).write_text("my notes\n")
    runs = [cli(course, "autograde", "--workers", "2")]
    graded = cli(course, "grades")
    with open(course.root / "grades.csv", newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    runs.append(cli(course, "autograde", "--workers", "2"))  # a rerun finds the same students
    return {
        "course": course,
        "runs": runs,
        "grades": graded,
        "rows": rows,
        "raw": (course.root / "grades.csv").read_text(),
        "rerun_rows": {r["student_id"]: r for r in grade_rows(course)},
        "feedback": cli(course, "feedback"),
        "report": cli(course, "report"),
    }


def row(batch, student):
    return batch["rows"]["'" + student if student.startswith("=") else student]


def test_the_batch_and_its_rerun_finish(batch):
    for run in batch["runs"]:
        assert run.returncode == 0, run.stderr[-3000:]
    assert batch["grades"].returncode == 0, batch["grades"].stderr[-3000:]
    assert batch["feedback"].returncode == 0, batch["feedback"].stderr[-3000:]
    assert batch["report"].returncode == 0, batch["report"].stderr[-3000:]
    assert len(batch["rows"]) == len(STUDENTS), sorted(batch["rows"])


@pytest.mark.parametrize("student", ["aa-not-a-time", "mm-overflow", "zz-past-9999"])
def test_a_bad_timestamp_is_ignored_and_said(batch, student):
    r = row(batch, student)
    assert float(r["score"]) == AUTO, r
    assert r["timestamp"] == "" and float(r["late_penalty"]) == 0, r
    assert "which is not a time: it was ignored, so no late penalty applies" in r["notes"], r


def test_everyone_else_is_graded(batch):
    for student in ("bob", FORMULA):
        r = row(batch, student)
        assert float(r["score"]) == AUTO and r["status"] == "graded" and "timestamp" not in r["notes"], r
    assert row(batch, "bob")["timestamp"] == "2026-11-20T12:00:00", "a good timestamp is still read"


def test_a_bad_timestamp_without_a_notebook(batch):
    r = row(batch, "mm-no-notebook-not-a-time")
    assert r["status"] == "missing" and float(r["score"]) == 0, r
    assert "No optimizers.ipynb was submitted" in r["notes"] and "'not a time', which is not a time" in r["notes"], r


def test_a_file_name_that_is_not_utf8(batch):
    r = row(batch, "zz-bad-bytes")
    assert r["status"] == "missing" and "notes-\\udcff.txt" in r["notes"], r


def test_formula_ids_are_neutralised_in_grades_csv(batch):
    ids = [cells[0] for cells in csv.reader(io.StringIO(batch["raw"]))]
    assert "'" + FORMULA in ids and "'" + HYPERLINK in ids, ids
    assert not [i for i in ids if i.startswith(("=", "@", "+", "-"))], ids


def test_an_id_that_is_markup_in_formgrader_is_refused_not_stored(batch):
    from nbgrader.api import Gradebook

    r = row(batch, HYPERLINK)
    assert r["status"] == "error" and float(r["score"]) == 0, r
    assert "cannot be a student id" in r["notes"] and "'\"'" in r["notes"], r
    course = batch["course"]
    with Gradebook(course.db_url, course.course_id) as gb:
        assert HYPERLINK not in {s.id for s in gb.students}
        assert FORMULA in {s.id for s in gb.students}
    assert batch["rerun_rows"][HYPERLINK]["status"] == "error", "the rerun lists it again"


def test_the_class_report_lists_bad_timestamps(batch):
    from tinytorch_course.results.class_report import collect, summarize

    people = dict(summarize(collect(batch["course"]))["attention"])
    assert "timestamp.txt is not a time" in people["mm-overflow"], people
    assert "not graded (error)" in people[HYPERLINK]


BROKEN = {"a-first": "always", "m-middle": "graded", "z-last": "always"}  # when recording them raises


def test_whatever_recording_raises_costs_only_that_student(tmp_path, monkeypatch):
    """Recording one student raises (first, middle, last in the batch): they get an error with the
    reason, in the gradebook when their error can be recorded there and in grades.csv either way."""
    course = released_course(tmp_path)
    for student in ["a-first", "b", "m-middle", "n", "z-last"]:
        write_submission(course.root, student, "reference")
    real = writer._record

    def flaky(course, result, fp):
        how = BROKEN.get(result.student)
        if how == "always" or (how == "graded" and result.graded):
            raise RuntimeError(f"boom for {result.student}")
        return real(course, result, fp)

    monkeypatch.setattr(writer, "_record", flaky)
    statuses = autograde(course, workers=2, progress=False)
    assert statuses == {"a-first": "error", "b": "graded", "m-middle": "error", "n": "graded", "z-last": "error"}
    rows = {r["student_id"]: r for r in grade_rows(course)}
    assert rows["b"]["score"] == AUTO and rows["n"]["score"] == AUTO
    for student in BROKEN:
        assert rows[student]["status"] == "error" and rows[student]["score"] == 0, rows[student]
        assert f"could not record this submission (RuntimeError: boom for {student})" in rows[student]["notes"]
    monkeypatch.setattr(writer, "_record", real)
    assert autograde(course, workers=2, progress=False) == {
        "a-first": "graded",
        "b": "already graded",
        "m-middle": "graded",
        "n": "already graded",
        "z-last": "graded",
    }, "a rerun grades the students whose recording failed"
