"""Each submission's kernel in a bubblewrap sandbox; nbclient and everything that records a grade stay outside.

`SandboxedKernelManager` is a jupyter_client kernel manager. It starts ipykernel through `prlimit` and
`bwrap` (Debian's `bubblewrap`), and talks to it over ZMQ `ipc` sockets in a per-kernel folder that is
bind-mounted at the same path inside and outside, so the usual client works across the namespaces.

Inside, the kernel sees:
- the system (`/usr`, `/etc`, ...) and this Python environment, read-only;
- `/opt/grader/lib` (read-only, first on `sys.path`): the prerequisite package *without* the module-07
  solution, and the kernel-side harness (`tinytorch_course.checks.harness`), which holds no expected values;
- a private writable home (`/home/student`, a size-capped tmpfs, the kernel's working folder) with a
  read-only copy of the notebook, and a private size-capped `/tmp`.
It does not see the course folder (sources, gradebook, submissions, feedback), other students, the
network (`--unshare-all`), or other processes (its own PID namespace). When the grader runs as root
the kernel runs as an unprivileged user of its own, so the process limit applies.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Integer

HOME = "/home/student"
LIB = "/opt/grader/lib"
# Per-kernel limits (prlimit): address space, CPU seconds, processes/threads, file size, open files.
LIMITS = {"as": 4 * 2**30, "cpu": 600, "nproc": 128, "fsize": 256 * 2**20, "nofile": 512}
TMPFS_BYTES = 256 * 2**20  # each of /home/student and /tmp
WITHHELD = ("core/optimizers.py", "core/training.py")  # the solution, and what imports it
FIX = "apt-get install -y bubblewrap   (Debian/Ubuntu, as root; bubblewrap is the `bwrap` command)"


class SandboxUnavailable(RuntimeError):
    "bwrap is missing or cannot create its namespaces here."


def _tool(name: str) -> str | None:
    "Where command `name` is (TINYTORCH_BWRAP, if set, names bwrap: tests point it at nothing)."
    if name == "bwrap" and "TINYTORCH_BWRAP" in os.environ:
        return os.environ["TINYTORCH_BWRAP"] if os.path.exists(os.environ["TINYTORCH_BWRAP"]) else None
    return shutil.which(name) or next((p for p in (f"/usr/bin/{name}", f"/bin/{name}") if os.path.exists(p)), None)


def check_sandbox() -> None:
    "Raise SandboxUnavailable, with the command that fixes it, unless a sandboxed process starts here."
    bwrap = _tool("bwrap")
    if bwrap is None or _tool("prlimit") is None or _tool("setpriv") is None:
        missing = "bwrap" if bwrap is None else "prlimit" if _tool("prlimit") is None else "setpriv"
        raise SandboxUnavailable(
            f"`{missing}` is not installed, so submissions cannot be graded in a sandbox.\n"
            f"Fix: {FIX if missing == 'bwrap' else 'apt-get install -y util-linux'}\n"
            "Or grade without a sandbox (every row of grades.csv will say so): "
            "make autograde ARGS=--unsandboxed"
        )
    box = Path(tempfile.mkdtemp(prefix="tt-check-"))
    try:
        (box / "conn").mkdir()
        grading_lib(box / "lib")
        uid = sandbox_uid()
        cmd = sandbox_command([sys.executable, "-c", "print('ok')"], box, [], uid)
        _give([box, box / "conn"], uid)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, preexec_fn=close_inherited_fds())
    finally:
        shutil.rmtree(box, ignore_errors=True)
    if proc.returncode != 0 or proc.stdout.strip() != "ok":
        raise SandboxUnavailable(
            f"bwrap is installed but could not start a sandbox here:\n  {proc.stderr.strip()[:500]}\n"
            "bwrap needs user namespaces (as root, or kernel.unprivileged_userns_clone=1).\n"
            "Or grade without a sandbox (every row of grades.csv will say so): "
            "make autograde ARGS=--unsandboxed"
        )


def _system_binds() -> list:
    "Read-only binds of the system folders; merged-/usr symlinks are recreated as symlinks."
    args = []
    for path in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"):
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def _environment_roots() -> list:
    "The folders this Python environment lives in (a venv and the Python it was made from), outermost first."
    roots = []
    for path in sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}, key=len):
        if not any(path == r or path.startswith(r + os.sep) for r in roots) and not path.startswith("/usr"):
            roots.append(path)
    return roots


def _parents(path: str) -> list:
    "bwrap makes missing parent folders 0700, which the kernel's user could not cross: make them 0755 first."
    out = []
    for parent in reversed(Path(path).parents[:-1]):
        out += ["--perms", "0755", "--dir", str(parent)]
    return out


def grading_lib(dest: Path) -> Path:
    "What the kernel may import from this project: tinytorch without the solution, and the harness."
    import tinytorch
    import tinytorch_course

    pkg = Path(tinytorch.__file__).parent
    shutil.copytree(
        pkg, dest / "tinytorch", ignore=shutil.ignore_patterns("__pycache__", *[Path(w).name for w in WITHHELD])
    )
    checks = dest / "tinytorch_course" / "checks"
    checks.mkdir(parents=True)
    for folder in (checks.parent, checks):
        (folder / "__init__.py").write_text("")
    shutil.copy(Path(tinytorch_course.__file__).parent / "checks" / "harness.py", checks / "harness.py")
    return dest


def sandbox_command(cmd: list, box: Path, notebook_files: list, uid: int | None, memory: int = LIMITS["as"]) -> list:
    """`cmd` wrapped in prlimit and bwrap; `box` is this kernel's private host folder (holding conn/ and lib/).

    As root, bwrap runs privileged (no user namespace) and `setpriv` drops the kernel to `uid` with no
    capabilities, so RLIMIT_NPROC holds (it is never enforced for root). Otherwise bwrap makes a user namespace.
    """
    roots = _environment_roots()
    python = os.path.normpath(cmd[0])  # no "..": the folders it would pass through are not mounted
    cmd = [python, *cmd[1:]]
    if uid is None:
        args = ["--unshare-all"]
    else:
        args = [
            "--unshare-pid",
            "--unshare-net",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--cap-add",
            "CAP_SETUID",
            "--cap-add",
            "CAP_SETGID",
        ]
        cmd = [
            _tool("setpriv"),
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
            *cmd,
        ]
    args += [
        "--die-with-parent",
        "--new-session",
        *_system_binds(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        # the private /tmp first: an environment that lives under /tmp is mounted on top of it
        "--perms",
        "1777",
        "--size",
        str(TMPFS_BYTES),
        "--tmpfs",
        "/tmp",
        "--perms",
        "1777",
        "--size",
        str(TMPFS_BYTES),
        "--tmpfs",
        HOME,
    ]
    for root in roots:
        args += [*_parents(root), "--ro-bind", root, root]
    args += [
        *_parents(LIB),
        "--ro-bind",
        str(box / "lib"),
        LIB,
        *_parents(str(box / "conn")),
        "--bind",
        str(box / "conn"),
        str(box / "conn"),
    ]
    for name in ("tinytorch", "tinytorch_course"):  # an installed (non-editable) copy would hold solutions
        spec = importlib.util.find_spec(name)
        where = os.path.realpath(Path(spec.origin).parent) if spec and spec.origin else None
        if where and any(where.startswith(r + os.sep) for r in roots):
            args += ["--ro-bind", str(box / "lib" / name), where]
    for path in notebook_files:
        args += ["--ro-bind", str(path), f"{HOME}/{Path(path).name}"]
    env = {
        "HOME": HOME,
        "PATH": f"{os.path.dirname(python)}:/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": LIB,
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/mpl",
        "IPYTHONDIR": "/tmp/ipython",
        "JUPYTER_RUNTIME_DIR": "/tmp/jupyter",
        "LANG": "C.UTF-8",
        "NBGRADER_EXECUTION": "autograde",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    args += ["--clearenv"] + [x for k, v in env.items() for x in ("--setenv", k, v)] + ["--chdir", HOME]
    limits = [f"--{name}={value}" for name, value in {**LIMITS, "as": memory}.items()]
    return [_tool("prlimit"), *limits, "--", _tool("bwrap"), *args, "--", *cmd]


def sandbox_uid() -> int | None:
    "As root, the unprivileged user a sandbox runs as (one per grading process: process limits count per user)."
    return 61000 + os.getpid() % 4000 if os.geteuid() == 0 else None


def close_inherited_fds():
    """Runs in the child before exec: close every inherited descriptor (jupyter_client launches kernels with
    close_fds=False, which would hand the kernel the grader's pipes and open files)."""
    import fcntl

    def apply():
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd > 2:
                try:
                    if not fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC:  # close-on-exec ones go anyway
                        os.close(fd)
                except OSError:
                    pass

    return apply


def _processes():
    "(pid, real uid, parent pid) of every living process on this machine (zombies are already dead)."
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = dict(
                    line.split(":\t", 1)
                    for line in open(f"/proc/{name}/status").read().splitlines()
                    if line.startswith(("Uid:", "PPid:", "State:"))
                )  # {"Uid": ..., "PPid": ...}
                if not fields["State"].startswith("Z"):
                    out.append((int(name), int(fields["Uid"].split()[0]), int(fields["PPid"])))
            except (OSError, KeyError, ValueError):
                pass
    return out


def _parent(pid: int) -> int | None:
    try:
        return int(next(line for line in open(f"/proc/{pid}/status") if line.startswith("PPid:")).split()[1])
    except (OSError, StopIteration):
        return None


def _give(paths, uid: int | None) -> None:
    for path in paths:
        if uid is not None and os.path.exists(path):
            os.chown(path, uid, uid)


class SandboxedKernelManager(AsyncKernelManager):
    "An AsyncKernelManager whose kernel runs in bwrap and listens on ipc sockets in a shared folder."

    memory_limit = Integer(LIMITS["as"], help="The kernel's address-space limit in bytes.").tag(config=True)

    async def _async_pre_start_kernel(self, **kw):
        self._box = Path(tempfile.mkdtemp(prefix="tt-kernel-"))
        os.chmod(self._box, 0o755)
        (self._box / "conn").mkdir()
        grading_lib(self._box / "lib")
        files = self._box / "files"
        files.mkdir()
        cwd = Path(kw.get("cwd") or ".")
        self._notebook_files = []
        for path in sorted(cwd.glob("*.ipynb")):  # the kernel gets its own read-only copy of the notebook
            shutil.copy(path, files / path.name)
            os.chmod(files / path.name, 0o644)
            self._notebook_files.append(files / path.name)
        self.transport = "ipc"
        self.ip = str(self._box / "conn" / "kernel")
        self.connection_file = str(self._box / "conn" / "kernel.json")
        self._uid = sandbox_uid()
        os.chmod(self._box / "conn", 0o1777)  # the kernel makes its sockets here; lock() closes it
        debug = os.environ.get("TINYTORCH_SANDBOX_DEBUG")  # set it to see why a sandboxed kernel will not start
        kw.update(
            cwd=str(self._box),
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            stdout=subprocess.DEVNULL,
            stderr=None if debug else subprocess.DEVNULL,
            preexec_fn=close_inherited_fds(),
        )
        return await super()._async_pre_start_kernel(**kw)

    def write_connection_file(self, **kwargs):
        super().write_connection_file(**kwargs)
        os.chmod(self.connection_file, 0o644)  # written 0600: the kernel's user must read it (its own key)

    def lock(self) -> None:
        """Once the kernel has made its sockets: its socket folder becomes read-only to it, so nothing it
        writes can reach the host's disk (its home and /tmp are size-capped tmpfs)."""
        os.chmod(self._box / "conn", 0o755)
        if self._uid is not None and getattr(self, "_kernel_pid", None) is None:  # before any student code
            outer = self.provisioner.process.pid
            self._kernel_pid = next(
                (pid for pid, uid, ppid in _processes() if uid == self._uid and _parent(ppid) == outer), None
            )

    def reap(self) -> int:
        """Kill every process of the sandbox's user but the kernel itself (a fork bomb's children, a
        background job). Called after each cell; only possible when the sandbox has a user of its own."""
        if self._uid is None or getattr(self, "_kernel_pid", None) is None:
            return 0
        killed = 0
        for _ in range(20):  # a fork bomb may fork while we kill: repeat until none is left
            strays = [pid for pid, uid, _ in _processes() if uid == self._uid and pid != self._kernel_pid]
            for pid in strays:
                try:
                    os.kill(pid, 9)
                    killed += 1
                except ProcessLookupError:
                    pass
            if not strays:
                break
        return killed

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        return sandbox_command(cmd, self._box, self._notebook_files, self._uid, self.memory_limit)

    async def _async_interrupt_kernel(self):
        "bwrap does not pass signals on: interrupt with a message on the control channel (ipykernel supports it)."
        if not self.has_kernel:
            raise RuntimeError("Cannot interrupt kernel. No kernel is running!")
        self._connect_control_socket()
        self.session.send(self._control_socket, self.session.msg("interrupt_request", content={}))

    interrupt_kernel = _async_interrupt_kernel  # AsyncKernelManager binds these names to the base functions

    async def _async_cleanup_resources(self, restart: bool = False):
        await super()._async_cleanup_resources(restart=restart)
        box = getattr(self, "_box", None)
        if box is not None and not restart:
            shutil.rmtree(box, ignore_errors=True)

    cleanup_resources = _async_cleanup_resources
