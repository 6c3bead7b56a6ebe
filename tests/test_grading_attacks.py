"""A submission that attacks the grader gains nothing: one test per attack class.

Every attack in `tinytorch_course.examples.attacks` is graded in one sandboxed batch with its honest twin and a
bystander. Each must end with a score no higher than its honest twin's, no file outside its scratch
folder changed, and no hidden-test line in any feedback.
"""

import html
import json
import os
import re
import socket
import subprocess
import sys
import threading

import pytest

from helpers import ASSIGNMENT, AUTO, NOTEBOOK, ROOT, released_course, secret_lines, tool_env, tree_hash
from tinytorch_course.cli import feedback, grades
from tinytorch_course.examples.attacks import ATTACKS, NETWORK_PORT
from tinytorch_course.examples.build import write_submission
from tinytorch_course.grading.autograde import autograde

pytestmark = pytest.mark.slow
TWINS = sorted({honest for honest, _ in ATTACKS.values()})
LITTER = ("pwned-by-student.txt", "filler-")  # what the attacks try to leave behind


def litter(top, depth=6) -> list:
    "Files the attacks would leave, anywhere under `top`."
    found = []
    for folder, dirs, files in os.walk(top):
        if folder.count(os.sep) - str(top).count(os.sep) >= depth or folder.startswith(("/proc", "/sys")):
            dirs[:] = []
        found += [os.path.join(folder, f) for f in files if f.startswith(LITTER)]
    return found


class Listener:
    "Counts connections to the grading machine's loopback port that the network attack targets."

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", NETWORK_PORT))
        self.sock.listen()
        self.sock.settimeout(0.5)
        self.connections, self.running = 0, True
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while self.running:
            try:
                self.sock.accept()[0].close()
                self.connections += 1
            except OSError:
                pass

    def close(self):
        self.running = False
        self.sock.close()


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    course = released_course(tmp_path_factory.mktemp("attacks"), timeout=20)
    course_dir = course.root
    names = [*ATTACKS, *TWINS]
    for name in names:
        write_submission(course_dir, name, name)
    write_submission(course_dir, "bystander", "reference")
    before = {
        "submitted": tree_hash(course_dir / "submitted"),
        "course": tree_hash(course_dir, skip=("autograded", "feedback", "gradebook.db", "grades.csv")),
        "repo": tree_hash(ROOT / "modules") | tree_hash(ROOT / "tinytorch_course"),
    }
    listener = Listener()
    try:
        autograde(course, workers=2, progress=False)
    finally:
        listener.close()
    files = feedback(course)
    rows = {r["student_id"]: r for r in grades(course)}
    return {
        "course": course,
        "before": before,
        "rows": rows,
        "connections": listener.connections,
        "feedback": {p.parent.parent.name: p for p in files},
    }


def score(batch, name) -> float:
    return batch["rows"][name]["score"]


def printed(batch, name) -> str:
    nb = json.loads((batch["course"].autograded(name) / f"{NOTEBOOK}.ipynb").read_text())
    return "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_scores_no_more_than_its_honest_twin(batch, name):
    honest = ATTACKS[name][0]
    print(f"{name}: {score(batch, name):.1f}, honest twin {honest}: {score(batch, honest):.1f}")
    assert score(batch, name) <= score(batch, honest), batch["rows"][name]


def test_honest_twins_and_bystander_keep_their_grades(batch):
    assert score(batch, "reference") == AUTO and score(batch, "bystander") == AUTO
    assert score(batch, "blank") == 0


def test_stolen_source_and_other_students_are_out_of_reach(batch):
    assert "cells stolen from the course: 0" in printed(batch, "steal-source-notebook")
    assert "cells stolen from other students: 0" in printed(batch, "steal-other-student")
    assert score(batch, "steal-source-notebook") == 0 and score(batch, "steal-other-student") == 0


def test_records_and_other_students_are_untouched(batch):
    from nbgrader.api import Gradebook

    assert tree_hash(batch["course"].root / "submitted") == batch["before"]["submitted"]
    assert (
        tree_hash(batch["course"].root, skip=("autograded", "feedback", "gradebook.db", "grades.csv"))
        == batch["before"]["course"]
    )
    assert tree_hash(ROOT / "modules") | tree_hash(ROOT / "tinytorch_course") == batch["before"]["repo"]
    with Gradebook(batch["course"].db_url) as gb:
        extra = [
            g.extra_credit
            for s in gb.assignment_submissions(ASSIGNMENT)
            for g in gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, s.student_id).grades
        ]
    assert not any(extra), "a submission gave itself or others extra credit"


def test_nothing_is_left_outside_the_scratch_folder(batch):
    places = [batch["course"].root, ROOT, "/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~")]
    left = [path for place in places for path in litter(place)]
    assert not left, left[:5]
    assert "places written:" in printed(batch, "tamper-records")


def test_no_network(batch):
    assert batch["connections"] == 0
    out = printed(batch, "network")
    assert "no connection to 127.0.0.1" in out and "connected to" not in out.replace("no connection to", "")
    assert score(batch, "network") == AUTO


def test_fork_bomb_is_contained(batch):
    assert score(batch, "fork-bomb") == AUTO
    assert "processes started:" in printed(batch, "fork-bomb")
    users = subprocess.run(["ps", "-eo", "uid="], capture_output=True, text=True).stdout.split()
    assert not [u for u in users if 61000 <= int(u) < 65000], "a sandbox's processes outlived grading"


def test_filling_the_disk_stops_at_the_caps(batch):
    assert score(batch, "fill-disk") == AUTO
    out = printed(batch, "fill-disk")
    assert re.search(r"(OSError|PermissionError)", out), out[-500:]


def test_asking_the_grader_finds_nothing(batch):
    assert score(batch, "ask-grader-frames") <= score(batch, "steps-only-count")


def test_printing_the_running_cell_leaks_no_hidden_line_and_costs_nothing(batch):
    assert score(batch, "leak-running-cell") == AUTO  # stderr, log lines and warnings never cost a point
    hidden = secret_lines(("HIDDEN TESTS",))
    for name, page in batch["feedback"].items():
        text = html.unescape(re.sub(r"<[^>]+>", "\n", page.read_text()))
        shown = [line for line in hidden if line in text]
        assert not shown, f"{name}'s feedback shows hidden test lines: {shown[:2]}"


def test_forged_numbers_and_swallowed_errors_earn_nothing(batch):
    twin = score(batch, "adam-no-bias-correction")
    assert twin < AUTO
    assert score(batch, "patch-display-hook") <= twin and score(batch, "swallow-exceptions") <= twin


def test_autograde_refuses_without_a_sandbox_and_names_the_fix(tmp_path):
    course = released_course(tmp_path).root
    run = lambda *args: subprocess.run(
        [sys.executable, "-m", "tinytorch_course.cli", *args],
        cwd=course,
        env=tool_env(TINYTORCH_BWRAP="/nonexistent/bwrap"),
        capture_output=True,
        text=True,
    )
    write_submission(course, "ada", "reference")
    refused = run("autograde")
    assert refused.returncode == 2 and "apt-get install -y bubblewrap" in refused.stderr
    assert not (course / "autograded").exists()
    assert run("autograde", "--unsandboxed").returncode == 0
    run("grades")
    [row] = (course / "grades.csv").read_text().splitlines()[1:]
    assert "NO" in row and "WITHOUT a sandbox" in row and f",{AUTO:.1f}," in row


WEIGHTS = {"trajectory", "first-step", "decay-only", "corner", "contract", "resume"}  # probes that read the weights


def test_nan_weights_earn_nothing_from_any_check_that_reads_the_weights(batch):
    """The judge once passed NaN (Python's max(0.0, nan) is 0.0): an optimizer that writes NaN scored 32/88,
    and 75/88 with a cell that turns every later assert into pass. Now every check that reads the
    weights fails, whether or not the visible tests can fail, so at most the points of checks that
    never look at a weight (the base class, state_bytes, the memory estimate, the velocity) remain."""
    from helpers import SOURCE_NB, nbgrader_meta, read_nb
    from tinytorch_course.checks.harness import PROBES

    points = {
        nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c).get("points", 0))
        for c in read_nb(SOURCE_NB)["cells"]
        if nbgrader_meta(c).get("grade")
    }
    probe = {spec["check"]: spec["probe"] for specs in PROBES.values() for spec in specs}
    bound = sum(
        points[cell] * sum(s["probe"] not in WEIGHTS for s in specs) / len(specs) for cell, specs in PROBES.items()
    )
    for name in ("nan-steps", "nan-steps-asserts-off"):
        checks = json.loads((batch["course"].autograded(name) / "grading.json").read_text())["checks"]
        passed = [c["check"] for c in checks if c["passed"] and probe[c["check"]] in WEIGHTS]
        print(f"{name}: {score(batch, name):.2f} of {AUTO:g}; bound {bound:.2f}")
        assert not passed, f"{name} passed checks on NaN weights: {passed}"
        assert score(batch, name) <= bound
