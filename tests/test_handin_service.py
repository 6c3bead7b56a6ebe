"""The hand-in service as a real process on 127.0.0.1, end to end, three ways: its own sqlite with the
local sandboxed pool, a PostgreSQL server of its own, and a Dask cluster of two workers.

A student hands in with the client (`python -m tinytorch_course.student.submit`): the receipt names
the attempt, the sha256 of the stored bytes (the file's own) and the server's time, then the verdict
names every hidden check. The same bytes again give the same receipt and cost nothing. Every bad
request ends with a clear error and stores and charges nothing. Feedback reaches only its student,
and only once published. The instructor's status page works in Chromium, under a CSP that runs no
script.
"""

import hashlib
import json
import threading

import pytest

from handin import Cluster, Service, cli, handin_course, issue_tokens, roster, student_client, submit, variant, verdict
from handin import request as http
from helpers import AUTO, ROOT, secret_lines
from test_postgres import postgres  # noqa: F401  (a PostgreSQL server of our own)
from tinytorch_course.examples.build import build

pytestmark = pytest.mark.slow
STUDENTS = ["ada", "bob", "cy", "dee", "flood"]
BACKENDS = ["sqlite", "postgres", "dask"]
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return handin_course(tmp_path_factory.mktemp("handin") / "course")


@pytest.fixture(scope="module")
def service(request, course, tmp_path_factory):
    "(service, tokens, store url) of one backend (the test's parameter); each backend has a store of its own."
    folder = tmp_path_factory.mktemp(request.param)
    db_url, cluster = f"sqlite:///{folder / 'handin.db'}", None
    if request.param == "postgres":
        db_url = request.getfixturevalue("postgres")
        from sqlalchemy import create_engine

        from tinytorch_course.service.store import metadata

        engine = create_engine(db_url)
        metadata.drop_all(engine)
        engine.dispose()
    if request.param == "dask":
        cluster = Cluster(folder)
    tokens = (
        issue_tokens(course.root, STUDENTS, db_url) if request.param == "sqlite" else in_process_tokens(course, db_url)
    )
    running = Service(
        course.root,
        db_url,
        engine="dask" if cluster else "local",
        scheduler=cluster.address if cluster else None,
        log=folder / "service.log",
    ).start()
    try:
        yield running, tokens, db_url
    finally:
        running.stop()
        if cluster:
            cluster.close()


ANY_BACKEND = pytest.mark.parametrize("service", BACKENDS, indirect=True)
ANY_DATABASE = pytest.mark.parametrize("service", ["sqlite", "postgres"], indirect=True)  # the engine plays no part


def in_process_tokens(course, db_url, instructors=("prof",)) -> dict:
    "What `make tokens` does (tested on the first backend), without starting another process."
    import csv

    from tinytorch_course.service.admin import tokens

    s = store(db_url)
    try:
        done = tokens(s, course, str(roster(course.root / "roster.csv", STUDENTS)), instructors=instructors)
    finally:
        s.close()
    with open(done["file"], newline="") as f:
        return {row["student"]: row["token"] for row in csv.DictReader(f)}


def store(db_url):
    from tinytorch_course.service.settings import HandInService
    from tinytorch_course.service.store import Store

    return Store(db_url, HandInService(burst=3, refill_seconds=1e6))


def stored(db_url) -> tuple:
    "(number of submissions, number of accepted requests, {student: bucket level}) in the store."
    from sqlalchemy import func, select

    from tinytorch_course.service.store import buckets, requests, submissions

    s = store(db_url)
    try:
        with s.read() as conn:
            counts = [conn.execute(select(func.count()).select_from(t)).scalar_one() for t in (submissions, requests)]
            levels = {r.student: round(r.level, 2) for r in conn.execute(select(buckets))}
    finally:
        s.close()
    return counts[0], counts[1], levels


@ANY_BACKEND
def test_a_hand_in_shows_the_receipt_then_every_hidden_check(service, course, tmp_path):
    running, tokens, db_url = service
    notebook = tmp_path / "optimizers.ipynb"
    notebook.write_bytes(build("adam-no-bias-correction", course.root))
    run = student_client(running.url, tokens["ada"], str(notebook))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    sha = hashlib.sha256(notebook.read_bytes()).hexdigest()
    assert "Received: attempt 1 at" in out and "(server time)" in out
    assert f"sha256 {sha}: the bytes of your saved file" in out
    assert "FAIL  first Adam step (lr=0.01)" in out and "pass  SGD (lr=0.1)" in out
    assert "Written answers (12 points): graded by your instructor." in out
    hidden = secret_lines(("HIDDEN TESTS",))
    assert not [line for line in hidden if line in out]
    s = store(db_url)
    try:
        [row] = [r for r in s.handins() if r[0] == "ada"]
        assert bytes(row[2].body) == notebook.read_bytes(), "the service stored exactly the file's bytes"
    finally:
        s.close()

    again = student_client(running.url, tokens["ada"], str(notebook))
    assert "attempt 1" in again.stdout and "already received" in again.stdout and "nothing was charged" in again.stdout
    assert again.stdout.split("Autograded:")[1] == out.split("Autograded:")[1], "the same grade"
    assert stored(db_url)[2]["ada"] == 2.0, "one token for one submission"


@ANY_DATABASE
def test_the_reference_earns_every_autograded_point(service, course):
    running, tokens, _ = service
    status, body, headers = submit(running.url, tokens["bob"], build("reference", course.root))
    assert status == 201 and body["receipt"]["attempt"] == 1, body
    assert (
        "script-src" not in headers["content-security-policy"]
        and "default-src 'none'" in headers["content-security-policy"]
    )
    answer = verdict(running.url, tokens["bob"], 1)
    assert answer["verdict"]["points"] == AUTO and answer["verdict"]["status"] == "graded"
    assert all(c["passed"] for cell in answer["verdict"]["cells"] for c in cell["checks"])
    assert answer["receipt"]["sha256"] == hashlib.sha256(build("reference", course.root)).hexdigest()


@ANY_DATABASE
def test_every_bad_request_is_refused_and_nothing_is_stored_or_charged(service, course, tmp_path):
    running, tokens, db_url = service
    reference = build("reference", course.root)
    before = stored(db_url)
    cy = tokens["cy"]
    cases = [
        ("no token", submit(running.url, None, reference, student="cy"), 401, "No token"),
        ("a wrong token", submit(running.url, "cy." + "A" * 43, reference), 401, "not known"),
        ("not a token", submit(running.url, "cy", reference, student="cy"), 401, "not a hand-in token"),
        ("another student's name", submit(running.url, cy, reference, student="ada"), 403, "belongs to cy"),
        (
            "a path in the file name",
            submit(running.url, cy, reference, filename="../optimizers.ipynb"),
            400,
            "no folder",
        ),
        ("another file", submit(running.url, cy, reference, filename="notes.txt"), 400, "must be optimizers.ipynb"),
        ("not a notebook", submit(running.url, cy, b"print('hello')"), 400, "not a readable notebook"),
        ("not JSON text", submit(running.url, cy, b"\xff\xfe\x00binary"), 400, "not a readable notebook"),
        (
            "another notebook",
            submit(
                running.url, cy, json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()
            ),
            400,
            "not optimizers.ipynb of this assignment",
        ),
        ("over the cap", submit(running.url, cy, reference + b" " * (1 << 20)), 413, "larger than the service accepts"),
        ("an old request", submit(running.url, cy, reference, when=1_000_000_000), 400, "away from the server's time"),
        ("a time that is no time", submit(running.url, cy, reference, when=float("nan")), 400, "away from the server"),
        ("a bad request id", submit(running.url, cy, reference, nonce="x"), 400, "request id"),
    ]
    for what, (status, body, _), want_status, want in cases:
        assert status == want_status and want in body.get("error", ""), (what, status, body)
    assert stored(db_url) == before, "nothing stored, nothing charged"

    # a replayed request: the same request id again, with the same or other bytes
    nonce = "replay-" + "r" * 20
    status, first, _ = submit(running.url, cy, reference, nonce=nonce)
    assert status == 201
    after_one = stored(db_url)
    for body in (reference, build("blank", course.root)):
        status, replay, _ = submit(running.url, cy, body, nonce=nonce)
        assert status == 409 and "already received" in replay["error"] and replay["receipt"]["attempt"] == 1
    assert stored(db_url) == after_one

    # a revoked token, then a new one (the CLI: `make tokens ARGS="--revoke cy"`, then `make tokens ROSTER=...`)
    from tinytorch_course.service.admin import tokens as issue

    s = store(db_url)
    issue(s, course, revoke=["cy"])
    status, body, _ = submit(running.url, cy, build("blank", course.root))
    assert status == 401 and "revoked" in body["error"]
    assert stored(db_url) == after_one
    new = next(
        t for p, t in in_process_tokens(course, db_url, ()).items() if p == "cy"
    )  # without a live token: a new one
    s.close()
    assert new != cy and submit(running.url, cy, reference)[0] == 401
    status, body, _ = submit(running.url, new, reference)
    assert status == 200 and body["receipt"]["attempt"] == 1, "the new token is cy's: the same bytes, the same receipt"
    verdict(running.url, new, 1)


@ANY_BACKEND
def test_a_flood_from_one_token_gets_its_burst_and_then_429(service, course):
    running, tokens, db_url = service
    bodies = [variant(course.root, "reference", f"flood {k}", damaged=True) for k in range(12)]  # graded at once
    answers = [None] * len(bodies)

    def send(k):
        answers[k] = submit(running.url, tokens["flood"], bodies[k])

    threads = [threading.Thread(target=send, args=(k,)) for k in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(a[0] for a in answers)
    assert statuses == [201] * 3 + [429] * 9, statuses
    for status, body, headers in answers:
        if status == 429:
            assert (
                body["retry_after"] > 0
                and int(headers["retry-after"]) >= 1
                and "next hand-in is possible" in body["error"]
            )
    submissions, _, levels = stored(db_url)
    assert levels["flood"] == 0.0
    for attempt in (1, 2, 3):
        answer = verdict(running.url, tokens["flood"], attempt)["verdict"]
        assert answer["status"] == "unreadable" and answer["points"] == 0 and "metadata is damaged" in answer["reason"]


@ANY_DATABASE
def test_feedback_reaches_only_its_student_once_published(service, course, tmp_path, request):
    running, tokens, _ = service
    status, body, _ = http(running.url, "/api/feedback", tokens["dee"])
    assert status == 404 and "not published" in body["error"]
    for student, text in [("dee", "Dee's feedback <b>page</b>"), ("ada", "Ada's own page")]:
        page = course.root / "feedback" / student / "07_optimizers" / "optimizers.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f"<html><body>{text}</body></html>")
    (tmp_path / "instructor-token.txt").write_text(tokens["prof"] + "\n")
    if request.node.callspec.params["service"] == "sqlite":
        out = cli(course.root, "publish", "--url", running.url, "--token-file", str(tmp_path / "instructor-token.txt"))
        assert "published 2 feedback pages" in out
    else:  # what `make publish` does, without starting another process
        from tinytorch_course.service.admin import publish

        assert publish(course, running.url, tokens["prof"])["published"] == ["ada", "dee"]
    status, body, _ = http(running.url, "/api/feedback", tokens["dee"])
    assert status == 200 and "Dee's feedback" in body["html"] and "Ada" not in body["html"]
    saved = tmp_path / "feedback" / "optimizers.html"
    run = student_client(running.url, tokens["ada"], "--feedback", "--out", str(saved))
    assert run.returncode == 0 and f"saved in {saved}" in run.stdout, run.stdout + run.stderr
    assert "Ada's own page" in saved.read_text() and "Dee" not in saved.read_text()
    status, _, _ = http(running.url, "/api/feedback/dee", tokens["ada"], "PUT", b"<p>forged</p>")
    assert status == 403, "a student token cannot publish"
    status, _, _ = http(running.url, "/api/feedback/dee", tokens["prof"], "DELETE")
    assert status == 200 and http(running.url, "/api/feedback", tokens["dee"])[0] == 404


@ANY_BACKEND
def test_the_status_page_in_chromium(service, course, request):
    from playwright.sync_api import sync_playwright

    running, tokens, _ = service
    status, body, _ = submit(running.url, tokens["bob"], variant(course.root, "reference", "status", damaged=True))
    assert status in (200, 201) and verdict(running.url, tokens["bob"], body["receipt"]["attempt"])  # one to show
    status, info, _ = http(running.url, "/api/status", tokens["prof"])
    assert status == 200 and len(info["slots"]) == 2 and info["done"] >= 1 and info["p50"] is not None
    out = ROOT / "artifacts" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 1300})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        response = page.goto(f"{running.url}/status")
        assert page.url.endswith("/login")
        assert "default-src 'none'" in response.headers["content-security-policy"]
        page.fill("input[name=token]", tokens["ada"])
        page.click("button[type=submit]")
        assert "student token" in page.locator("#login-error").inner_text()
        page.fill("input[name=token]", tokens["prof"])
        page.click("button[type=submit]")
        page.wait_for_url("**/status")
        assert int(page.locator("#workers").inner_text()) == 2, (
            "two grading slots (two local workers, or two Dask workers)"
        )
        assert int(page.locator("#queued").inner_text()) >= 0
        assert page.locator("#p50").inner_text().endswith(" s")
        recent = page.locator("#recent + table").inner_text()
        assert "bob" in recent
        assert page.locator("script").count() == 0
        page.screenshot(path=str(out / f"handin-status-{request.node.callspec.params['service']}.png"), full_page=True)
        browser.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors
