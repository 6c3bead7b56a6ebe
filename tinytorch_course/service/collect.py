"""The hand-in of record: from the service's store into `submitted/`, for the usual batch.

    make collect SOURCE=service [POLICY=latest-before-due|latest|best-before-due]

For each student the chosen hand-in is written to `submitted/<student>/07_optimizers/optimizers.ipynb`
(the bytes the service stored, byte for byte) with `timestamp.txt` (when the service received it), so
`make autograde`, `make feedback`, `make grades` and `make report` run unchanged and nbgrader's late
flag follows the service's clock. Policies:

- `latest-before-due` (the default): the last hand-in at or before the assignment's due date in the
  gradebook (nbgrader's `duedate`); a student who handed in only after it gets their last, late one.
  Without a due date, the last hand-in.
- `latest`: the last hand-in, whenever it came.
- `best-before-due`: the hand-in with the most autograded points at or before the due date (the later
  one on a tie), else as `latest-before-due`.

Sending the same bytes again counts as handing them in again at that time. `handins.json` at the
course root records, per student, the attempts and times to verdict (`make report` shows them).
"""

from __future__ import annotations

import datetime
import json
import shutil

from ..grading.course import ASSIGNMENT, NOTEBOOK, Course
from ..grading.record import atomic_write
from ..results.class_report import HANDINS as RECORD
from .store import DONE, Store, iso

POLICIES = ("latest-before-due", "latest", "best-before-due")


def due_date(course: Course) -> float | None:
    "The assignment's due date in the gradebook, as seconds since the epoch (nbgrader keeps it in naive UTC)."
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(course.db_url, course.course_id) as gb:
        try:
            due = gb.find_assignment(ASSIGNMENT).duedate
        except MissingEntry:
            return None
    return None if due is None else due.replace(tzinfo=datetime.timezone.utc).timestamp()


def choose(sends: list, policy: str, due: float | None):
    "The (sent_at, row) of record among a student's hand-ins (oldest first), and whether it is late."
    on_time = [s for s in sends if due is None or s[0] <= due]
    if policy == "latest" or not on_time:
        pick = sends[-1]
    elif policy == "best-before-due":
        graded = [s for s in on_time if s[1].state == DONE and s[1].score is not None]
        pick = max(graded, key=lambda s: (s[1].score, s[0])) if graded else on_time[-1]
    else:
        pick = on_time[-1]
    return pick, due is not None and pick[0] > due


def nbgrader_time(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def collect_service(course: Course, store: Store, policy: str = POLICIES[0]) -> dict:
    "Write every student's hand-in of record into submitted/; return what was taken."
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
    due = due_date(course)
    sends = {}
    for student, sent_at, row in store.handins():
        sends.setdefault(student, []).append((sent_at, row))
    found = {"collected": {}, "late": [], "due": iso(due), "policy": policy}
    record = {}
    for student, theirs in sorted(sends.items()):
        (sent_at, row), late = choose(theirs, policy, due)
        folder = course.submitted(student)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        (folder / f"{NOTEBOOK}.ipynb").write_bytes(bytes(row.body))
        (folder / "timestamp.txt").write_text(nbgrader_time(sent_at) + "\n")
        found["collected"][student] = row.attempt
        if late:
            found["late"].append(student)
        attempts = {r.attempt: r for _, r in theirs}
        record[student] = {
            "attempt": row.attempt,
            "sha256": row.sha256,
            "sent_at": iso(sent_at),
            "late": late,
            "attempts": len(attempts),
            "service_points": row.score,
            "seconds_to_verdict": [
                round(r.verdict_at - r.received_at, 2) for r in attempts.values() if r.verdict_at is not None
            ],
        }
    atomic_write(course.root / RECORD, json.dumps(record, indent=1))
    return found


def describe(found: dict) -> str:
    lines = [
        f"collected {len(found['collected'])} hand-ins from the service into submitted/ "
        f"({found['policy']}; due {found['due'] or 'not set'})"
    ]
    if found["late"]:
        lines.append(f"{len(found['late'])} handed in only after the due date: {', '.join(found['late'])}")
    return "\n".join(lines)
