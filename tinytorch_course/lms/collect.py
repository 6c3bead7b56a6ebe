"""Intake from Canvas: its "Download Submissions" archive into `submitted/`, through nbgrader's `zip_collect`.

    make collect LMS=canvas ZIP=submissions.zip ROSTER=canvas-export.csv

Canvas names each file in the archive `<name>_[LATE_]<Canvas user id>_<attachment id>_<file name>`
(Canvas's ContentZipper: the student's sortable name lower-cased and stripped to word characters,
`LATE` when Canvas marked the submission late, the file name as uploaded, which Canvas suffixes
with `-1`, `-2`, ... when a student re-uploads a file of the same name). nbgrader's `zip_collect`
unpacks the archive (its extractor) and asks a collector plugin, `CanvasCollector` here, which file
belongs to whom. The collector matches the Canvas user id to the roster (Canvas's gradebook export,
as for `make grades LMS=canvas`), takes only regular files that are the module's notebook, keeps a
student's newest upload when there are several, and says what it did not take and why.

Canvas's names say whether a submission was late, not when it came. When the assignment has a due
date in the gradebook, `timestamp.txt` records Canvas's verdict as the due date (on time) or one second
past it (late), so nbgrader's late flag agrees with Canvas; without a due date no timestamp is written
and the late ones are listed.
"""

import datetime
import json
import os
import re
import shutil
from pathlib import Path

from nbgrader.plugins import FileNameCollectorPlugin
from traitlets import Unicode

from ..grading.course import ASSIGNMENT, NOTEBOOK, Course
from .canvas import roster_ids

CANVAS_NAME = re.compile(r"^(?P<name>.*?)_(?:(?P<late>LATE)_)?(?P<user_id>\d+)_(?P<attachment_id>\d+)_(?P<file>.+)$")
REUPLOAD = re.compile(r"^(?P<stem>.*?)(?:-\d+)?(?P<ext>\.[^.]+)$")  # optimizers-2.ipynb -> optimizers.ipynb
SAFE_ID = re.compile(r"^[A-Za-z0-9@][A-Za-z0-9@._+-]{0,99}$")  # a student id that is one plain folder name


def parse(name: str) -> dict | None:
    "The parts of a file name from Canvas's archive, or None when it is not one."
    match = CANVAS_NAME.match(name)
    if not match:
        return None
    parts = match.groupdict()
    plain = REUPLOAD.match(parts["file"])
    parts["original"] = plain["stem"] + plain["ext"] if plain else parts["file"]
    return parts


class CanvasCollector(FileNameCollectorPlugin):
    "nbgrader's collector plugin for Canvas's submission archive (see the module docstring)."

    roster = Unicode("", help="Canvas's gradebook export (CSV): Canvas user ids to student ids.").tag(config=True)
    match = Unicode("SIS Login ID", help="The roster column that holds nbgrader's student ids.").tag(config=True)
    report = Unicode("", help="Where to write, as JSON, what was collected and what was not.").tag(config=True)

    def collect(self, submitted_file: str):
        if not hasattr(self, "_found"):
            self._found = {
                "collected": {},
                "late": [],
                "unknown_user": [],
                "not_the_notebook": [],
                "not_canvas": [],
                "not_a_file": [],
                "unsafe_id": [],
                "superseded": [],
            }
            self._ids = roster_ids(self.roster, self.match)
            self._due = self._due_date()
        path, name = Path(submitted_file), os.path.basename(submitted_file)
        parts = parse(name)
        why = (
            "not_a_file"
            if path.is_symlink() or not path.is_file()
            else "not_canvas"
            if parts is None
            else "not_the_notebook"
            if parts["original"] != f"{NOTEBOOK}.ipynb"
            else "unknown_user"
            if parts["user_id"] not in self._ids
            else "unsafe_id"
            if not SAFE_ID.match(self._ids[parts["user_id"]])
            else "superseded"
            if self._newer_upload(path, parts)
            else None
        )
        if why:
            self._found[why].append(name if why != "unknown_user" else f"{name} (Canvas user {parts['user_id']})")
            self._write()
            return None
        student = self._ids[parts["user_id"]]
        self._found["collected"][student] = name
        if parts["late"]:
            self._found["late"].append(student)
        self._write()
        info = {"student_id": student, "file_id": f"{NOTEBOOK}.ipynb"}
        if self._due is not None:
            info["timestamp"] = self._due + datetime.timedelta(seconds=1 if parts["late"] else 0)
        return info

    def _newer_upload(self, path: Path, parts: dict) -> bool:
        "Whether the same student has a later upload of the notebook beside this one (Canvas's ids grow)."
        for other in path.parent.iterdir():
            theirs = parse(other.name)
            if (
                theirs
                and theirs["user_id"] == parts["user_id"]
                and theirs["original"] == parts["original"]
                and int(theirs["attachment_id"]) > int(parts["attachment_id"])
            ):
                return True
        return False

    def _due_date(self):
        from nbgrader.api import Gradebook, MissingEntry

        try:
            with Gradebook(self.parent.coursedir.db_url, self.parent.coursedir.course_id) as gb:
                return gb.find_assignment(ASSIGNMENT).duedate
        except MissingEntry:
            return None

    def _write(self):
        if self.report:
            Path(self.report).write_text(json.dumps(self._found, indent=1))


def collect_canvas(course: Course, archive, roster, match: str = "SIS Login ID") -> dict:
    "Collect Canvas's archive into submitted/ with nbgrader's zip_collect; return what was and was not taken."
    downloaded = course.root / "downloaded" / ASSIGNMENT
    shutil.rmtree(downloaded, ignore_errors=True)
    (downloaded / "archive").mkdir(parents=True)
    shutil.copy(archive, downloaded / "archive" / Path(archive).name)
    report = downloaded / "collect.json"
    course.tool(
        "nbgrader",
        "zip_collect",
        ASSIGNMENT,
        "--force",
        f"--collector={__name__}.CanvasCollector",
        f"--CanvasCollector.roster={Path(roster).resolve()}",
        f"--CanvasCollector.match={match}",
        f"--CanvasCollector.report={report}",
    )
    return json.loads(report.read_text()) if report.exists() else {"collected": {}}


def describe(found: dict) -> str:
    "What the instructor must look at, one line per group."
    lines = [f"collected {len(found.get('collected', {}))} submissions into submitted/"]
    for key, what in [
        ("late", "marked LATE by Canvas"),
        ("unknown_user", "from a Canvas user not on the roster (not collected)"),
        ("unsafe_id", "whose roster id is not a plain folder name (not collected)"),
        ("not_the_notebook", f"files that are not {NOTEBOOK}.ipynb (not collected)"),
        ("superseded", "older uploads replaced by the same student's newer one"),
        ("not_canvas", "files not named as Canvas names them (not collected)"),
        ("not_a_file", "links or other non-files (not collected)"),
    ]:
        if found.get(key):
            lines.append(f"{len(found[key])} {what}: {', '.join(found[key])}")
    return "\n".join(lines)
