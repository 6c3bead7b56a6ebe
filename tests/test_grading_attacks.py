"""A submission that attacks the grader gains nothing: one test per attack class.

Every attack in `tinytorch_course.examples.attacks` is graded in one sandboxed batch with its honest twin and a
bystander. Each must end with a score no higher than its honest twin's, no file outside its scratch
folder changed, and no hidden-test line in any feedback.
"""

import html
import json
import os
import re
import subprocess
import sys

import pytest

from attack_batch import CGROUPS
from helpers import ASSIGNMENT, AUTO, NOTEBOOK, ROOT, SOURCE_NB, released_course, secret_lines, tool_env, tree_hash
from tinytorch_course.examples.attacks import ATTACKS
from tinytorch_course.examples.build import write_submission

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


@pytest.fixture(scope="module")
def batch(attack_batch):
    "Every attack, its honest twin, a bystander and the submissions that are not files, graded in one batch."
    return attack_batch


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
    "Every sandbox's processes die with it: its control group, which cannot be removed while one lives, is gone."
    from tinytorch_course.grading import cgroup

    assert score(batch, "fork-bomb") == AUTO
    # it forks until its control group's 128 processes are reached, or, starved of CPU, until its cell is stopped
    assert (
        "processes started:" in printed(batch, "fork-bomb") or "ran longer than" in batch["rows"]["fork-bomb"]["notes"]
    )
    made = [p for p in cgroup.ROOT.glob(f"*/{CGROUPS}") if p.is_dir()]
    assert made or cgroup.available() is not None, "the batch's sandboxes ran in control groups"
    left = [g for p in made for g in p.iterdir() if g.is_dir()]
    assert not left, f"a sandbox's processes outlived grading: {left[:3]}"


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
    from helpers import nbgrader_meta, read_nb
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


def test_only_regular_files_are_graded(batch):
    """A symbolic link to the instructor's source notebook was once graded as that notebook (88/88). A link,
    a FIFO, a linked folder or an oversized notebook is refused with its reason, never opened or followed."""
    for name, why in [("link-to-source", "symbolic link"), ("fifo-notebook", "FIFO"),
                      ("linked-folder", "symbolic link"), ("huge-notebook", "MiB")]:  # fmt: skip
        row = batch["rows"][name]
        assert row["score"] == 0 and row["status"] == "refused" and why in row["notes"], row
    assert os.path.islink(batch["course"].root / "submitted" / "link-to-source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb")


def test_output_is_bounded_however_much_is_printed(batch):
    """600 MiB printed (400 lines of 1 MiB, then one 200 MiB write) once left a 629 MB autograded notebook
    and a 630 MB feedback page. Now a cell keeps 1 MiB of text, says how much it dropped, and costs nothing."""
    assert score(batch, "huge-print") == AUTO
    stored = batch["course"].autograded("huge-print") / f"{NOTEBOOK}.ipynb"
    assert stored.stat().st_size < 4 * 2**20 and batch["feedback"]["huge-print"].stat().st_size < 4 * 2**20
    assert "more output of this cell was dropped" in batch["rows"]["huge-print"]["notes"]


def test_hogs_are_held_to_their_own_sandbox(batch):
    """110 busy children and four children of 1.5 GiB each: their sandbox's control group holds them to one
    core, 4 GiB and 128 processes together; they lose nothing of their own and take nothing from others."""
    assert score(batch, "cpu-hog") == AUTO and score(batch, "memory-hog") == AUTO
    assert score(batch, "bystander") == AUTO
    assert "children still holding 1.5 GiB after 8 s: 4" not in printed(batch, "memory-hog")
    from tinytorch_course.grading import cgroup

    left = [p for p in cgroup.ROOT.glob(f"*/{CGROUPS}/*") if p.is_dir()]
    assert not left, f"control groups outlived grading: {left[:3]}"


def test_outputs_recorded_for_one_set_of_inputs_are_worth_nothing_on_the_next(batch):
    """Hidden inputs are drawn per submission. An optimizer that replays the weights a correct one produced on
    the fixed inputs of before passes those inputs (in-process), and scores as its do-nothing twin when graded."""
    from calibration import measure

    recorded = measure("replay-recorded-outputs", [None])  # the inputs it recorded
    drawn = measure("replay-recorded-outputs", ["0123456789abcdef0123456789abcdef"])
    assert len(recorded["failed_checks"]) + 20 < len(drawn["failed_checks"]), "the replay works on what it recorded"
    assert score(batch, "replay-recorded-outputs") <= score(batch, "steps-only-count-asserts-off")
