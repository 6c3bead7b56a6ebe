"""One submission, executed and judged: what a grading worker does, on this machine or on a Dask worker.

It reads `submitted/<student>/07_optimizers/optimizers.ipynb` (never writing there), runs nbgrader's
sanitizing preprocessors, executes the notebook with its kernel in the sandbox (`sandbox.py`), and
judges every graded cell outside the kernel. It writes no gradebook: it returns a `Result` for the
single writer (`record.py`). Every submission gets one, with a reason when it cannot be graded.
"""

import json
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

import nbformat

from . import ready
from .course import ASSIGNMENT, NOTEBOOK, Course
from .pipeline import EXECUTE, SANITIZE
from .preprocessors import (
    CELL_TIMEOUT,
    CPU_SPENT,
    KERNEL_DIED,
    NOT_RUN,
    OUTPUT_DROPPED,
    RobustExecute,
    cell_label,
    verdicts,
)
from .result import (
    CPU_BUDGET,
    GRADED,
    MISSING,
    NOT_ACCEPTED,
    OUT_OF_MEMORY,
    REFUSED,
    SKIPPED_DEMO,
    TIMEOUT,
    UNREADABLE,
    Event,
    Result,
)
from .result import KERNEL_DIED as DIED
from .result import NOT_RUN as SKIPPED
from .result import OUTPUT_DROPPED as DROPPED

MAX_NOTEBOOK = 20 * 2**20  # bytes of a submitted notebook, outputs included
MAX_CELL = 2 * 2**20  # bytes of one cell's source and attachments (outputs are cleared before grading)


def run(preprocessors, nb, resources, config):
    "Run nbgrader preprocessor classes over `nb`, in order."
    for cls in preprocessors:
        nb, resources = cls(config=config)(nb, resources)
    return nb, resources


def refusal(course: Course, student: str) -> Result | None:
    """Why `student`'s submission is not opened at all, or None. Only regular files are graded: a symbolic
    link, FIFO, device or folder anywhere on the path under submitted/ is refused, as is a notebook
    over `MAX_NOTEBOOK`. Nothing is followed, read or changed to find out."""
    kinds = {stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a device",
             stat.S_IFBLK: "a device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}  # fmt: skip
    path = course.root / "submitted"
    for part, want in [(student, stat.S_IFDIR), (ASSIGNMENT, stat.S_IFDIR), (f"{NOTEBOOK}.ipynb", stat.S_IFREG)]:
        path = path / part
        try:
            mode = stat.S_IFMT(os.lstat(path).st_mode)
        except FileNotFoundError:
            return None  # missing: execute_submission says so
        if mode != want:
            what = kinds.get(mode, "not a regular file")
            reason = (f"{path.relative_to(course.root)} is {what}: only regular files and folders are graded, "
                      "and this one was not opened.")  # fmt: skip
            return Result.failed(student, NOT_ACCEPTED, reason, events=[Event(REFUSED, f"refused: {what}")])
    size = os.lstat(path).st_size
    if size > MAX_NOTEBOOK:
        reason = (
            f"{NOTEBOOK}.ipynb is {size / 2**20:.1f} MiB, over the {MAX_NOTEBOOK / 2**20:g} MiB a submission "
            "may be: clear its outputs (Edit > Clear Outputs of All Cells), save and hand it in again."
        )
        return Result.failed(student, NOT_ACCEPTED, reason, events=[Event(REFUSED, "refused: too large")])
    return None


def oversized_cell(nb) -> str | None:
    "Why a cell of `nb` is past its share (source and attachments; outputs do not count), or None."
    for index, cell in enumerate(nb.cells):
        size = len(cell.get("source", "")) + len(json.dumps(cell.get("attachments", {})))
        if size > MAX_CELL:
            return (f"{cell_label(cell, index)} holds {size / 2**20:.1f} MiB of source and attachments, over the "
                    f"{MAX_CELL / 2**20:g} MiB a cell may hold.")  # fmt: skip
    return None


def execute_submission(course: Course, student: str, snapshot_url: str) -> Result:
    "The executed, judged notebook of `student` and what happened, or the reason there is none."
    refused = refusal(course, student)
    if refused is not None:
        return refused
    path = course.submitted(student) / f"{NOTEBOOK}.ipynb"
    if not path.exists():
        found = sorted(p.name for p in course.submitted(student).iterdir())
        return Result.failed(
            student,
            MISSING,
            f"No {NOTEBOOK}.ipynb was submitted"
            + (f" (the folder holds: {', '.join(found)})." if found else " (the folder is empty)."),
        )
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # not JSON, not a notebook, wrong encoding...
        return Result.failed(
            student, UNREADABLE, f"{NOTEBOOK}.ipynb could not be read as a notebook: " + str(exc).splitlines()[0][:200]
        )
    too_big = oversized_cell(nb)
    if too_big:
        return Result.failed(student, NOT_ACCEPTED, too_big, events=[Event(REFUSED, "refused: a cell too large")])
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="grade-") as workdir:
        shutil.copy(path, Path(workdir) / path.name)  # the kernel's own copy; submitted/ is never exposed
        resources = {
            "nbgrader": {"notebook": NOTEBOOK, "assignment": ASSIGNMENT, "student": student, "db_url": snapshot_url},
            "metadata": {"path": workdir},
        }
        try:
            nb, resources = run(SANITIZE, nb, resources, course.config)
        except Exception as exc:
            return Result.failed(student, UNREADABLE, f"The notebook's grading metadata is damaged: {exc}")
        os.environ["NBGRADER_EXECUTION"] = "autograde"
        steps = [cls(config=course.config) for cls in EXECUTE]  # draw the hidden inputs, execute, judge
        for step in steps:
            nb, resources = step(nb, resources)
        executor = next(step for step in steps if isinstance(step, RobustExecute))
    events = resources.get("grading_events", []) + execution_events(nb, executor.timeout)
    if resources.get("skipped_demo_cells"):  # routine, so it comes last
        events.append(
            Event(
                SKIPPED_DEMO,
                f"{resources['skipped_demo_cells']} demonstration cells (figures, races, "
                "timing; tagged demo) were not run: they grade nothing.",
            )
        )
    return Result(
        student,
        GRADED,
        events=events,
        sandboxed=executor.sandbox,
        seconds=round(time.monotonic() - start, 3),
        cgroups=executor.sandbox and course.config.SandboxedKernelManager.get("cgroups", True),
        verdicts=dict(verdicts(resources)),
        notebook=nbformat.writes(nb),
    )


def prepare_next(config) -> None:
    "Start the next submission's sandboxed kernel now, while this process waits for it (`ready.py`)."
    ready.prepare(RobustExecute(config=config), [f"{NOTEBOOK}.ipynb"])


def execution_events(nb, timeout) -> list:
    "One event per cell that timed out, crashed the kernel, was not run, ran out of memory or had output dropped."
    events = []
    for index, cell in enumerate(nb.cells):
        label = cell_label(cell, index)
        for out in cell.get("outputs", []):
            ename = out.get("ename") if out.get("output_type") == "error" else None
            if ename == CELL_TIMEOUT:
                events.append(Event(TIMEOUT, f"{label} ran longer than {timeout} s and was stopped."))
            elif ename == KERNEL_DIED:
                events.append(Event(DIED, f"{label}: the kernel died here; the notebook was re-run without it."))
            elif ename == NOT_RUN:
                events.append(Event(SKIPPED, f"{label} was not run: the kernel kept dying."))
            elif ename == "MemoryError":
                events.append(Event(OUT_OF_MEMORY, f"{label} ran out of memory."))
            elif ename == CPU_SPENT and not any(e.kind == CPU_BUDGET for e in events):
                events.append(Event(CPU_BUDGET, f"{label}: the submission used its CPU-time budget; grading stopped."))
            elif out.get("output_type") == "stream" and str(out.get("text", "")).startswith(OUTPUT_DROPPED):
                events.append(Event(DROPPED, f"{label}: {out['text'][len(OUTPUT_DROPPED) :].strip()}"))
    return events
