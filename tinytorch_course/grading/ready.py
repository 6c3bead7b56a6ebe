"""A started sandboxed kernel kept ready for the next submission, each used once.

Starting a sandboxed kernel (bwrap, then Python importing ipykernel) takes about a second. A grading
process that expects more work (a local pool worker, the hand-in service's worker, a Dask worker)
calls `prepare()` when it is idle: a fresh kernel starts in its sandbox, with an empty placeholder
where the notebook will be, and boots while the process waits. The next grading takes it
(`RobustExecute.create_kernel_manager` calls `take()`), writes the notebook into the placeholder and
runs the first cell on a kernel that is already up. A kernel is taken once and shut down after its
submission like any other; no cell of any submission has run in it before. One that no longer fits
(its settings changed, it died while waiting) is shut down and a fresh one is started as before.
Sequential `nbgrader autograde` never calls `prepare()`, so it starts its kernels as it always did.
"""

import atexit
import json
import sys
import threading
from pathlib import Path

from jupyter_core.utils import run_sync

_spares = {}  # thread -> (fit, kernel manager): one per grading thread (a Dask worker may run several)
_lock = threading.Lock()


def _pop(thread: int | None = None):
    "This thread's ready kernel (fit, manager), no longer kept; None if it has none."
    with _lock:
        return _spares.pop(threading.get_ident() if thread is None else thread, None)


def _fit(config, kernel_name: str, extra_arguments: list, notebooks: list) -> str:
    "What a ready kernel must have been started with to serve an execution: every setting that reaches it."
    sandbox = config.SandboxedKernelManager
    return json.dumps(
        [kernel_name, list(extra_arguments), sorted(notebooks), {k: sandbox[k] for k in sorted(sandbox)}],
        default=str,
    )


def _arguments(execute) -> list:
    "The kernel's command-line arguments, as nbclient's start_new_kernel would give them."
    extra = list(execute.extra_arguments)
    if execute.ipython_hist_file and not any(a.startswith("--HistoryManager.hist_file") for a in extra):
        extra.append(f"--HistoryManager.hist_file={execute.ipython_hist_file}")
    return extra


def prepare(execute, notebooks: list, kernel_name: str = "python3") -> None:
    """Start a sandboxed kernel for this thread's next submission (replacing any unused one) and return while
    it boots. `execute` is the executor that will grade it (`RobustExecute`, configured as it will be);
    `notebooks` are the file names the submission's folder will hold."""
    from .sandbox import SandboxedKernelManager

    discard()
    if not execute.sandbox:
        return
    config = execute.config
    extra = _arguments(execute)
    km = SandboxedKernelManager(kernel_name=kernel_name, config=config, placeholders=list(notebooks))
    try:
        run_sync(km.start_kernel)(extra_arguments=extra)
    except Exception as exc:  # the next grading starts its own kernel, and reports why if it cannot
        print(f"tinytorch: no ready kernel ({exc!r}); the next submission starts its own", file=sys.stderr)
        _shutdown(km)
        return
    with _lock:
        _spares[threading.get_ident()] = (_fit(config, kernel_name, extra, notebooks), km)


def take(execute):
    """The ready kernel's manager, its notebooks written in, if it fits `execute` (an nbclient executor about
    to create its kernel manager); None otherwise, and the ready kernel is shut down."""
    spare = _pop()
    if spare is None:
        return None
    fit, km = spare
    kernel_name = execute.kernel_name or execute.nb.metadata.get("kernelspec", {}).get("name") or "python3"
    folder = Path(execute.resources.get("metadata", {}).get("path") or ".")
    notebooks = [p.name for p in folder.glob("*.ipynb")]
    wanted = _fit(execute.config, kernel_name, _arguments(execute), notebooks)
    if fit == wanted and run_sync(km.is_alive)() and km.fill(folder):
        return km
    _shutdown(km)
    return None


def discard() -> None:
    "Shut down this thread's ready kernel, if any."
    spare = _pop()
    if spare is not None:
        _shutdown(spare[1])


def _discard_all() -> None:
    "At exit: every thread's ready kernel."
    for thread in list(_spares):
        spare = _pop(thread)
        if spare is not None:
            _shutdown(spare[1])


def _shutdown(km) -> None:
    "Kill a kernel that will not be used (it holds nothing), and give back its folder, user and control group."
    try:
        run_sync(km.shutdown_kernel)(now=True)
    except Exception:  # already dead, or never started: what is left is cleaned up below
        pass
    try:
        run_sync(km.cleanup_resources)()
    except Exception as exc:
        print(f"tinytorch: a ready kernel's cleanup failed ({exc!r})", file=sys.stderr)


atexit.register(_discard_all)
