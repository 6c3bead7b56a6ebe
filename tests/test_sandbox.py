"""The sandbox a grading kernel runs in, tested directly (seconds): what it sees, what it may do.

Besides the basics (no course, no solution, no network, no other processes, writes only its home and
/tmp, a user of its own), three cases the kernel environment closes: the grader installed as a package
(not cloned) in a system-like prefix, configuration with a password planted in every Jupyter and
JupyterHub config path, and the numpy a student's Binder has.
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT
from tinytorch_course.grading import cgroup, kernel_env, sandbox

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

# What a hostile kernel looks for: the solution, the grader's code, its packages, secrets in config files.
SEARCH = r"""
import importlib, json, os, sys
secret = sys.argv[1]
found = {"files": [], "secret_in": [], "imports": []}
names = {"optimizers.py", "judge.py", "submissions.py", "attacks.py", "nbgrader_config.py", "jupyterhub_config.py",
         "gradebook.db"}
for top, dirs, files in os.walk("/"):
    if top.startswith(("/proc", "/sys", "/dev")):
        dirs[:] = []
        continue
    for name in files:
        path = os.path.join(top, name)
        if name in names:
            found["files"].append(path)
        if top.startswith(("/etc", "/usr/local", "/usr/etc", "/opt", "/srv", "/home", "/root")) or "jupyter" in top:
            try:
                if os.path.getsize(path) < 2**20 and secret in open(path, errors="ignore").read():
                    found["secret_in"].append(path)
            except OSError:
                pass
for module in ("nbgrader", "sqlalchemy", "distributed", "psycopg", "playwright", "torch",
               "tinytorch_course.checks.judge", "tinytorch_course.examples", "tinytorch.core.optimizers"):
    try:
        importlib.import_module(module)
        found["imports"].append(module)
    except Exception:
        pass
import numpy
found["numpy"] = numpy.__version__
print(json.dumps(found))
"""


def run_sandboxed(code: str, *args: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    "Run `code` as a sandboxed kernel would run, started by the grader at `python`."
    driver = f"""
import subprocess, sys, tempfile
from pathlib import Path
from tinytorch_course.grading import sandbox
with tempfile.TemporaryDirectory() as tmp:
    box = Path(tmp)
    (box / "conn").mkdir()
    sandbox.grading_lib(box / "lib")
    lease = sandbox.lease_user()
    cmd = sandbox.sandbox_command([sys.executable, "-c", {code!r}, *{list(args)!r}], box, [], lease and lease.uid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, preexec_fn=sandbox.close_inherited_fds())
sys.stdout.write(out.stdout)
sys.stderr.write(out.stderr)
sys.exit(out.returncode)
"""
    return subprocess.run([python, "-c", driver], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def report():
    sandbox.check_sandbox()
    out = run_sandboxed(PROBE)
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
    assert uid in sandbox.UIDS if os.geteuid() == 0 else uid != 0


def test_private_tmp_is_mounted_before_an_environment_that_lives_under_tmp(monkeypatch):
    "A kernel environment under /tmp (a clean clone in a temporary folder) must not be hidden by the kernel's /tmp."
    monkeypatch.setattr(kernel_env, "python", lambda path=None: Path("/tmp/clone/.kernel-env/bin/python"))
    monkeypatch.setattr(kernel_env, "base_prefix", lambda path=None: Path("/usr"))
    cmd = sandbox.sandbox_command(["python"], Path("/tmp/box"), [], None, env_path=Path("/tmp/clone/.kernel-env"))
    tmpfs = cmd.index("/tmp", cmd.index("--tmpfs"))
    assert cmd.index("/tmp/clone/.kernel-env") > tmpfs
    assert cmd[-1] == "/tmp/clone/.kernel-env/bin/python"


def test_the_kernel_runs_binders_numpy_and_none_of_the_graders_packages():
    out = run_sandboxed(SEARCH, "no-secret-here")
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout)
    pinned = next(
        line.split("==")[1]
        for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
        if line.startswith("numpy==")
    )
    assert found["numpy"] == pinned
    assert found["imports"] == [], f"the kernel imported the grader's packages: {found['imports']}"


@pytest.fixture
def installed_grader():
    "The grader installed as a package (copied into site-packages, not editable) in a venv under /usr/local."
    if os.geteuid() != 0:
        pytest.skip("installing under /usr/local needs root, as an image build has")
    prefix = Path(f"/usr/local/tt-grader-{secrets.token_hex(4)}")
    try:
        subprocess.run(
            [getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(prefix)], check=True
        )
        site = Path(
            subprocess.run(
                [str(prefix / "bin" / "python"), "-c", "import site; print(site.getsitepackages()[0])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        for package in ("tinytorch", "tinytorch_course"):  # what `pip install .` puts there: solutions included
            shutil.copytree(ROOT / package, site / package, ignore=shutil.ignore_patterns("__pycache__"))
        deps = next(p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix))
        (site / "grader-dependencies.pth").write_text(deps + "\n")  # nbgrader, jupyter_client, ... from the dev venv
        yield prefix
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def test_an_installed_grader_leaves_nothing_for_the_kernel_to_read_or_import(installed_grader):
    """Before: a venv under /usr/local with `pip install .` let a kernel read tinytorch/core/optimizers.py,
    examples and judge.py from its own sys.path (88/88 autograded points for a blank notebook)."""
    python = str(installed_grader / "bin" / "python")
    where = subprocess.run(
        [python, "-c", "import tinytorch_course; print(tinytorch_course.__file__)"],
        capture_output=True,
        text=True,
        cwd="/",
    ).stdout
    assert where.startswith(str(installed_grader)), "the grader under test is the installed copy"
    out = run_sandboxed(SEARCH, "no-secret-here", python=python)
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout)
    assert found["files"] == [], f"the kernel can read the grader's files: {found['files'][:5]}"
    assert found["imports"] == []


JUPYTER_CONFIGS = [
    "/etc/jupyter",
    "/usr/local/etc/jupyter",
    "/usr/etc/jupyter",
    "/etc/jupyterhub",
    f"{sys.prefix}/etc/jupyter",
    os.path.expanduser("~/.jupyter"),
]


@pytest.fixture
def planted_secret():
    "A db_url with a password, planted in a config file in every Jupyter and JupyterHub config path."
    if os.geteuid() != 0:
        pytest.skip("planting files in /etc needs root")
    secret, planted, made = f"postgresql+psycopg://grader:{secrets.token_hex(12)}@db/course", [], []
    try:
        for folder in map(Path, JUPYTER_CONFIGS):
            missing = [p for p in [folder, *folder.parents] if not p.exists()]
            folder.mkdir(parents=True, exist_ok=True)
            made += missing
            path = folder / f"tinytorch_planted_{secrets.token_hex(3)}_config.py"
            path.write_text(f"c.CourseDirectory.db_url = {secret!r}\n")
            planted.append(path)
        yield secret
    finally:
        for path in planted:
            path.unlink(missing_ok=True)
        for folder in sorted(made, key=lambda p: len(str(p)), reverse=True):
            shutil.rmtree(folder, ignore_errors=True)


def test_no_config_path_reaches_the_kernel(planted_secret):
    out = run_sandboxed(SEARCH, planted_secret)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["secret_in"] == []


def test_a_sandbox_lives_in_a_control_group_of_its_own():
    if cgroup.available() is not None:
        pytest.skip(cgroup.available())
    group = cgroup.Group.create(cgroup.LIMITS)
    try:
        code = "import time\nend = time.time() + 1.0\nwhile time.time() < end: pass"
        subprocess.run([*group.exec_prefix(), sys.executable, "-c", code], check=True)
        assert group.cpu_seconds() > 0.5, "the group counts its processes' CPU time"
    finally:
        group.delete()
    assert not any(Path(cgroup.ROOT).rglob(group.name.split("/")[-1])), "the group is gone"


def test_two_live_sandboxes_never_share_a_user():
    if os.geteuid() != 0:
        pytest.skip("sandbox users exist only when grading as root")
    leases = [sandbox.lease_user() for _ in range(20)]
    try:
        assert len({lease.uid for lease in leases}) == 20
    finally:
        for lease in leases:
            lease.release()


def test_groups_left_by_killed_workers_are_swept_and_live_ones_kept():
    if cgroup.available() is not None:
        pytest.skip(cgroup.available())
    dead = subprocess.Popen(["true"])
    dead.wait()  # a process id that no longer runs: a worker killed with its kernel
    left = cgroup.Group(f"{cgroup.PARENT}/{dead.pid}-{secrets.token_hex(4)}")
    busy = cgroup.Group(f"{cgroup.PARENT}/{dead.pid}-{secrets.token_hex(4)}")
    mine = cgroup.Group.create(cgroup.LIMITS)
    for group in (left, busy):
        subprocess.run(["cgcreate", "-g", group.spec], check=True)
    sleeper = subprocess.Popen([*busy.exec_prefix(), "sleep", "60"])
    try:
        for _ in range(100):  # cgexec joins the group after Popen returns
            if busy.pids():
                break
            time.sleep(0.05)
        young = cgroup.sweep()
        assert left.name.split("/")[-1] not in young, "a group under a minute old is kept: its owner may be starting it"
        swept = cgroup.sweep(min_age=0)
        assert left.name.split("/")[-1] in swept, "an empty group of a dead process is removed"
        assert busy.name.split("/")[-1] not in swept and busy.pids(), "a group with a process in it is never touched"
        assert mine.name.split("/")[-1] not in swept, "a live process's group is kept"
    finally:
        sleeper.kill()
        sleeper.wait()
        for group in (left, busy, mine):
            if (cgroup.ROOT / ("pids" if cgroup.version() == 1 else "") / group.name).exists():
                group.delete()
