"""One submission, executed and judged: what a grading worker does, on this machine or on a Dask worker.

It reads `submitted/<student>/07_optimizers/optimizers.ipynb` (never writing there), runs nbgrader's
sanitizing preprocessors, executes the notebook with its kernel in the sandbox (`sandbox.py`), and
judges every graded cell outside the kernel. It writes no gradebook: it returns a `Result` for the
single writer (`record.py`). Every submission gets one, with a reason when it cannot be graded.
"""

import os
import shutil
import tempfile
from pathlib import Path

import nbformat

from .course import ASSIGNMENT, NOTEBOOK, Course
from .pipeline import EXECUTE, SANITIZE
from .preprocessors import CELL_TIMEOUT, KERNEL_DIED, NOT_RUN, RobustExecute, cell_label, verdicts
from .result import GRADED, MISSING, OUT_OF_MEMORY, SKIPPED_DEMO, TIMEOUT, UNREADABLE, Event, Result
from .result import KERNEL_DIED as DIED
from .result import NOT_RUN as SKIPPED


def run(preprocessors, nb, resources, config):
    "Run nbgrader preprocessor classes over `nb`, in order."
    for cls in preprocessors:
        nb, resources = cls(config=config)(nb, resources)
    return nb, resources


def execute_submission(course: Course, student: str, snapshot_url: str) -> Result:
    "The executed, judged notebook of `student` and what happened, or the reason there is none."
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
        executor = RobustExecute(config=course.config)
        os.environ["NBGRADER_EXECUTION"] = "autograde"
        nb, resources = executor(nb, resources)
        nb, resources = run(EXECUTE[1:], nb, resources, course.config)
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
        verdicts=dict(verdicts(resources)),
        notebook=nbformat.writes(nb),
    )


def execution_events(nb, timeout) -> list:
    "One event per cell that timed out, crashed the kernel, was not run or ran out of memory."
    events = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") != "error":
                continue
            label, ename = cell_label(cell, index), out.get("ename")
            if ename == CELL_TIMEOUT:
                events.append(Event(TIMEOUT, f"{label} ran longer than {timeout} s and was stopped."))
            elif ename == KERNEL_DIED:
                events.append(Event(DIED, f"{label}: the kernel died here; the notebook was re-run without it."))
            elif ename == NOT_RUN:
                events.append(Event(SKIPPED, f"{label} was not run: the kernel kept dying."))
            elif ename == "MemoryError":
                events.append(Event(OUT_OF_MEMORY, f"{label} ran out of memory."))
    return events
