"""Every attack on the grader (examples/attacks.py), and its honest twin, handed in through the service:
each gets the points the batch grader gives it, and no verdict shows a hidden line.

The batch is the session's attack batch (attack_batch.py); the service's course holds that course's
secret, so each notebook meets the same hidden inputs in both. The hand-in of record then goes the usual
way: `make collect` (the service is the source) writes each student's notebook and timestamp to
submitted/, and `make autograde`, `make grades` and `make report` run unchanged on three of them (the
batch has graded all of them already). The report shows the attempts and times to verdict.
"""

import csv
import hashlib
import json
import shutil
import threading

import pytest

from handin import Service, cli, handin_course, issue_tokens, submit, verdict
from helpers import ASSIGNMENT, AUTO, NOTEBOOK, secret_lines
from tinytorch_course.examples.attacks import ATTACKS
from tinytorch_course.examples.build import build
from tinytorch_course.grading.course import SECRET

pytestmark = pytest.mark.slow
NAMES = sorted({*ATTACKS, *(honest for honest, _ in ATTACKS.values())})
REGRADED = ["reference", "patch-display-hook", "nan-steps"]  # what the usual batch grades again from collect


@pytest.fixture(scope="module")
def handed_in(tmp_path_factory, attack_batch):
    tmp = tmp_path_factory.mktemp("attacks")
    course = handin_course(tmp / "course", timeout=20)
    shutil.copy(attack_batch["course"].root / SECRET, course.root / SECRET)  # the same draws as the batch
    tokens = issue_tokens(course.root, NAMES, instructor=None)  # the default store: handin.db at the course root
    service = Service(course.root, log=tmp / "service.log").start()
    sent, answers = {name: build(name, course.root) for name in NAMES}, {}
    try:

        def hand_in(name):
            status, body, _ = submit(service.url, tokens[name], sent[name])
            assert status == 201, (name, body)
            answers[name] = {"receipt": body["receipt"], **verdict(service.url, tokens[name], 1, timeout=1200)}

        threads = [threading.Thread(target=hand_in, args=(name,)) for name in NAMES]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        service.stop()
    assert sorted(answers) == NAMES
    collected = cli(course.root, "collect")
    copies = {name: (course.submitted(name) / f"{NOTEBOOK}.ipynb").read_bytes() for name in NAMES}
    stamps = {name: (course.submitted(name) / "timestamp.txt").read_text() for name in NAMES}
    for name in set(NAMES) - set(REGRADED):
        shutil.rmtree(course.root / "submitted" / name)
    cli(course.root, "autograde", "--workers", "2")
    cli(course.root, "grades")
    cli(course.root, "report")
    with open(course.root / "grades.csv", newline="") as f:
        regraded = {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)}
    batch = {name: attack_batch["rows"][name]["score"] for name in NAMES}
    return {
        "course": course,
        "answers": answers,
        "batch": batch,
        "regraded": regraded,
        "sent": sent,
        "collected": collected,
        "copies": copies,
        "stamps": stamps,
    }


@pytest.mark.parametrize("name", NAMES)
def test_each_scores_through_the_service_as_in_the_batch(handed_in, name):
    points = handed_in["answers"][name]["verdict"]["points"]
    print(f"{name}: service {points:.2f}, batch {handed_in['batch'][name]:.2f}")
    assert points == pytest.approx(handed_in["batch"][name], abs=1e-6)


def test_attacks_gain_nothing_and_no_verdict_shows_a_hidden_line(handed_in):
    answers = handed_in["answers"]
    for attack, (honest, _) in ATTACKS.items():
        assert answers[attack]["verdict"]["points"] <= answers[honest]["verdict"]["points"], attack
    assert answers["reference"]["verdict"]["points"] == AUTO
    hidden = secret_lines(("HIDDEN TESTS",))
    for name, answer in answers.items():
        text = json.dumps(answer)
        assert not [line for line in hidden if line in text], name
        assert "BEGIN HIDDEN" not in text and '_observe("' not in text, name  # no hidden call, as a traceback shows it


def test_the_hand_in_of_record_goes_through_the_usual_batch(handed_in):
    course = handed_in["course"]
    assert f"collected {len(NAMES)} hand-ins from the service" in handed_in["collected"]
    for name in NAMES:
        data = handed_in["copies"][name]
        assert data == handed_in["sent"][name]
        assert hashlib.sha256(data).hexdigest() == handed_in["answers"][name]["receipt"]["sha256"]
        assert handed_in["stamps"][name].strip().endswith("UTC")
    for name in REGRADED:
        assert (course.root / "autograded" / name / ASSIGNMENT / f"{NOTEBOOK}.ipynb").exists()
        assert handed_in["regraded"][name] == pytest.approx(handed_in["answers"][name]["verdict"]["points"], abs=1e-6)
    report = (course.root / "report.html").read_text()
    assert 'id="handins"' in report and f"{len(NAMES)} verdicts; time to verdict p50" in report
