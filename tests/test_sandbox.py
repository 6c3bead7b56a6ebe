"""The sandbox a grading kernel runs in, tested directly (seconds): what it sees, what it may do."""

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import ROOT
from tinytorch_course.grading import sandbox

PROBE = f'''
import os, socket, sys
print("uid", os.getuid())
print("course", os.path.exists({str(ROOT / "modules")!r}))
try:
    import tinytorch.core.optimizers
    print("solution importable")
except ImportError:
    print("solution withheld")
import tinytorch.core.tensor, tinytorch_course.checks.harness
print("prerequisites", tinytorch.core.tensor.__file__.startswith("{sandbox.LIB}"))
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    print("network")
except OSError:
    print("no network")
for folder in ("{sandbox.HOME}", "/tmp", {str(ROOT)!r}, "/usr", "/opt/grader/lib"):
    try:
        open(os.path.join(folder, "x"), "w").write("x")
        print("writable", folder)
    except OSError:
        pass
print("processes", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
'''


@pytest.fixture(scope="module")
def report():
    sandbox.check_sandbox()
    with tempfile.TemporaryDirectory() as tmp:
        box = Path(tmp)
        (box / "conn").mkdir()
        sandbox.grading_lib(box / "lib")
        cmd = sandbox.sandbox_command([sys.executable, "-c", PROBE], box, [], sandbox.sandbox_uid())
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, preexec_fn=sandbox.close_inherited_fds())
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_kernel_sees_no_course_and_no_solution(report):
    assert "course False" in report and "solution withheld" in report and "prerequisites True" in report


def test_kernel_has_no_network_and_no_other_processes(report):
    assert "no network" in report
    assert "processes [1, 2]" in report  # bwrap's init and itself


def test_kernel_writes_only_its_home_and_tmp(report):
    writable = [line.split(" ", 1)[1] for line in report.splitlines() if line.startswith("writable")]
    assert writable == [sandbox.HOME, "/tmp"]


def test_kernel_runs_as_an_unprivileged_user_when_grading_as_root(report):
    uid = int(report.split("uid ")[1].split()[0])
    assert uid != 0 or sandbox.sandbox_uid() is None


def test_private_tmp_is_mounted_before_an_environment_that_lives_under_tmp(monkeypatch):
    "A venv under /tmp (a clean clone in a temporary folder) must not be hidden by the kernel's own /tmp."
    monkeypatch.setattr(sandbox, "_environment_roots", lambda: ["/tmp/clone/.venv"])
    cmd = sandbox.sandbox_command(["/tmp/clone/tests/../.venv/bin/python"], Path("/tmp/box"), [], None)
    tmpfs = cmd.index("/tmp", cmd.index("--tmpfs"))
    assert cmd.index("/tmp/clone/.venv") > tmpfs
    assert cmd[-1] == "/tmp/clone/.venv/bin/python"  # and no "..": the folders it names are not mounted
