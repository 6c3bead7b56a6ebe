"""Grading on Dask `distributed`: a real scheduler and two worker processes on 127.0.0.1; one worker is
killed mid-batch; the batch still finishes, its submissions are graded elsewhere, and the gradebook
equals a local run's, cell by cell: nothing lost, nothing doubled."""

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from handin import Cluster
from helpers import ASSIGNMENT, NOTEBOOK, released_course, tool_env
from tinytorch_course.examples.build import write_submission
from tinytorch_course.grading.autograde import autograde
from tinytorch_course.grading.record import MARKER

pytestmark = pytest.mark.slow
EXAMPLES = [
    "reference",
    "blank",
    "adam-no-bias-correction",
    "plain-whole-arrays",
    "sgd-slice-assign-0d",
    "estimate-total-without-grads",
    "kernel-exit",
    "adamw-decay-without-lr",
]
DASK = str(Path(sys.executable).with_name("dask"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    "A scheduler and two single-threaded workers, each its own process; yields (address, workers)."
    running = Cluster(tmp_path)  # its log: tmp_path / "dask.log"
    try:
        yield running.address, running.workers
    finally:
        running.close()


def gradebook(course) -> dict:
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, course.course_id) as gb:
        return {
            s.student_id: {
                g.name: round(g.score, 6)
                for g in gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, s.student_id).grades
            }
            for s in gb.assignment_submissions(ASSIGNMENT)
        }


def test_a_worker_killed_mid_batch_loses_nothing(cluster, tmp_path):
    address, workers = cluster
    local, remote = released_course(tmp_path / "local"), released_course(tmp_path / "remote")
    for course in (local, remote):
        for name in EXAMPLES:
            write_submission(course.root, name, name)
    autograde(local, workers=2, progress=False)

    batch = subprocess.Popen(
        [sys.executable, "-m", "tinytorch_course.cli", "autograde", "--scheduler", address],
        cwd=remote.root,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    done = lambda: len(list(remote.root.glob(f"autograded/*/{ASSIGNMENT}/{MARKER}")))
    deadline = time.monotonic() + 600
    while done() < 1 and batch.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert 1 <= done() < len(EXAMPLES), "the kill should land mid-batch"
    workers[0].send_signal(signal.SIGKILL)  # no nanny: this worker is gone for good
    out, _ = batch.communicate(timeout=900)
    assert batch.returncode == 0, out[-3000:]

    assert done() == len(EXAMPLES)
    assert gradebook(remote) == gradebook(local), "the same grades as a local run, each submission once"
    assert "name: w1" in (tmp_path / "dask.log").read_text(), "the scheduler saw the worker go"
