"""One sandboxed batch of every attack (tinytorch_course.examples.attacks), its honest twin, a bystander and the
submissions that are not regular files: graded once per test session, read by test_grading_attacks.py and
compared with the hand-in service's verdicts by test_handin_attacks.py."""

import json
import os
import socket
import threading

import pytest

from helpers import ASSIGNMENT, NOTEBOOK, ROOT, SOURCE_NB, released_course, tree_hash
from tinytorch_course.cli import feedback, grades
from tinytorch_course.examples.attacks import ATTACKS, NETWORK_PORT
from tinytorch_course.examples.build import build, write_submission
from tinytorch_course.grading.autograde import autograde

TWINS = sorted({honest for honest, _ in ATTACKS.values()})
CGROUPS = f"tinytorch-attacks-{os.getpid()}"


class Listener:
    "Counts connections to the grading machine's loopback port that the network attack targets."

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))  # a free port, named to the attack through the environment
        self.port = self.sock.getsockname()[1]
        os.environ[NETWORK_PORT] = str(self.port)
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


@pytest.fixture(scope="session")
def attack_batch(tmp_path_factory):
    course = released_course(tmp_path_factory.mktemp("attacks"), timeout=20)
    course_dir = course.root
    listener = Listener()  # first: the network attack is built aimed at its port
    names = [*ATTACKS, *TWINS]
    for name in names:
        write_submission(course_dir, name, name)
    write_submission(course_dir, "bystander", "reference")
    for name, make in NOT_FILES.items():  # submissions that are not regular files, or are too large
        folder = course_dir / "submitted" / name / ASSIGNMENT
        folder.parent.parent.mkdir(parents=True, exist_ok=True)
        make(course_dir, folder)
    before = {
        "submitted": tree_hash(course_dir / "submitted"),
        "course": tree_hash(course_dir, skip=("autograded", "feedback", "gradebook.db", "grades.csv")),
        "repo": tree_hash(ROOT / "modules") | tree_hash(ROOT / "tinytorch_course"),
    }
    os.environ["TINYTORCH_CGROUP_PARENT"] = CGROUPS  # this batch's control groups, apart from any other grader's
    try:
        autograde(course, workers=2, progress=False)
    finally:
        listener.close()
        del os.environ["TINYTORCH_CGROUP_PARENT"]
    files = feedback(course)
    rows = {r["student_id"]: r for r in grades(course)}
    yield {
        "course": course,
        "before": before,
        "rows": rows,
        "connections": listener.connections,
        "feedback": {p.parent.parent.name: p for p in files},
    }
    from tinytorch_course.grading import cgroup

    for folder in cgroup.ROOT.glob(f"*/{CGROUPS}"):
        try:
            folder.rmdir()  # empty by then, unless test_fork_bomb_is_contained failed
        except OSError:
            pass


def _huge_notebook(course_dir, folder):
    "The reference with one markdown cell of 100 MiB: once, it went straight through to a 103 MB feedback page."
    folder.mkdir(parents=True)
    nb = json.loads(build("reference", course_dir))
    nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "x" * (100 * 2**20)})
    (folder / f"{NOTEBOOK}.ipynb").write_text(json.dumps(nb))


NOT_FILES = {  # student: how its submission is made (none can be made by write_submission)
    "link-to-source": lambda course_dir, folder: (folder.mkdir(parents=True),
                                                  os.symlink(SOURCE_NB, folder / f"{NOTEBOOK}.ipynb")),
    "fifo-notebook": lambda course_dir, folder: (folder.mkdir(parents=True), os.mkfifo(folder / f"{NOTEBOOK}.ipynb")),
    "linked-folder": lambda course_dir, folder: os.symlink(course_dir / "submitted" / "bystander",
                                                           folder.parent, target_is_directory=True),
    "huge-notebook": _huge_notebook,
}  # fmt: skip
