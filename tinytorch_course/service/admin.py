"""The instructor's side of the hand-in service: tokens from the roster, and feedback published to it.

    make tokens ROSTER=canvas-export.csv                 # a token for each roster student who has none
    make tokens ROSTER=canvas-export.csv ARGS="--replace ada"   # revoke ada's token, issue a new one
    make tokens ARGS="--revoke ada"                      # revoke only
    make tokens ARGS="--instructor alice"                # an instructor token, for the status page
    make publish URL=https://handin.example.edu TOKEN_FILE=instructor-token.txt

A token exists in plain text only once: in the file `make tokens` writes (`handin-tokens-<time>.csv`,
readable by its owner only), for the instructor to hand out; the store keeps its hash. `make publish`
sends each `feedback/<student>/07_optimizers/optimizers.html` to the service, where only that
student's token can fetch it; nothing of it is served before.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from ..grading.course import ASSIGNMENT, NOTEBOOK, Course
from .store import INSTRUCTOR, PERSON, STUDENT, Store


def tokens(
    store: Store,
    course: Course,
    roster: str | None = None,
    match: str = "SIS Login ID",
    replace=(),
    revoke=(),
    instructors=(),
) -> dict:
    """Issue tokens: one for each roster student without a live one, new ones for `replace`, instructor
    ones for `instructors`; revoke `revoke`. Writes the new tokens to a file; returns what it did."""
    done = {"issued": [], "replaced": [], "revoked": [], "kept": [], "refused": [], "file": None}
    for person in revoke:
        if store.revoke(person):
            done["revoked"].append(person)
    live = store.people()
    rows = []
    if roster:
        from ..lms.canvas import read_canvas

        identity, _, _, students = read_canvas(roster)
        if match not in identity:
            raise ValueError(f"the roster has no {match!r} column to match students by")
        for person in students:
            student = person[match].strip()
            if not PERSON.match(student):
                done["refused"].append(student or _display_name(person))
            elif student in live and student not in replace:
                done["kept"].append(student)
            else:
                rows.append([student, _display_name(person), store.issue(student, STUDENT), STUDENT])
                done["replaced" if student in live else "issued"].append(student)
    for student in replace:
        if student not in {r[0] for r in rows}:
            rows.append([student, "", store.issue(student, STUDENT), STUDENT])
            done["replaced" if student in live else "issued"].append(student)
    for person in instructors:
        rows.append([person, "", store.issue(person, INSTRUCTOR), INSTRUCTOR])
        done["issued"].append(person)
    if rows:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = course.root / f"handin-tokens-{stamp}.csv"
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["student", "name", "token", "role"])
            writer.writerows(rows)
        done["file"] = out
    return done


def _display_name(row: dict) -> str:
    return row.get("Student", "") or ", ".join(filter(None, [row.get("LastName", ""), row.get("FirstName", "")]))


def describe_tokens(done: dict) -> str:
    lines = []
    for key, what in [
        ("issued", "new tokens"),
        ("replaced", "tokens replaced (the old ones no longer work)"),
        ("revoked", "tokens revoked"),
        ("kept", "students already holding a token (kept; --replace to renew)"),
        ("refused", "roster rows whose id is not a plain student id (no token)"),
    ]:
        if done[key]:
            lines.append(f"{len(done[key])} {what}: {', '.join(done[key])}")
    if done["file"]:
        lines.append(f"written: {done['file']} (only you can read it: hand each student their own line)")
    return "\n".join(lines) or "nothing to do"


def publish(course: Course, url: str, token: str, students=None) -> dict:
    "PUT each student's feedback page to the service at `url`; {'published': [...], 'refused': {student: why}}."
    found = sorted(course.root.glob(f"feedback/*/{ASSIGNMENT}/{NOTEBOOK}.html"))
    done = {"published": [], "refused": {}}
    for page in found:
        student = page.parent.parent.name
        if students and student not in students:
            continue
        request = urllib.request.Request(
            f"{url.rstrip('/')}/api/feedback/{student}",
            data=page.read_bytes(),
            method="PUT",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/html; charset=utf-8"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60):
                done["published"].append(student)
        except urllib.error.HTTPError as exc:
            done["refused"][student] = json.loads(exc.read() or b"{}").get("error", str(exc))
    return done


def describe_publish(done: dict) -> str:
    lines = [f"published {len(done['published'])} feedback pages"]
    lines += [f"not published for {s}: {why}" for s, why in sorted(done["refused"].items())]
    return "\n".join(lines)


def read_token(path) -> str:
    return Path(path).read_text().strip()
