"""The global queue, kept in the store: a submission is queued, then grading under a lease, then done.

    queued --claim--> grading --finish--> done
                         |  lease expired, or the slot lost its worker: queued again (no new charge)
                         +--> failed after `max_runs` starts (the grader's fault: the token is refunded)

A grading slot claims the oldest queued submission (or one whose lease expired: its server or worker
died) and holds a lease it renews while it grades. Its verdict is written only while it still holds
the lease (`finish` is fenced by the lease owner), so a submission gets at most one verdict even when
a slot that was thought dead comes back: every accepted submission is graded exactly once. A
`Result` with status `error` (the grader's own failure) counts as a lost run, never as a verdict.
"""

from __future__ import annotations

import hashlib
import json
import socket
import statistics
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, insert, or_, select, update

from ..grading.result import ERROR, Result
from .bucket import Bucket
from .store import (
    DONE,
    FAILED,
    GRADING,
    NONCE,
    QUEUED,
    Refused,
    Store,
    admission,
    buckets,
    receipt,
    requests,
    slots,
    submissions,
)

RECENT = 50  # finished submissions the estimates and the status page look back on


@dataclass(frozen=True)
class Job:
    "A claimed submission, for a grading slot."

    id: int
    student: str
    attempt: int
    body: bytes
    run: int


def accept(store: Store, student: str, body: bytes, nonce: str) -> tuple[dict, bool]:
    """Store `body` as `student`'s next attempt, or find it already stored; (receipt, newly stored).

    One transaction, committed before it returns: a replayed request id, an empty bucket or a full queue
    raise Refused, and nothing is stored or charged. The same bytes as an earlier attempt return that
    attempt's receipt at no charge (and count as the student's latest hand-in); bytes the grader failed
    on for its own reasons are queued again."""
    if not NONCE.match(nonce or ""):
        raise Refused(400, "The request has no valid request id (16-64 letters, digits, - or _).")
    settings, now = store.settings, store.clock()
    digest = hashlib.sha256(body).hexdigest()
    with store.write() as conn:
        conn.execute(select(admission.c.name).with_for_update())  # one acceptance at a time (PostgreSQL)
        seen = conn.execute(select(requests).where(requests.c.nonce == nonce)).first()
        if seen is not None:
            sub = conn.execute(select(submissions).where(submissions.c.id == seen.submission_id)).first()
            raise Refused(
                409,
                "This request was already received (its request id was used before): nothing new was stored.",
                receipt=receipt(sub, seen.sent_at) if sub is not None and sub.student == student else None,
            )
        earlier = conn.execute(
            select(submissions)
            .where(submissions.c.student == student, submissions.c.sha256 == digest)
            .order_by(submissions.c.attempt.desc())
            .limit(1)
        ).first()
        if earlier is not None and earlier.state != FAILED:
            conn.execute(insert(requests).values(nonce=nonce, student=student, submission_id=earlier.id, sent_at=now))
            return {**receipt(earlier, now), "again": True}, False
        row = conn.execute(select(buckets).where(buckets.c.student == student).with_for_update()).first()
        bucket = Bucket(float(settings.burst), now) if row is None else Bucket(row.level, row.updated)
        bucket = bucket.now(now, settings.burst, settings.refill_seconds)
        if bucket.level < 1.0:
            wait = bucket.wait(settings.refill_seconds)
            raise Refused(
                429,
                f"You have handed in {settings.burst} times in a short while: your next hand-in is possible in "
                f"{wait:.0f} s. Nothing was stored.",
                retry_after=wait,
            )
        waiting = conn.execute(
            select(func.count()).select_from(submissions).where(submissions.c.state.in_((QUEUED, GRADING)))
        ).scalar_one()
        if waiting >= settings.queue_limit:
            wait = estimate(conn, waiting, now)
            raise Refused(
                503,
                f"The grader is busy ({waiting} hand-ins waiting): nothing was stored or charged. "
                f"Try again in about {wait:.0f} s.",
                retry_after=wait,
            )
        bucket = bucket.take()
        if row is None:
            conn.execute(insert(buckets).values(student=student, level=bucket.level, updated=bucket.updated))
        else:
            conn.execute(
                update(buckets).where(buckets.c.student == student).values(level=bucket.level, updated=bucket.updated)
            )
        fresh = dict(state=QUEUED, runs=0, lease_owner=None, lease_until=None, charged=True)
        if earlier is not None:  # the grader failed on these bytes and refunded them: grade them again
            conn.execute(
                update(submissions)
                .where(submissions.c.id == earlier.id)
                .values(**fresh, status=None, score=None, result=None, verdict_at=None)
            )
            sub_id = earlier.id
        else:
            last = conn.execute(
                select(func.max(submissions.c.attempt)).where(submissions.c.student == student)
            ).scalar_one()
            sub_id = conn.execute(
                insert(submissions).values(
                    student=student,
                    attempt=(last or 0) + 1,
                    sha256=digest,
                    size=len(body),
                    body=body,
                    received_at=now,
                    graded=0,
                    **fresh,
                )
            ).inserted_primary_key[0]
        conn.execute(insert(requests).values(nonce=nonce, student=student, submission_id=sub_id, sent_at=now))
        stored = conn.execute(select(submissions).where(submissions.c.id == sub_id)).first()
        return {**receipt(stored, now), "again": False}, True


HEAD = [column for column in submissions.c if column.name != "body"]  # a submission's row without its bytes


def place(store: Store, student: str, attempt: int):
    "`student`'s attempt `attempt` and its place in the queue: (row, position, seconds to verdict), or Nones."
    with store.read() as conn:
        row = conn.execute(
            select(*HEAD).where(submissions.c.student == student, submissions.c.attempt == attempt)
        ).first()
        if row is None:
            return None, None, None
        if row.state != QUEUED:
            return row, None, None
        position = conn.execute(
            select(func.count())
            .select_from(submissions)
            .where(submissions.c.state == QUEUED, submissions.c.id < row.id)
        ).scalar_one()
        return row, position, estimate(conn, position + 1, store.clock())


def claim(store: Store, owner: str) -> Job | None:
    "Lease the oldest submission waiting (queued, or grading under an expired lease) to `owner`."
    settings = store.settings
    while True:
        now = store.clock()
        with store.write() as conn:
            row = conn.execute(
                select(submissions.c.id, submissions.c.state, submissions.c.runs)
                .where(
                    or_(
                        submissions.c.state == QUEUED,
                        and_(submissions.c.state == GRADING, submissions.c.lease_until < now),
                    )
                )
                .order_by(submissions.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            if row.runs >= settings.max_runs:  # started this often and never finished: the grader's fault
                _fail(conn, store, row.id, f"The grader lost this submission {row.runs} times; it was not graded.")
                continue
            conn.execute(
                update(submissions)
                .where(submissions.c.id == row.id)
                .values(
                    state=GRADING,
                    runs=submissions.c.runs + 1,
                    lease_owner=owner,
                    lease_until=now + settings.lease_seconds,
                    started_at=now,
                )
            )
            job = conn.execute(
                select(
                    submissions.c.id,
                    submissions.c.student,
                    submissions.c.attempt,
                    submissions.c.body,
                    submissions.c.runs,
                ).where(submissions.c.id == row.id)
            ).first()
            return Job(job.id, job.student, job.attempt, bytes(job.body), job.runs)


def renew(store: Store, owner: str, ids) -> int:
    "Extend the leases `owner` holds on `ids`; how many it still held."
    ids = list(ids)
    if not ids:
        return 0
    with store.write() as conn:
        return conn.execute(
            update(submissions)
            .where(submissions.c.id.in_(ids), submissions.c.lease_owner == owner, submissions.c.state == GRADING)
            .values(lease_until=store.clock() + store.settings.lease_seconds)
        ).rowcount


def finish(store: Store, job_id: int, owner: str, result: Result) -> bool:
    "Write the verdict of a submission `owner` still holds; False if its lease went to another slot."
    if result.status == ERROR:
        return release(store, job_id, owner, result.reason)
    score = sum(float(v.get("score", 0.0)) for v in result.verdicts.values()) if result.graded else 0.0
    with store.write() as conn:
        return (
            conn.execute(
                update(submissions)
                .where(submissions.c.id == job_id, submissions.c.state == GRADING, submissions.c.lease_owner == owner)
                .values(
                    state=DONE,
                    status=result.status,
                    score=score,
                    result=json.dumps(result.to_json()),
                    verdict_at=store.clock(),
                    graded=submissions.c.graded + 1,
                    lease_owner=None,
                    lease_until=None,
                )
            ).rowcount
            == 1
        )


def release(store: Store, job_id: int, owner: str, reason: str = "", counted: bool = True) -> bool:
    """The slot lost the submission (its worker died, the grader failed): queue it again at no charge,
    or, after `max_runs` starts, fail it and refund the student's token. A server that stops on
    purpose hands its submissions back `counted=False`: that run does not count towards `max_runs`."""
    with store.write() as conn:
        row = conn.execute(
            select(submissions.c.runs).where(
                submissions.c.id == job_id, submissions.c.state == GRADING, submissions.c.lease_owner == owner
            )
        ).first()
        if row is None:
            return False
        if counted and row.runs >= store.settings.max_runs:
            _fail(
                conn, store, job_id, reason or f"The grader lost this submission {row.runs} times; it was not graded."
            )
        else:
            conn.execute(
                update(submissions)
                .where(submissions.c.id == job_id)
                .values(state=QUEUED, lease_owner=None, lease_until=None, runs=row.runs - (0 if counted else 1))
            )
        return True


def _fail(conn, store: Store, job_id: int, reason: str) -> None:
    "The grader gave up on a submission for its own reasons: record why, and give the token back."
    row = conn.execute(select(submissions.c.student, submissions.c.charged).where(submissions.c.id == job_id)).first()
    result = Result.failed(row.student, ERROR, reason)
    conn.execute(
        update(submissions)
        .where(submissions.c.id == job_id)
        .values(
            state=FAILED,
            status=ERROR,
            score=0.0,
            result=json.dumps(result.to_json()),
            verdict_at=store.clock(),
            lease_owner=None,
            lease_until=None,
            charged=False,
        )
    )
    if row.charged:
        held = conn.execute(select(buckets).where(buckets.c.student == row.student).with_for_update()).first()
        if held is not None:
            settings = store.settings
            bucket = Bucket(held.level, held.updated).now(store.clock(), settings.burst, settings.refill_seconds)
            bucket = bucket.refund(settings.burst)
            conn.execute(
                update(buckets)
                .where(buckets.c.student == row.student)
                .values(level=bucket.level, updated=bucket.updated)
            )


# ---- estimates and the status page ---------------------------------------------------------------
def grading_seconds(conn) -> float:
    "The median grading time of recent verdicts (from start to verdict); 5 s before there are any."
    rows = conn.execute(
        select(submissions.c.verdict_at - submissions.c.started_at)
        .where(submissions.c.state == DONE, submissions.c.started_at.is_not(None))
        .order_by(submissions.c.verdict_at.desc())
        .limit(RECENT)
    ).scalars()
    times = [t for t in rows if t is not None and t >= 0]
    return statistics.median(times) if times else 5.0


def live_slots(conn, now: float) -> int:
    stale = now - 30.0
    return conn.execute(select(func.count()).select_from(slots).where(slots.c.heartbeat_at >= stale)).scalar_one()


def estimate(conn, ahead: int, now: float) -> float:
    "Seconds until a submission with `ahead` submissions before it (itself included) has its verdict."
    workers = max(1, live_slots(conn, now))
    return -(-ahead // workers) * grading_seconds(conn)


def heartbeat(store: Store, name: str, engine: str, submission_id: int | None, host: str | None = None) -> None:
    "A grading slot says it is alive, and what it grades."
    now, host = store.clock(), host or socket.gethostname()
    with store.write() as conn:
        values = dict(engine=engine, host=host, submission_id=submission_id, heartbeat_at=now)
        if conn.execute(update(slots).where(slots.c.name == name).values(**values)).rowcount == 0:
            conn.execute(insert(slots).values(name=name, **values))


def forget_slots(store: Store, names) -> None:
    with store.write() as conn:
        conn.execute(delete(slots).where(slots.c.name.in_(list(names))))


def status(store: Store, hours: int = 24) -> dict:
    "What the instructor's status page shows: queue, slots, hand-ins per hour, recent times to verdict."
    now = store.clock()
    with store.read() as conn:
        counts = dict(
            conn.execute(select(submissions.c.state, func.count()).group_by(submissions.c.state)).tuples().all()
        )
        live = conn.execute(select(slots).where(slots.c.heartbeat_at >= now - 30.0).order_by(slots.c.name)).all()
        received = conn.execute(
            select(submissions.c.received_at).where(submissions.c.received_at >= now - hours * 3600)
        ).scalars()
        per_hour = [0] * hours
        for t in received:
            per_hour[min(hours - 1, int((now - t) // 3600))] += 1
        recent = conn.execute(
            select(
                submissions.c.student,
                submissions.c.attempt,
                submissions.c.status,
                submissions.c.score,
                submissions.c.received_at,
                submissions.c.verdict_at,
                submissions.c.runs,
            )
            .where(submissions.c.state.in_((DONE, FAILED)))
            .order_by(submissions.c.verdict_at.desc())
            .limit(RECENT)
        ).all()
        median = grading_seconds(conn)
    to_verdict = sorted(r.verdict_at - r.received_at for r in recent)
    return {
        "now": now,
        "queued": counts.get(QUEUED, 0),
        "grading": counts.get(GRADING, 0),
        "done": counts.get(DONE, 0),
        "failed": counts.get(FAILED, 0),
        "slots": [
            {
                "name": s.name,
                "engine": s.engine,
                "host": s.host,
                "submission": s.submission_id,
                "age": now - s.heartbeat_at,
            }
            for s in live
        ],
        "per_hour": per_hour,  # [this hour, the hour before, ...]
        "recent": [
            {
                "student": r.student,
                "attempt": r.attempt,
                "status": r.status,
                "score": r.score,
                "received_at": r.received_at,
                "to_verdict": r.verdict_at - r.received_at,
                "runs": r.runs,
            }
            for r in recent
        ],
        "p50": percentile(to_verdict, 50),
        "p95": percentile(to_verdict, 95),
        "grading_seconds": median,
    }


def percentile(values: list, q: float) -> float | None:
    "The q-th percentile of sorted `values` (nearest rank), None when empty."
    if not values:
        return None
    rank = max(0, min(len(values) - 1, -(-len(values) * q // 100) - 1))
    return values[int(rank)]
