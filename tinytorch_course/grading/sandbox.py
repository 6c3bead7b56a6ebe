"""Each submission's kernel in a bubblewrap sandbox; nbclient and everything that records a grade stay outside.

`SandboxedKernelManager` is a jupyter_client kernel manager. It starts ipykernel through `prlimit`,
`cgexec` and `bwrap` (Debian's `bubblewrap`), and talks to it over ZMQ `ipc` sockets in a per-kernel
folder that is bind-mounted at the same path inside and outside, so the usual client works across the
namespaces.

Inside, the kernel sees, read-only:
- the system's programs and libraries (`/usr/bin`, `/usr/lib`, `/usr/share`, ...), with every Python
  `site-packages` and `dist-packages` folder in them hidden, and of `/etc` only what the loader,
  Python, numpy and matplotlib read (`ETC`): no Jupyter, nbgrader, JupyterHub or database configuration;
  not `/usr/local`, `/opt`, `/srv`, `/home` or `/root`;
- the kernel environment (`kernel_env.py`: exactly `binder/requirements.txt`, what students have) and
  the interpreter and standard library of the Python it was made from (its `site-packages` hidden),
  never the grader's environment;
- `/opt/grader/lib`, first on `sys.path`: the prerequisite package *without* the module-07 solution,
  and the kernel-side harness (`tinytorch_course.checks.harness`), which holds no expected values;
and, writable, a private home (`/home/student`, a size-capped tmpfs, the kernel's working folder, with
a read-only copy of the notebook) and a private size-capped `/tmp`.
It does not see the course folder (sources, gradebook, submissions, feedback), other students, the
network (`--unshare-all`), or other processes (its own PID namespace). When the grader runs as root,
the kernel runs as a user of its own, leased from a lock-protected pool so that no two live sandboxes
share one, and every process of the sandbox shares one control group (`cgroup.py`) that bounds their
memory, CPU and number together.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, DottedObjectName, Float, Integer, List, Unicode

HOME = "/home/student"
# The system folders a kernel needs; merged-/usr symlinks at the top are recreated as symlinks.
SYSTEM = ("/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libx32", "/usr/libexec", "/usr/share")
TOP = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Of /etc, only what the loader, Python, numpy and matplotlib read.
ETC = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "passwd",
    "group",
    "nsswitch.conf",
    "fonts",
    "alternatives",
    "mime.types",
    "os-release",
)
UIDS = range(61000, 65000)  # the sandbox users, leased one per live sandbox
UID_LOCKS = Path("/run/tinytorch-uids")
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


def check_sandbox(cgroups: bool = True) -> None:
    """Raise SandboxUnavailable, with the command that fixes it, unless a sandboxed process starts here with
    the kernel environment (and, with `cgroups`, in a control group of its own)."""
    from . import cgroup, kernel_env

    bwrap = _tool("bwrap")
    if bwrap is None or _tool("prlimit") is None or _tool("setpriv") is None:
        missing = "bwrap" if bwrap is None else "prlimit" if _tool("prlimit") is None else "setpriv"
        raise SandboxUnavailable(
            f"`{missing}` is not installed, so submissions cannot be graded in a sandbox.\n"
            f"Fix: {FIX if missing == 'bwrap' else 'apt-get install -y util-linux'}\n"
            "Or grade without a sandbox (every row of grades.csv will say so): "
            "make autograde ARGS=--unsandboxed"
        )
    try:
        kernel_env.python()
    except kernel_env.KernelEnvMissing as exc:
        raise SandboxUnavailable(str(exc)) from None
    why = cgroup.available() if cgroups else None
    if why:
        raise SandboxUnavailable(
            f"{why}\nOr grade with per-process limits only (every row of grades.csv will say "
            "so): make autograde ARGS=--no-cgroups"
        )
    box = Path(tempfile.mkdtemp(prefix="tt-check-"))
    lease = lease_user()
    try:
        (box / "conn").mkdir()
        grading_lib(box / "lib")
        uid = lease.uid if lease else None
        cmd = sandbox_command([sys.executable, "-c", "print('ok')"], box, [], uid)
        _give([box, box / "conn"], uid)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, preexec_fn=close_inherited_fds())
    finally:
        shutil.rmtree(box, ignore_errors=True)
        if lease:
            lease.release()
    if proc.returncode != 0 or proc.stdout.strip() != "ok":
        raise SandboxUnavailable(
            f"bwrap is installed but could not start a sandbox here:\n  {proc.stderr.strip()[:500]}\n"
            "bwrap needs user namespaces (as root, or kernel.unprivileged_userns_clone=1).\n"
            "Or grade without a sandbox (every row of grades.csv will say so): "
            "make autograde ARGS=--unsandboxed"
        )


def _site_folders(prefix: str) -> list:
    "Every Python package folder under `prefix`: hidden in the sandbox (a grader installed there stays unseen)."
    import glob

    found = []
    for pattern in ("lib*/python3*/site-packages", "lib*/python3*/dist-packages", "lib*/python3/dist-packages"):
        found += sorted(glob.glob(os.path.join(prefix, pattern)))
    return [f for f in found if os.path.isdir(f) and not os.path.islink(f)]


def _system_binds(base: Path) -> list:
    "Read-only binds of the system and of the base Python `base` (its bin and lib), package folders hidden."
    args, hidden = [], []
    for path in TOP:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--perms", "0755", "--dir", "/usr"]  # bwrap would make it 0700: the kernel's user could not cross it
    for path in SYSTEM:
        if os.path.isdir(path) and not os.path.islink(path):
            args += ["--ro-bind", path, path]
    hidden += _site_folders("/usr")
    base = str(base)
    if not base.startswith(("/usr/bin", "/usr/lib")) and base != "/usr":  # a Python of its own (pyenv, /usr/local)
        for part in ("bin", "lib", "lib64"):
            if os.path.isdir(os.path.join(base, part)):
                args += [
                    *_parents(os.path.join(base, part)),
                    "--ro-bind",
                    os.path.join(base, part),
                    os.path.join(base, part),
                ]
        hidden += _site_folders(base)
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in ETC:
        path = os.path.join("/etc", name)
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.exists(path):
            args += ["--ro-bind", path, path]
    for folder in dict.fromkeys(hidden):
        args += ["--tmpfs", folder]  # an empty folder in its place
    return args


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


def sandbox_command(
    cmd: list,
    box: Path,
    notebook_files: list,
    uid: int | None,
    memory: int = LIMITS["as"],
    env_path: Path | None = None,
    group=None,
) -> list:
    """`cmd` (a Python command line) run by the kernel environment's Python, wrapped in prlimit, the control
    group `group` (when given) and bwrap; `box` is this kernel's private host folder (holding conn/ and lib/).

    As root, bwrap runs privileged (no user namespace) and `setpriv` drops the kernel to `uid` with no
    capabilities, so RLIMIT_NPROC holds (it is never enforced for root). Otherwise bwrap makes a user namespace.
    """
    from . import kernel_env

    env_path = Path(os.path.realpath(env_path or kernel_env.location()))
    python = str(kernel_env.python(env_path))
    cmd = [python, *cmd[1:]]
    if uid is None:
        args = ["--unshare-all"]
    else:
        args = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]  # fmt: skip
        cmd = [_tool("setpriv"), f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
               "--bounding-set=-all", "--", *cmd]  # fmt: skip
    args += ["--die-with-parent", "--new-session", *_system_binds(kernel_env.base_prefix(env_path)),
             "--proc", "/proc", "--dev", "/dev",
             # the private /tmp first: an environment that lives under /tmp is mounted on top of it
             "--perms", "1777", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp",
             "--perms", "1777", "--size", str(TMPFS_BYTES), "--tmpfs", HOME]  # fmt: skip
    args += [*_parents(str(env_path)), "--ro-bind", str(env_path), str(env_path)]
    args += [*_parents(LIB), "--ro-bind", str(box / "lib"), LIB,
             *_parents(str(box / "conn")), "--bind", str(box / "conn"), str(box / "conn")]  # fmt: skip
    for path in notebook_files:
        args += ["--ro-bind", str(path), f"{HOME}/{Path(path).name}"]
    env = {"HOME": HOME, "PATH": f"{env_path}/bin:/usr/bin:/bin", "PYTHONPATH": LIB, "MPLBACKEND": "Agg",
           "MPLCONFIGDIR": "/tmp/mpl", "IPYTHONDIR": "/tmp/ipython", "JUPYTER_CONFIG_DIR": "/tmp/jupyter-config",
           "JUPYTER_RUNTIME_DIR": "/tmp/jupyter", "LANG": "C.UTF-8", "NBGRADER_EXECUTION": "autograde",
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
    args += ["--clearenv"] + [x for k, v in env.items() for x in ("--setenv", k, v)] + ["--chdir", HOME]
    limits = [f"--{name}={value}" for name, value in {**LIMITS, "as": memory}.items()]
    inside = group.exec_prefix() if group is not None else []
    return [_tool("prlimit"), *limits, "--", *inside, _tool("bwrap"), *args, "--", *cmd]


class UidLease:
    """An unprivileged user for one sandbox, leased from `UIDS`: a lock file per user, held while the
    sandbox lives, and no process running as that user when it is taken. Two live sandboxes never share
    one, so `reap()` and the process limit can only ever touch their own sandbox."""

    def __init__(self):
        import fcntl
        import random

        UID_LOCKS.mkdir(mode=0o700, parents=True, exist_ok=True)
        start = random.randrange(len(UIDS))
        for uid in (UIDS[(start + k) % len(UIDS)] for k in range(len(UIDS))):
            fd = os.open(UID_LOCKS / str(uid), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            if any(owner == uid for _, owner, _ in _processes()):  # checked free under the lock
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            return
        raise SandboxUnavailable(f"every sandbox user ({UIDS.start}-{UIDS.stop - 1}) is in use")

    def release(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


def lease_user() -> UidLease | None:
    "A user of its own for a new sandbox when grading as root; None otherwise (bwrap's user namespace)."
    return UidLease() if os.geteuid() == 0 else None


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


def _processes(pids=None):
    """(pid, real uid, parent pid) of every living process on this machine, or of those of `pids` still
    alive (zombies are already dead)."""
    out = []
    for name in os.listdir("/proc") if pids is None else map(str, pids):
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


MAX_MESSAGE = 32 * 2**20  # bytes of one message from the kernel; a larger one is dropped, never held


class BoundedKernelClient(AsyncKernelClient):
    """An AsyncKernelClient whose sockets refuse any message over `MAX_MESSAGE` (ZMQ drops it and reconnects),
    so one `print` of hundreds of MiB never enters the grading process. Smaller messages are counted
    and capped per cell by `RobustExecute.output`."""

    def _create_connected_socket(self, channel, identity=None):
        import zmq
        from jupyter_client.connect import channel_socket_types

        sock = self.context.socket(channel_socket_types[channel])
        sock.linger = 1000
        if identity:
            sock.identity = identity
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)  # before connect: it applies to the connection made next
        sock.connect(self._make_url(channel))
        return sock


class SandboxedKernelManager(AsyncKernelManager):
    "An AsyncKernelManager whose kernel runs in bwrap and listens on ipc sockets in a shared folder."

    client_class = DottedObjectName(f"{__name__}.BoundedKernelClient")

    memory_limit = Integer(LIMITS["as"], help="The kernel's address-space limit in bytes.").tag(config=True)
    cgroups = Bool(True, help="Run each sandbox in a control group of its own (cgroup.py); needs root.").tag(
        config=True
    )
    group_cpus = Float(1.0, help="Cores a sandbox may use at once, all its processes together.").tag(config=True)
    placeholders = List(Unicode(), help="Start before the notebook is known: empty files of these names stand in "
                        "for it in the kernel's home until fill() writes it (ready.py).")  # fmt: skip

    async def _async_pre_start_kernel(self, **kw):
        from . import cgroup

        self._box = Path(tempfile.mkdtemp(prefix="tt-kernel-"))
        os.chmod(self._box, 0o755)
        (self._box / "conn").mkdir()
        grading_lib(self._box / "lib")
        files = self._box / "files"
        files.mkdir()
        cwd = Path(kw.get("cwd") or ".")
        self._notebook_files = []
        names = self.placeholders or [path.name for path in sorted(cwd.glob("*.ipynb"))]
        for name in names:  # the kernel gets its own read-only copy of the notebook
            if self.placeholders:
                (files / name).touch()  # filled by fill(), before the kernel runs any cell
            else:
                shutil.copy(cwd / name, files / name)
            os.chmod(files / name, 0o644)
            self._notebook_files.append(files / name)
        self.transport = "ipc"
        self.ip = str(self._box / "conn" / "kernel")
        self.connection_file = str(self._box / "conn" / "kernel.json")
        self._release()
        self._lease = lease_user()
        self._uid = self._lease.uid if self._lease else None
        self._kernel_pid = None
        limits = {**cgroup.LIMITS, "memory": self.memory_limit, "cpus": self.group_cpus}
        self._group = cgroup.Group.create(limits) if self.cgroups and self._uid is not None else None
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

    def fill(self, folder: Path) -> bool:
        """Give a kernel started with `placeholders` its notebooks, the `*.ipynb` files of `folder`, before any
        cell runs: each is written into its placeholder's file, which the sandbox already shows read-only
        in its home. False, and nothing written, when the names differ."""
        paths = sorted(Path(folder).glob("*.ipynb"))
        if not self.placeholders or [p.name for p in paths] != sorted(self.placeholders):
            return False
        for path in paths:
            (self._box / "files" / path.name).write_bytes(path.read_bytes())  # the same file: its mount holds
        self.placeholders = []
        return True

    def write_connection_file(self, **kwargs):
        super().write_connection_file(**kwargs)
        os.chmod(self.connection_file, 0o644)  # written 0600: the kernel's user must read it (its own key)

    def lock(self) -> None:
        """Once the kernel has made its sockets: its socket folder becomes read-only to it, so nothing it
        writes can reach the host's disk (its home and /tmp are size-capped tmpfs)."""
        os.chmod(self._box / "conn", 0o755)
        if self._uid is not None and self._kernel_pid is None:  # before any student code
            outer = self.provisioner.process.pid
            self._kernel_pid = next(
                (pid for pid, uid, ppid in _processes() if uid == self._uid and _parent(ppid) == outer), None
            )

    def reap(self) -> int:
        """Kill every process of this sandbox's user but the kernel itself (a fork bomb's children, a background
        job). Called after each cell. The user is leased to this sandbox alone; with a control group, only
        the group's processes are even considered."""
        if self._uid is None or self._kernel_pid is None:
            return 0
        killed = 0
        for _ in range(20):  # a fork bomb may fork while we kill: repeat until none is left
            members = self._group.pids() if self._group is not None else None  # a few, not all of /proc
            strays = [pid for pid, uid, _ in _processes(members) if uid == self._uid and pid != self._kernel_pid]
            for pid in strays:
                try:
                    os.kill(pid, 9)
                    killed += 1
                except ProcessLookupError:
                    pass
            if not strays:
                break
        return killed

    def cpu_seconds(self) -> float:
        "CPU time the sandbox (the kernel and everything it forked) has used; 0 without a control group."
        return self._group.cpu_seconds() if getattr(self, "_group", None) is not None else 0.0

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        return sandbox_command(cmd, self._box, self._notebook_files, self._uid, self.memory_limit, group=self._group)

    async def _async_interrupt_kernel(self):
        "bwrap does not pass signals on: interrupt with a message on the control channel (ipykernel supports it)."
        if not self.has_kernel:
            raise RuntimeError("Cannot interrupt kernel. No kernel is running!")
        self._connect_control_socket()
        self.session.send(self._control_socket, self.session.msg("interrupt_request", content={}))

    interrupt_kernel = _async_interrupt_kernel  # AsyncKernelManager binds these names to the base functions

    def _release(self) -> None:
        "Give back the control group and the user (after the group's processes are gone)."
        group, lease = getattr(self, "_group", None), getattr(self, "_lease", None)
        self._group = self._lease = None
        if group is not None:
            group.delete()
        if lease is not None:
            lease.release()

    async def _async_cleanup_resources(self, restart: bool = False):
        await super()._async_cleanup_resources(restart=restart)
        self._release()
        box = getattr(self, "_box", None)
        if box is not None and not restart:
            shutil.rmtree(box, ignore_errors=True)

    cleanup_resources = _async_cleanup_resources
