"""The hand-in service's course settings: `c.HandInService.<name> = value` in nbgrader_config.py.

nbgrader ignores this section; the service, `make tokens` and `make collect SOURCE=service` read it.
Every setting has a default, so a course that sets nothing gets a burst of 3 submissions, one more
every 10 minutes, verdicts that name each hidden check with the judge's message, and an 8 MiB cap.
"""

from traitlets import Enum, Float, Integer, Unicode
from traitlets.config import Configurable

# What a student sees of each hidden check: its name and the judge's message, its name and pass or
# fail, or only each graded cell's points.
DISCLOSE = ("message", "name", "score")


class HandInService(Configurable):
    "Limits and disclosure of the hand-in service (see tinytorch_course/service/)."

    disclose = Enum(
        DISCLOSE,
        "message",
        help="Per hidden check, what a student sees: 'message' (name, pass/fail and the judge's message), "
        "'name' (name and pass/fail) or 'score' (only each graded cell's points).",
    ).tag(config=True)
    burst = Integer(3, help="Submissions a student may send at once (the bucket's size).").tag(config=True)
    refill_seconds = Float(600.0, help="Seconds until the bucket holds one more submission.").tag(config=True)
    queue_limit = Integer(
        200, help="Submissions queued or grading at once; past it the service says when to retry."
    ).tag(config=True)
    max_bytes = Integer(8 * 2**20, help="The largest notebook accepted, in bytes.").tag(config=True)
    clock_skew = Float(
        300.0, help="Seconds a request's own time may differ from the server's (older requests are replays)."
    ).tag(config=True)
    lease_seconds = Float(
        15.0, help="A grading slot holds a submission this long between heartbeats; then it is graded elsewhere."
    ).tag(config=True)
    max_runs = Integer(
        3, help="Times a submission is started before a grader that keeps failing gives up (and refunds)."
    ).tag(config=True)
    budget_seconds = Float(600.0, help="Seconds one submission may take to grade in all.").tag(config=True)
    db_url = Unicode(
        "", help="The service's own database (SQLAlchemy URL); default: sqlite, handin.db at the course root."
    ).tag(config=True)


def store_url(course, db_url: str | None = None) -> str:
    "The service's database: `db_url` (DB_URL), else the course setting, else sqlite `handin.db` at the course root."
    import os

    settings = HandInService(config=course.config)
    return db_url or os.environ.get("DB_URL") or settings.db_url or f"sqlite:///{course.root / 'handin.db'}"
