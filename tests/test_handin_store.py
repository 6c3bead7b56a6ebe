"""The hand-in service's store, queue and buckets, without HTTP and without grading (seconds).

Each test runs on sqlite and on a PostgreSQL server of its own (test_postgres's fixture): tokens
are stored as hashes and refused when missing, malformed, unknown or revoked; an acceptance is all
or nothing (a replay, an empty bucket, a full queue store and charge nothing); the same bytes twice
give the same receipt for free; concurrent hand-ins never overdraw a bucket; concurrent grading
slots never take the same submission, and a verdict is written once, by the lease holder; a lost
submission is graded again at no charge, and one the grader keeps losing fails with its token
refunded; the verdict shows what the course discloses and no hidden line; `make collect` picks the
hand-in of record by policy.
"""

import hashlib
import json
import secrets
import threading

import pytest

from helpers import secret_lines
from test_postgres import postgres  # noqa: F401  (a PostgreSQL server of our own)
from tinytorch_course.grading.result import ERROR, GRADED, Event, Result
from tinytorch_course.service import queue
from tinytorch_course.service.settings import HandInService
from tinytorch_course.service.store import DONE, FAILED, QUEUED, Refused, Store, submissions, tokens
from tinytorch_course.service.verdict import WRITTEN_NOTE, layout, public


class Clock:
    def __init__(self, t=1_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


OPENED = []


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'handin.db'}"
    else:
        url = request.getfixturevalue("postgres")
        from sqlalchemy import create_engine

        from tinytorch_course.service.store import metadata

        engine = create_engine(url)
        metadata.drop_all(engine)  # a clean store for each test on the shared server
        engine.dispose()
        yield url
    while OPENED:
        OPENED.pop().close()


def store_for(db_url, **settings) -> tuple:
    clock = Clock()
    store = Store(db_url, HandInService(**{"burst": 3, "refill_seconds": 600.0, **settings}), clock=clock)
    OPENED.append(store)
    return store, clock


def nonce() -> str:
    return secrets.token_urlsafe(16)


def count(store, table=submissions) -> int:
    from sqlalchemy import func, select

    with store.read() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_tokens_are_stored_as_hashes_and_refused_when_wrong(db_url):
    store, _ = store_for(db_url)
    token = store.issue("ada")
    assert token.startswith("ada.") and len(token) == len("ada.") + 43
    with store.read() as conn:
        stored = [r.hash for r in conn.execute(tokens.select())]
    assert stored == [hashlib.sha256(token.encode()).hexdigest()], "only the hash is kept"
    assert store.authenticate(token).person == "ada"
    for bad, why in [
        (None, "No token"),
        ("", "No token"),
        ("ada.short", "not a hand-in token"),
        ("ada." + "x" * 43, "not known"),
        ("bob." + token.split(".", 1)[1], "not known"),  # another name on ada's secret
    ]:
        with pytest.raises(Refused, match=why) as info:
            store.authenticate(bad)
        assert info.value.status == 401
    new = store.issue("ada")  # replaced: the old token is revoked
    with pytest.raises(Refused, match="revoked"):
        store.authenticate(token)
    assert store.authenticate(new).person == "ada"
    store.revoke("ada")
    with pytest.raises(Refused, match="revoked"):
        store.authenticate(new)
    with pytest.raises(ValueError):
        store.issue("../etc")


def test_acceptance_is_all_or_nothing(db_url):
    store, clock = store_for(db_url)
    store.issue("ada")
    first, new = queue.accept(store, "ada", b"one", nonce())
    assert new and first["attempt"] == 1 and first["sha256"] == hashlib.sha256(b"one").hexdigest()
    again, new = queue.accept(store, "ada", b"one", nonce())
    assert not new and again["attempt"] == 1 and again["again"], "the same bytes: the same receipt"
    assert store.bucket("ada").level == 2.0, "and nothing charged"
    used = nonce()
    queue.accept(store, "ada", b"two", used)
    with pytest.raises(Refused) as replay:
        queue.accept(store, "ada", b"three", used)
    assert replay.value.status == 409 and replay.value.receipt["attempt"] == 2
    with pytest.raises(Refused) as bad:
        queue.accept(store, "ada", b"three", "short")
    assert bad.value.status == 400
    queue.accept(store, "ada", b"three", nonce())
    before = (count(store), store.bucket("ada").level)
    with pytest.raises(Refused) as empty:
        queue.accept(store, "ada", b"four", nonce())
    assert empty.value.status == 429 and empty.value.retry_after == pytest.approx(600.0)
    assert "600 s" in empty.value.message
    assert (count(store), store.bucket("ada").level) == before, "nothing stored, nothing charged"
    clock.t += 300
    with pytest.raises(Refused) as half:
        queue.accept(store, "ada", b"four", nonce())
    assert half.value.retry_after == pytest.approx(300.0)
    clock.t += 300
    assert queue.accept(store, "ada", b"four", nonce())[0]["attempt"] == 4, "one more every refill period"


def test_a_full_queue_says_when_to_retry_and_charges_nothing(db_url):
    store, _ = store_for(db_url, queue_limit=2)
    for student in ("ada", "bob", "cy"):
        store.issue(student)
    queue.accept(store, "ada", b"a", nonce())
    queue.accept(store, "bob", b"b", nonce())
    with pytest.raises(Refused) as full:
        queue.accept(store, "cy", b"c", nonce())
    assert full.value.status == 503 and full.value.retry_after > 0 and "Try again in about" in full.value.message
    assert count(store) == 2 and store.bucket("cy").level == 3.0
    row, position, estimate = queue.place(store, "bob", 1)
    assert row.state == QUEUED and position == 1 and estimate > 0


def test_concurrent_hand_ins_never_overdraw_a_bucket(db_url):
    store, _ = store_for(db_url)
    for student in ("ada", "bob"):
        store.issue(student)
    outcomes = []

    def send(student, k):
        try:
            queue.accept(store, student, f"{student}-{k}".encode(), nonce())
            outcomes.append((student, "accepted"))
        except Refused as exc:
            outcomes.append((student, exc.status))

    threads = [threading.Thread(target=send, args=(s, k)) for s in ("ada", "bob") for k in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for student in ("ada", "bob"):
        mine = [o for s, o in outcomes if s == student]
        assert mine.count("accepted") == 3 and mine.count(429) == 7, mine
        assert [r["attempt"] for r in store.attempts(student)] == [1, 2, 3]
        assert store.bucket(student).level == pytest.approx(0.0, abs=1e-3)


def graded(student, score=3.0) -> Result:
    return Result(student, GRADED, verdicts={"test-sgd-plain": {"score": score, "checks": []}})


def test_each_submission_is_graded_once_by_whoever_holds_its_lease(db_url):
    store, clock = store_for(db_url, lease_seconds=10.0, max_runs=3)
    for k in range(6):
        store.issue(f"s{k}")
        queue.accept(store, f"s{k}", b"x%d" % k, nonce())
    claimed, lock = [], threading.Lock()

    def slot(name):
        while (job := queue.claim(store, name)) is not None:
            with lock:
                claimed.append(job.id)
            assert queue.finish(store, job.id, name, graded(job.student))

    threads = [threading.Thread(target=slot, args=(f"slot-{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 6, "no submission claimed twice"
    with store.read() as conn:
        rows = conn.execute(submissions.select()).all()
    assert {r.state for r in rows} == {DONE} and {r.graded for r in rows} == {1}

    store.issue("late")
    queue.accept(store, "late", b"slow", nonce())
    job = queue.claim(store, "dead-server/slot")
    clock.t += 11  # its server died: the lease expires
    again = queue.claim(store, "live-server/slot")
    assert again.id == job.id and again.run == 2
    assert not queue.finish(store, job.id, "dead-server/slot", graded("late")), "the old holder writes nothing"
    assert queue.finish(store, job.id, "live-server/slot", graded("late", 5.0))
    row, _, _ = queue.place(store, "late", 1)
    assert row.graded == 1 and row.score == 5.0 and row.runs == 2
    assert store.bucket("late").level == pytest.approx(2.0 + 11 / 600), "graded twice over, charged once"


def test_the_graders_own_failures_never_cost_a_token(db_url):
    store, clock = store_for(db_url, max_runs=2)
    store.issue("ada")
    queue.accept(store, "ada", b"nb", nonce())
    assert store.bucket("ada").level == 2.0
    job = queue.claim(store, "w")
    assert queue.finish(store, job.id, "w", Result.failed("ada", ERROR, "The grader failed: boom"))
    row, _, _ = queue.place(store, "ada", 1)
    assert row.state == QUEUED, "an error of the grader is a lost run, queued again"
    job = queue.claim(store, "w")
    assert queue.release(store, job.id, "w", "The grading process died.")
    row, _, _ = queue.place(store, "ada", 1)
    assert row.state == FAILED and json.loads(row.result)["status"] == ERROR and not row.charged
    assert store.bucket("ada").level == 3.0, "the token came back"
    receipt, new = queue.accept(store, "ada", b"nb", nonce())
    assert new and receipt["attempt"] == 1 and receipt["state"] == QUEUED, "the same bytes are graded again"
    assert store.bucket("ada").level == 2.0
    job = queue.claim(store, "w")
    assert queue.release(store, job.id, "w", "the server stopped", counted=False)
    assert queue.place(store, "ada", 1)[0].runs == 0, "a server that stops on purpose costs no run"


def test_the_verdict_shows_what_the_course_discloses_and_no_hidden_line():
    where = layout()
    hidden = secret_lines(("HIDDEN TESTS",))
    leak = sorted(where.hidden)[0]
    result = Result(
        "ada",
        GRADED,
        events=[Event("restored-cell", f"Cell imports was put back.\n{leak}")],
        verdicts={
            "test-sgd-plain": {
                "score": 4.0,
                "checks": [
                    {"check": "SGD (lr=0.1)", "passed": True, "message": "ok"},
                    {"check": "SGD (lr=0.03), large gradients", "passed": False, "message": f"off by 0.5\n{leak}"},
                ],
            }
        },
    ).to_json()
    full = public(result, where, "message")
    assert full["points"] == 4.0 and full["max_points"] == 88.0
    cell = next(c for c in full["cells"] if c["cell"] == "test-sgd-plain")
    assert cell["checks"][1] == {"check": "SGD (lr=0.03), large gradients", "passed": False, "message": "off by 0.5"}
    assert [w["note"] for w in full["written"]] == [WRITTEN_NOTE] * 3 and sum(w["max"] for w in full["written"]) == 12
    assert full["events"] == ["Cell imports was put back."]
    names = public(result, where, "name")
    assert "message" not in next(c for c in names["cells"] if c["cell"] == "test-sgd-plain")["checks"][0]
    scores = public(result, where, "score")
    assert all("checks" not in c for c in scores["cells"]) and scores["points"] == 4.0
    for shown in (full, names, scores):
        text = json.dumps(shown)
        assert not [line for line in hidden | set(where.hidden) if line in text]


def test_collect_takes_the_hand_in_of_record_by_policy(db_url, tmp_path, monkeypatch):
    import datetime

    from nbgrader.api import Gradebook

    from tinytorch_course.grading.course import scratch_course, tool_env

    monkeypatch.setenv("PATH", tool_env()["PATH"])  # a new gradebook runs alembic
    from tinytorch_course.service.collect import RECORD, collect_service

    course = scratch_course(tmp_path / "course")
    due = datetime.datetime(2026, 11, 20, 12, 0, 0)
    with Gradebook(course.db_url, course.course_id) as gb:
        gb.update_or_create_assignment("07_optimizers", duedate=due)
    store, clock = store_for(db_url, burst=10)
    clock.t = due.replace(tzinfo=datetime.timezone.utc).timestamp() - 3600
    store.issue("ada")
    store.issue("bob")
    sends = {}
    for student, body, score, step in [
        ("ada", b"A1", 80.0, 0),
        ("ada", b"A2", 60.0, 600),
        ("ada", b"A3", 88.0, 3600),  # after the due date
        ("bob", b"B1", 10.0, 7200),  # only after the due date
    ]:
        clock.t += step
        receipt, _ = queue.accept(store, student, body, nonce())
        job = queue.claim(store, "w")
        queue.finish(store, job.id, "w", graded(student, score))
        sends[body] = receipt
    clock.t -= 7200 + 3600 - 60  # ada sends A1 again before the due date: it becomes her latest on time
    queue.accept(store, "ada", b"A1", nonce())

    def picked(policy):
        found = collect_service(course, store, policy)
        return {s: (course.submitted(s) / "optimizers.ipynb").read_bytes() for s in found["collected"]}, found

    latest, found = picked("latest-before-due")
    assert latest == {"ada": b"A1", "bob": b"B1"} and found["late"] == ["bob"]
    stamp = (course.submitted("bob") / "timestamp.txt").read_text()
    assert stamp.startswith("2026-11-20 14:10:00") and stamp.strip().endswith("UTC")
    assert picked("latest")[0] == {"ada": b"A3", "bob": b"B1"}
    assert picked("best-before-due")[0]["ada"] == b"A1"
    record = json.loads((course.root / RECORD).read_text())
    assert record["ada"]["attempts"] == 3 and len(record["ada"]["seconds_to_verdict"]) == 3


def test_a_verdict_rings_only_the_requests_waiting_on_its_attempt():
    import asyncio

    from tinytorch_course.service.app import Bell

    async def main():
        bell = Bell()
        bell.loop = asyncio.get_running_loop()
        mine, again, other = bell.event("ada", 1), bell.event("ada", 1), bell.event("ada", 2)
        bell.ring("ada", 1)  # as the dispatcher's thread does
        await asyncio.sleep(0.01)
        assert mine is again and mine.is_set(), "every request waiting on the attempt wakes"
        assert not other.is_set(), "a request waiting on another attempt sleeps on"
        assert set(bell.waiting) == {("ada", 2)}, "a rung attempt is forgotten"

    asyncio.run(main())
