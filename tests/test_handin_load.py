"""The hand-in service under load and under faults: real processes on 127.0.0.1, their own sqlite.

- Load: 40 simulated students each send 3 different notebooks at once, and a 4th: nothing is lost,
  each submission is graded exactly once, every 4th is refused (429) and every bucket holds. Eight
  students send a real notebook first (four examples, each twice: the same notebook gets the same
  points whoever sends it); every other hand-in has damaged grading metadata, which the grader turns
  away in a tenth of a second, so the test stays short on two cores (benchmarks/handin_service.py
  sends only real notebooks, and times them).
- The service is killed (SIGKILL) with submissions queued and grading, then started again: its
  workers die with it, every accepted submission is graded exactly once, every receipt resolves, and
  nobody is charged twice.
- A grading worker is killed mid-submission: the submission is graded again, not lost, and costs no
  token beyond its own.
"""

import itertools
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from handin import Service, handin_course, issue_tokens, submit, variant, verdict
from handin import request as http
from tinytorch_course.examples.build import build
from tinytorch_course.service.settings import HandInService
from tinytorch_course.service.store import DONE, Store, requests, submissions

pytestmark = pytest.mark.slow
STUDENTS = [f"s{k:02d}" for k in range(40)]
REAL = ["reference", "adam-no-bias-correction", "plain-whole-arrays", "sgd-slice-assign-0d"]
FAULTS = ["kim", "lee", "max", "ned", "oli", "pat", "worker"]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return handin_course(tmp_path_factory.mktemp("load") / "course")


def rows(db_url) -> list:
    store = Store(db_url, HandInService())
    try:
        with store.read() as conn:
            return conn.execute(submissions.select().order_by(submissions.c.id)).all(), conn.execute(
                requests.select()
            ).all()
    finally:
        store.close()


def levels(db_url, students) -> dict:
    store = Store(db_url, HandInService(burst=3, refill_seconds=1e6))
    try:
        return {s: round(store.bucket(s).level, 2) for s in students}  # (a refill of 1e6 s adds nothing to see)
    finally:
        store.close()


def test_forty_students_three_hand_ins_each_at_once(course, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'handin.db'}"
    tokens = issue_tokens(course.root, STUDENTS, db_url)
    examples = itertools.cycle(REAL)  # eight students hand in a real notebook first, each example twice
    plan = {
        s: [(ex := next(examples), variant(course.root, ex, f"{s}-0"))] if k < 2 * len(REAL) else []
        for k, s in enumerate(STUDENTS)
    }
    for s in STUDENTS:
        plan[s] += [("damaged", variant(course.root, "reference", f"{s}-{j}", damaged=True)) for j in range(4)]
        plan[s] = plan[s][:4]
    service = Service(course.root, db_url, log=tmp_path / "service.log").start()
    outcome, failures = {}, []

    def student(name):
        try:
            sent = [submit(service.url, tokens[name], body) for _, body in plan[name]]
            outcome[name] = {"statuses": [s for s, _, _ in sent], "verdicts": {}}
            for status, body, _ in sent:
                if status == 201:
                    attempt = body["receipt"]["attempt"]
                    outcome[name]["verdicts"][attempt] = verdict(service.url, tokens[name], attempt, timeout=900)
        except Exception as exc:  # reported below, with the student
            failures.append((name, repr(exc)))

    try:
        threads = [threading.Thread(target=student, args=(name,)) for name in STUDENTS]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=1200)
        elapsed = time.monotonic() - start
    finally:
        service.stop()
    assert not failures, failures[:3]
    for name in STUDENTS:
        assert outcome[name]["statuses"] == [201, 201, 201, 429], (name, outcome[name]["statuses"])
        assert sorted(outcome[name]["verdicts"]) == [1, 2, 3]
    stored, accepted = rows(db_url)
    assert len(stored) == 120 and len(accepted) == 120, "every hand-in stored once, the refused ones not at all"
    assert {r.state for r in stored} == {DONE} and {r.graded for r in stored} == {1}, "each graded exactly once"
    assert {r.runs for r in stored} == {1}, "nothing lost, nothing started twice"
    assert set(levels(db_url, STUDENTS).values()) == {0.0}, "every bucket holds: three each"
    points = {}
    for name in STUDENTS:
        for attempt, answer in outcome[name]["verdicts"].items():
            points.setdefault(plan[name][attempt - 1][0], set()).add(answer["verdict"]["points"])
    assert all(len(p) == 1 for p in points.values()), "the same notebook, the same points, whoever sent it"
    times = sorted(a["seconds_to_verdict"] for o in outcome.values() for a in o["verdicts"].values())
    print(f"40 students x 3: {elapsed:.0f} s in all; time to verdict p50 {times[59]:.1f} s, p95 {times[113]:.1f} s")


def holds_a_notebook(worker: int) -> bool:
    """Whether a worker's sandboxed kernel has a submission in its home: a kernel kept ready (every idle worker
    has one) shows an empty placeholder until its submission comes."""
    for child in children(worker):  # bwrap, whose arguments bind the notebook file into the kernel's home
        try:
            args = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for source, target in zip(args, args[1:]):
            if target.endswith(b"/optimizers.ipynb") and os.path.exists(source) and os.path.getsize(source) > 0:
                return True
    return False


def children(pid: int) -> list:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if int(Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(name))
            except OSError:
                pass
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


def test_a_killed_service_restarts_and_grades_every_accepted_submission_once(course, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'handin.db'}"
    tokens = issue_tokens(course.root, FAULTS, db_url)
    service = Service(course.root, db_url, log=tmp_path / "service.log").start()
    receipts = {}
    try:
        for name in FAULTS[:3]:
            for k, example in enumerate(("reference", "adam-no-bias-correction")):
                status, body, _ = submit(service.url, tokens[name], variant(course.root, example, f"{name}-{k}"))
                assert status == 201, body
                receipts[(name, body["receipt"]["attempt"])] = body["receipt"]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # kill it once it has given a verdict and is grading more
            stored, _ = rows(db_url)
            if any(r.state == DONE for r in stored) and any(r.state == "grading" for r in stored):
                break
            time.sleep(0.2)
        workers = service.worker_pids()
        assert len(workers) == 2
        service.kill()
    finally:
        service.kill()
    before, _ = rows(db_url)
    assert any(r.state != DONE for r in before), "the kill should land with submissions still queued or grading"
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in workers), "the workers die with the service"

    again = Service(course.root, db_url, log=tmp_path / "service.log").start()
    try:
        for (name, attempt), receipt in receipts.items():
            answer = verdict(again.url, tokens[name], attempt, timeout=600)
            assert {k: answer["receipt"][k] for k in ("attempt", "sha256", "received_at")} == {
                k: receipt[k] for k in ("attempt", "sha256", "received_at")
            }, "the receipt still resolves, unchanged"
            assert answer["verdict"]["status"] == "graded"
    finally:
        again.stop()
    after, accepted = rows(db_url)
    assert len(after) == 6 and len(accepted) == 6
    assert {r.state for r in after} == {DONE} and {r.graded for r in after} == {1}, "each graded exactly once"
    assert any(r.runs == 2 for r in after), "what was grading when the service died was graded again"
    assert set(levels(db_url, FAULTS[:3]).values()) == {1.0}, "two hand-ins cost two tokens, the crash nothing"


def test_a_worker_killed_mid_submission_is_graded_again_at_no_cost(course, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'handin.db'}"
    tokens = issue_tokens(course.root, ["worker"], db_url, instructor=None)
    service = Service(course.root, db_url, log=tmp_path / "service.log").start()
    try:
        status, body, _ = submit(service.url, tokens["worker"], build("reference", course.root))
        assert status == 201
        deadline, victim = time.monotonic() + 300, None
        while victim is None and time.monotonic() < deadline:  # the worker whose sandboxed kernel is running
            _, answer, _ = http(service.url, "/api/submissions/1", tokens["worker"])
            if answer["state"] == "grading":
                victim = next((pid for pid in service.worker_pids() if holds_a_notebook(pid)), None)
            time.sleep(0.1)
        assert victim is not None, "the submission should be grading in a worker"
        os.kill(victim, signal.SIGKILL)
        answer = verdict(service.url, tokens["worker"], 1, timeout=600)
    finally:
        service.stop()
    assert answer["verdict"]["status"] == "graded" and answer["verdict"]["points"] == 88
    [row], _ = rows(db_url)
    assert row.runs == 2 and row.graded == 1, "graded again, once"
    assert levels(db_url, ["worker"]) == {"worker": 2.0}, "one token for the hand-in, none for the lost worker"
