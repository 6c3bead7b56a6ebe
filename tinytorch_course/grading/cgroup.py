"""One control group per sandbox: its memory, CPU and process count bounded together, with Debian's cgroup-tools.

Per-process limits (prlimit) do not bound a sandbox: four children of 1.5 GiB each hold 6 GiB under a
4 GiB address-space limit, and 110 busy children take every core. Each sandboxed kernel therefore runs
(through `cgexec`) in a control group of its own, created with `cgcreate` and bounded with `cgset`:
`LIMITS` below, for the kernel and everything it forks. `cpu_seconds()` is the CPU time the whole
group has used, which the grader holds to a per-submission budget. libcgroup speaks both cgroup v1 (as
on this project's grading machine) and v2 (current distributions); only the names of the limit files
differ. Grading as root is required: otherwise the group cannot be created, and `available()` says why.
"""

import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PARENT = os.environ.get("TINYTORCH_CGROUP_PARENT", "tinytorch")  # every sandbox's group is <PARENT>/<name>
LIMITS = {"memory": 4 * 2**30, "cpus": 1.0, "pids": 128}  # per sandbox: bytes, cores, processes
FIX = "apt-get install -y cgroup-tools   (Debian/Ubuntu, as root; it provides cgcreate, cgset, cgexec)"


def version() -> int:
    return 2 if (ROOT / "cgroup.controllers").exists() else 1


def controllers() -> list:
    "The controllers a sandbox's group uses (v1 keeps CPU time in cpuacct, v2 in cpu)."
    return ["memory", "cpu", "pids"] + (["cpuacct"] if version() == 1 else [])


def available() -> str | None:
    "None when control groups can be made here; otherwise why not, with the fix."
    missing = [t for t in ("cgcreate", "cgset", "cgexec", "cgdelete") if shutil.which(t) is None]
    if missing:
        return f"`{missing[0]}` is not installed, so a sandbox's processes cannot share one limit.\nFix: {FIX}"
    if os.geteuid() != 0:
        return "control groups need the grader to run as root (or a delegated cgroup); it runs as a user"
    try:
        group = Group.create(LIMITS)
        group.delete()
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"cgroup-tools is installed but could not make a control group here: {exc}"
    return None


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


class Group:
    "A control group holding one sandbox, bounded by `limits`; `exec_prefix()` runs a command inside it."

    def __init__(self, name: str):
        self.name = name
        self.spec = f"{','.join(controllers())}:{name}"

    @classmethod
    def create(cls, limits: dict) -> "Group":
        sweep()
        group = cls(f"{PARENT}/{os.getpid()}-{secrets.token_hex(4)}")
        _run("cgcreate", "-g", group.spec)
        period = 100_000
        quota = int(limits["cpus"] * period)
        if version() == 1:
            settings = {
                "memory.limit_in_bytes": limits["memory"],
                "cpu.cfs_period_us": period,
                "cpu.cfs_quota_us": quota,
                "pids.max": limits["pids"],
            }
            if (ROOT / "memory" / "memory.memsw.limit_in_bytes").exists():
                settings["memory.memsw.limit_in_bytes"] = limits["memory"]  # and no escape into swap
        else:
            settings = {
                "memory.max": limits["memory"],
                "memory.swap.max": 0,
                "cpu.max": f"{quota} {period}",
                "pids.max": limits["pids"],
            }
        for key, value in settings.items():
            _run("cgset", "-r", f"{key}={value}", group.name)
        return group

    def exec_prefix(self) -> list:
        "The command prefix that starts a process (and so all it forks) in this group."
        return [shutil.which("cgexec"), "-g", self.spec]

    def _file(self, controller: str, name: str) -> Path:
        return ROOT / self.name / name if version() == 2 else ROOT / controller / self.name / name

    def pids(self) -> list:
        try:
            return [int(p) for p in self._file("pids", "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def cpu_seconds(self) -> float:
        "CPU time used by every process that ran in the group so far."
        try:
            if version() == 1:
                return int(self._file("cpuacct", "cpuacct.usage").read_text()) / 1e9
            stat = dict(line.split() for line in self._file("cpu", "cpu.stat").read_text().splitlines())
            return int(stat["usage_usec"]) / 1e6
        except (OSError, KeyError, ValueError):
            return 0.0

    def kill(self, keep: int | None = None) -> int:
        "Kill every process in the group but `keep`; how many were killed."
        killed = 0
        for _ in range(20):  # a fork bomb may fork while we kill: repeat until none is left
            strays = [p for p in self.pids() if p != keep]
            for pid in strays:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
            if not strays:
                break
            time.sleep(0.01)
        return killed

    def remove(self, specs: list | None = None) -> list:
        """One try at removing the group, never killing: the controllers' specs it is still in (a busy
        group stays). One controller at a time: cgdelete -g a,b:... stops after the first."""
        if specs is None:  # pids last: a group half removed stays where sweep() looks, to be tried again
            specs = sorted(controllers(), key=lambda c: c == "pids") if version() == 1 else [",".join(controllers())]
        left = list(specs)
        for spec in list(left):
            try:
                _run("cgdelete", "-g", f"{spec}:{self.name}")
                left.remove(spec)
            except subprocess.CalledProcessError:
                pass
        return left

    def delete(self) -> None:
        self.kill()
        left = None
        for _ in range(50):  # the killed processes leave the group as they die
            left = self.remove(left)
            if not left:
                return
            time.sleep(0.1)


def sweep(min_age: float = 60.0) -> list:
    """Remove the empty groups whose grading process is gone (a worker killed with its kernel, or with the
    kernel it kept ready, never deleted them); which ones. A group with any process in it is never
    touched: cgdelete refuses it, and nothing here kills. A group younger than `min_age` seconds is
    left alone too: its owner may run in another PID namespace (so look dead from here) and be about
    to start its kernel in it."""
    base = ROOT / PARENT if version() == 2 else ROOT / "pids" / PARENT
    try:
        names = [p.name for p in base.iterdir() if p.is_dir()]
    except OSError:
        return []
    removed = []
    for name in names:
        owner = name.split("-", 1)[0]
        if not owner.isdigit() or os.path.exists(f"/proc/{owner}"):
            continue
        try:
            if time.time() - (base / name).stat().st_mtime < min_age:
                continue
        except OSError:
            continue
        group = Group(f"{PARENT}/{name}")
        if not group.pids() and not group.remove():
            removed.append(name)
    return removed
