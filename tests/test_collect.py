"""`make collect LMS=canvas`: Canvas's Download Submissions archive into submitted/, through nbgrader's zip_collect.

The archive is named as Canvas's ContentZipper names it, with an on-time and a late submission, a
re-upload (Canvas suffixes the file name) beside the older upload, an unknown Canvas user and a file
that is not the notebook; the roster is Canvas's gradebook export with its manual-posting row and test student.
"""

import csv
import datetime
import json
import subprocess
import sys
import zipfile

import pytest

from helpers import ASSIGNMENT, NOTEBOOK, released_course, tool_env
from tinytorch_course.examples.build import build

pytestmark = pytest.mark.slow
DUE = datetime.datetime(2026, 11, 20, 12, 0, 0)
ROSTER = [
    ["Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Section", "07 Optimizers (102)"],
    ["", "", "", "", "", "", "Manual Posting"],
    ["    Points Possible", "", "", "", "", "", "100.00"],
    ["Lovelace, Ada", "1001", "S1", "ada", "i1", "A", ""],
    ["Hopper, Grace", "1002", "S2", "grace", "i2", "A", ""],
    ["Turing, Alan", "1003", "S3", "alan", "i3", "B", ""],
    ["Student, Test", "9999", "", "teststudent", "", "A", ""],
]


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("collect")
    course = released_course(tmp / "course")
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, course.course_id) as gb:
        gb.update_or_create_assignment(ASSIGNMENT, duedate=DUE)
    reference, blank = build("reference", course.root), build("blank", course.root)
    archive = tmp / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("lovelaceada_1001_5551_optimizers.ipynb", reference)
        z.writestr("lovelaceada_1001_5552_notes.txt", "my notes")
        z.writestr("hoppergrace_LATE_1002_5560_optimizers.ipynb", reference)
        z.writestr("turingalan_1003_5570_optimizers.ipynb", blank)  # the first upload
        z.writestr("turingalan_1003_5601_optimizers-1.ipynb", reference)  # the re-upload: Canvas renames it
        z.writestr("mysteryuser_7777_5580_optimizers.ipynb", reference)  # not on the roster
    roster = tmp / "canvas-export.csv"
    with open(roster, "w", newline="", encoding="utf-8-sig") as f:
        csv.writer(f).writerows(ROSTER)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tinytorch_course.cli",
            "collect",
            "--lms",
            "canvas",
            "--zip",
            str(archive),
            "--roster",
            str(roster),
        ],
        cwd=course.root,
        env=tool_env(),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return {"course": course, "stdout": run.stdout, "reference": reference, "blank": blank}


def submitted(collected, student):
    return collected["course"].submitted(student)


def test_each_roster_student_gets_their_notebook(collected):
    for student in ("ada", "grace", "alan"):
        assert (submitted(collected, student) / f"{NOTEBOOK}.ipynb").read_bytes() == collected["reference"], student
        assert sorted(p.name for p in submitted(collected, student).iterdir()) == [f"{NOTEBOOK}.ipynb", "timestamp.txt"]


def test_the_newest_upload_wins(collected):
    assert (submitted(collected, "alan") / f"{NOTEBOOK}.ipynb").read_bytes() != collected["blank"]
    assert "older uploads replaced by the same student's newer one: turingalan_1003_5570" in collected["stdout"]


def test_canvas_late_mark_becomes_nbgrader_lateness(collected):
    on_time = (submitted(collected, "ada") / "timestamp.txt").read_text()
    late = (submitted(collected, "grace") / "timestamp.txt").read_text()
    assert on_time.startswith("2026-11-20 12:00:00") and late.startswith("2026-11-20 12:00:01")
    assert "1 marked LATE by Canvas: grace" in collected["stdout"]


def test_nobody_is_dropped_silently(collected):
    out = collected["stdout"]
    assert "collected 3 submissions" in out
    assert (
        "1 from a Canvas user not on the roster (not collected): "
        "mysteryuser_7777_5580_optimizers.ipynb (Canvas user 7777)" in out
    )
    assert "1 files that are not optimizers.ipynb (not collected): lovelaceada_1001_5552_notes.txt" in out
    folders = sorted(p.name for p in (collected["course"].root / "submitted").iterdir())
    assert folders == ["ada", "alan", "grace"], "nothing for the unknown user or the test student"
    report = json.loads((collected["course"].root / "downloaded" / ASSIGNMENT / "collect.json").read_text())
    assert set(report["collected"]) == {"ada", "alan", "grace"}
