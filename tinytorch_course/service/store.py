"""Everything the hand-in service knows, in one database: nothing lives only in the server's memory.

    Store("sqlite:////course/handin.db")                       # the default, beside the gradebook
    Store("postgresql+psycopg://grader@dbhost/tinytorch")      # several servers, one store

Tables (prefixed `handin_`, so they can share a PostgreSQL database with nbgrader's gradebook, which
this service never writes):

- `tokens`       one row per token issued: whose, which role, the sha256 of the token (never the
                 token), when it was issued and revoked. A token is `<person>.<43 random characters>`
                 (256 bits from `secrets`): high entropy, so one sha256 is the right hash, and it is
                 looked up by hash and compared with `hmac.compare_digest`.
- `submissions`  every accepted hand-in: the bytes, their sha256, the attempt number, when it came,
                 and its way through the queue (`queue.py`): state, runs, lease, the verdict.
- `requests`     every accepted request's id: a request id seen twice is a replay.
- `buckets`      each student's token bucket (`bucket.py`).
- `feedback`     the feedback pages the instructor has published, one per student.
- `slots`        the grading slots alive and what each is grading (heartbeats), for the status page.
- `admission`    one row that every acceptance locks, so the queue limit holds across servers.

Every acceptance is one transaction, committed (on sqlite with `synchronous=FULL`, so fsynced) before
the receipt is sent. sqlite runs in WAL mode with `BEGIN IMMEDIATE` for writes; PostgreSQL takes row
locks (`FOR UPDATE`; `SKIP LOCKED` when claiming work).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import re
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    insert,
    select,
    update,
)

from .bucket import Bucket
from .settings import HandInService

metadata = MetaData()
tokens = Table(
    "handin_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("person", String(100), nullable=False),
    Column("role", String(16), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Column("issued_at", Float, nullable=False),
    Column("revoked_at", Float),
)
submissions = Table(
    "handin_submissions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("student", String(100), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("state", String(16), nullable=False),  # queued, grading, done, failed (see queue.py)
    Column("runs", Integer, nullable=False, default=0),  # times a grading slot started it
    Column("lease_owner", String(200)),
    Column("lease_until", Float),
    Column("started_at", Float),
    Column("verdict_at", Float),
    Column("graded", Integer, nullable=False, default=0),  # verdicts written: 0 or 1, never more
    Column("charged", Boolean, nullable=False),
    Column("status", String(32)),  # the Result's status once there is one
    Column("score", Float),  # autograded points
    Column("result", Text),  # the Result as JSON, without its notebook
    UniqueConstraint("student", "attempt", name="uq_handin_attempt"),
    Index("ix_handin_student_sha", "student", "sha256"),
    Index("ix_handin_state", "state", "id"),
    Index("ix_handin_recent", "state", "verdict_at", "started_at"),  # recent grading times, without the bodies
)
requests = Table(
    "handin_requests",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("student", String(100), nullable=False),
    Column("submission_id", Integer, nullable=False),
    Column("sent_at", Float, nullable=False),
    Index("ix_handin_requests_student", "student", "sent_at"),
)
buckets = Table(
    "handin_buckets",
    metadata,
    Column("student", String(100), primary_key=True),
    Column("level", Float, nullable=False),
    Column("updated", Float, nullable=False),
)
feedback = Table(
    "handin_feedback",
    metadata,
    Column("student", String(100), primary_key=True),
    Column("html", Text, nullable=False),
    Column("published_at", Float, nullable=False),
)
slots = Table(
    "handin_slots",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("engine", String(16), nullable=False),
    Column("host", String(200), nullable=False),
    Column("submission_id", Integer),
    Column("heartbeat_at", Float, nullable=False),
)
admission = Table("handin_admission", metadata, Column("name", String(16), primary_key=True))

STUDENT, INSTRUCTOR = "student", "instructor"
QUEUED, GRADING, DONE, FAILED = "queued", "grading", "done", "failed"
PERSON = re.compile(r"^[A-Za-z0-9@][A-Za-z0-9@._+-]{0,99}$")  # a student id that is one plain folder name
TOKEN = re.compile(r"^(?P<person>[A-Za-z0-9@][A-Za-z0-9@._+-]{0,99})\.(?P<secret>[A-Za-z0-9_-]{43})$")
NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class Refused(Exception):
    "A request the store turns down: the HTTP status, a sentence for the student, and when to retry."

    def __init__(self, status: int, message: str, retry_after: float | None = None, receipt: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.retry_after, self.receipt = status, message, retry_after, receipt


@dataclass(frozen=True)
class Identity:
    person: str
    role: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def iso(t: float | None) -> str | None:
    "A time as the server shows it: ISO 8601 in UTC, to the second."
    if t is None:
        return None
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="seconds")


def make_engine(url: str):
    "An SQLAlchemy engine; sqlite in WAL mode, fsync on commit, `BEGIN IMMEDIATE` for writes."
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # the "begin" listener below starts every transaction
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=60000"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("handin_write") else "BEGIN")

    return engine


class Store:
    "The service's database: tokens, submissions, buckets, feedback, grading slots."

    def __init__(self, url: str, settings: HandInService | None = None, clock=time.time):
        self.url, self.settings, self.clock = url, settings or HandInService(), clock
        self.engine = make_engine(url)
        metadata.create_all(self.engine)
        for index in submissions.indexes:  # an index added since this store was made
            index.create(self.engine, checkfirst=True)
        with self.write() as conn:
            if conn.execute(select(admission.c.name)).first() is None:
                conn.execute(insert(admission).values(name="queue"))

    @contextmanager
    def write(self):
        "A transaction that writes: committed when the block ends, rolled back if it raises."
        with self.engine.connect().execution_options(handin_write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def read(self):
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def close(self):
        self.engine.dispose()

    # ---- tokens --------------------------------------------------------------------------------
    def issue(self, person: str, role: str = STUDENT) -> str:
        "A new token for `person` (any earlier one is revoked); only its hash is stored. Returns the token."
        if not PERSON.match(person):
            raise ValueError(f"not a plain student id (letters, digits, @._+-): {person!r}")
        token = f"{person}.{secrets.token_urlsafe(32)}"
        now = self.clock()
        with self.write() as conn:
            conn.execute(
                update(tokens).where(tokens.c.person == person, tokens.c.revoked_at.is_(None)).values(revoked_at=now)
            )
            conn.execute(insert(tokens).values(person=person, role=role, hash=hash_token(token), issued_at=now))
            if (
                role == STUDENT
                and conn.execute(select(buckets.c.student).where(buckets.c.student == person)).first() is None
            ):
                conn.execute(insert(buckets).values(student=person, level=float(self.settings.burst), updated=now))
        return token

    def revoke(self, person: str) -> int:
        "Revoke every live token of `person`; how many there were."
        with self.write() as conn:
            return conn.execute(
                update(tokens)
                .where(tokens.c.person == person, tokens.c.revoked_at.is_(None))
                .values(revoked_at=self.clock())
            ).rowcount

    def authenticate(self, token: str | None) -> Identity:
        "Who holds `token`; raises Refused(401) for a missing, malformed, unknown or revoked token."
        if not token:
            raise Refused(401, "No token was sent: the hand-in needs the token your instructor gave you.")
        if not TOKEN.match(token):
            raise Refused(401, "That is not a hand-in token (check you pasted all of it).")
        digest = hash_token(token)
        with self.read() as conn:
            row = conn.execute(select(tokens).where(tokens.c.hash == digest)).first()
        if row is None or not hmac.compare_digest(row.hash, digest):
            raise Refused(401, "This token is not known to the hand-in service (check you pasted all of it).")
        if row.revoked_at is not None:
            raise Refused(401, "This token was revoked: ask your instructor for your new one.")
        return Identity(row.person, row.role)

    def people(self) -> dict:
        "{person: role} of everyone with a live token."
        with self.read() as conn:
            rows = conn.execute(select(tokens.c.person, tokens.c.role).where(tokens.c.revoked_at.is_(None)))
            return {r.person: r.role for r in rows}

    # ---- reading back --------------------------------------------------------------------------
    def attempts(self, student: str) -> list:
        "Every receipt of `student`, oldest first."
        with self.read() as conn:
            rows = conn.execute(
                select(submissions).where(submissions.c.student == student).order_by(submissions.c.attempt)
            )
            return [receipt(r) for r in rows]

    def handins(self) -> list:
        """Every accepted request with its submission, oldest first: (student, sent_at, row). The same bytes
        sent again count as a hand-in at the later time (for `make collect`)."""
        with self.read() as conn:
            rows = conn.execute(
                select(requests.c.student, requests.c.sent_at, submissions)
                .join(submissions, submissions.c.id == requests.c.submission_id)
                .order_by(requests.c.sent_at, requests.c.nonce)
            )
            return [(r.student, r.sent_at, r) for r in rows]

    def bucket(self, student: str) -> Bucket | None:
        "The student's bucket now (refilled to this moment; nothing written)."
        with self.read() as conn:
            row = conn.execute(select(buckets).where(buckets.c.student == student)).first()
        if row is None:
            return None
        return Bucket(row.level, row.updated).now(self.clock(), self.settings.burst, self.settings.refill_seconds)

    # ---- feedback ------------------------------------------------------------------------------
    def publish(self, student: str, html: str) -> None:
        with self.write() as conn:
            if (
                conn.execute(
                    update(feedback).where(feedback.c.student == student).values(html=html, published_at=self.clock())
                ).rowcount
                == 0
            ):
                conn.execute(insert(feedback).values(student=student, html=html, published_at=self.clock()))

    def withdraw(self, student: str) -> None:
        with self.write() as conn:
            conn.execute(feedback.delete().where(feedback.c.student == student))

    def feedback_page(self, student: str):
        "(html, published_at) of `student`'s published feedback, or None."
        with self.read() as conn:
            row = conn.execute(select(feedback).where(feedback.c.student == student)).first()
        return None if row is None else (row.html, row.published_at)


def receipt(row, sent_at: float | None = None) -> dict:
    "What a student is told the moment a hand-in is stored."
    return {
        "attempt": row.attempt,
        "sha256": row.sha256,
        "size": row.size,
        "received_at": iso(row.received_at),
        "sent_at": iso(sent_at if sent_at is not None else row.received_at),
        "state": row.state,
    }


def result_of(row) -> dict | None:
    "The stored Result (as JSON) of a submission row, or None before its verdict."
    return json.loads(row.result) if row.result else None
