"""Ready kernels (`grading/ready.py`): started before the submission comes, each used once, never stale.

Each test runs the grader's own executor (`RobustExecute`, sandboxed) on a one-cell notebook that
prints the sha256 of the notebook file it finds in its home, and watches which kernel served it.
"""

import hashlib
import os
import threading
from pathlib import Path

import nbformat
import pytest
from traitlets.config import Config

from tinytorch_course.grading import cgroup, ready
from tinytorch_course.grading.preprocessors import RobustExecute
from tinytorch_course.grading.worker import prepare_next

CELL = 'import hashlib\nprint(hashlib.sha256(open("optimizers.ipynb", "rb").read()).hexdigest())'


def config(memory: int = 2 * 2**30) -> Config:
    c = Config()
    c.SandboxedKernelManager.memory_limit = memory
    c.SandboxedKernelManager.cgroups = cgroup.available() is None
    return c


def submission(folder: Path, marker: str) -> tuple:
    "A notebook in `folder` (as the grader lays one out) and the sha256 of its bytes."
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL), nbformat.v4.new_markdown_cell(marker)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "optimizers.ipynb"
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return nb, hashlib.sha256(path.read_bytes()).hexdigest()


def execute(folder: Path, nb, c: Config) -> str:
    "What the first cell printed, run by the grader's executor in the sandbox."
    nb, _ = RobustExecute(config=c).preprocess(nb, {"metadata": {"path": str(folder)}})
    out = nb.cells[0].outputs
    assert out and out[0].get("output_type") == "stream", out
    return out[0]["text"].strip()


@pytest.fixture
def taken(monkeypatch):
    "Every kernel manager `ready.take` handed to an execution (None when it had none that fit)."
    seen, real = [], ready.take
    monkeypatch.setattr(ready, "take", lambda execute: seen.append(real(execute)) or seen[-1])
    yield seen
    ready.discard()


def spare():
    assert threading.get_ident() in ready._spares, "prepare() left a ready kernel"
    return ready._spares[threading.get_ident()][1]


def gone(km) -> list:
    "What a shut-down kernel left behind (nothing, when all is well)."
    left = []
    if km.provisioner is not None and km.provisioner.process is not None and km.provisioner.process.poll() is None:
        left.append("its process")
    if km._box.exists():
        left.append(f"its folder {km._box}")
    if km._group is not None or km._lease is not None:
        left.append("its control group or user")
    return left


def test_a_ready_kernel_serves_the_next_submission_with_its_notebook_once(tmp_path, taken):
    c = config()
    prepare_next(c)
    km, process = spare(), spare().provisioner.process
    first, digest = submission(tmp_path / "a", "first")
    assert execute(tmp_path / "a", first, c) == digest, "the ready kernel sees this submission's notebook"
    assert taken == [km], "the execution used the ready kernel"
    assert process.poll() is not None and not km._box.exists(), "and it was shut down after its one submission"
    second, digest = submission(tmp_path / "b", "second")
    assert execute(tmp_path / "b", second, c) == digest
    assert taken[1] is None, "no kernel serves twice: the next submission started its own"


def test_a_ready_kernel_started_with_other_settings_is_shut_down_unused(tmp_path, taken):
    prepare_next(config(memory=2 * 2**30))
    km = spare()
    nb, digest = submission(tmp_path, "other limits")
    assert execute(tmp_path, nb, config(memory=3 * 2**30)) == digest
    assert taken == [None], "a kernel with another memory limit does not serve"
    assert gone(km) == []


def test_a_ready_kernel_for_another_file_name_is_shut_down_unused(tmp_path, taken):
    c = config()
    ready.prepare(RobustExecute(config=c), ["other.ipynb"])
    km = spare()
    nb, digest = submission(tmp_path, "other name")
    assert execute(tmp_path, nb, c) == digest
    assert taken == [None] and gone(km) == []


def test_a_ready_kernel_that_died_while_waiting_is_replaced(tmp_path, taken):
    c = config()
    prepare_next(c)
    km = spare()
    os.kill(km.provisioner.process.pid, 9)
    km.provisioner.process.wait()
    nb, digest = submission(tmp_path, "after a death")
    assert execute(tmp_path, nb, c) == digest
    assert taken == [None] and gone(km) == []


def test_discard_leaves_no_process_folder_group_or_user():
    prepare_next(config())
    km = spare()
    ready.discard()
    assert threading.get_ident() not in ready._spares and gone(km) == []


def test_each_thread_keeps_its_own_ready_kernel(tmp_path, taken):
    c, other = config(), {}
    prepare_next(c)
    mine = spare()
    thread = threading.Thread(target=lambda: (prepare_next(c), other.update(km=spare())))
    thread.start()
    thread.join()
    assert other["km"] is not mine and spare() is mine, "a second grading thread does not take or replace mine"
    nb, digest = submission(tmp_path, "mine")
    assert execute(tmp_path, nb, c) == digest and taken == [mine]
    ready._discard_all()
    assert ready._spares == {} and gone(other["km"]) == []
