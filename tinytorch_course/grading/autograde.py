"""Autograde a batch: every submission graded by workers, every result recorded by this process alone.

The queue is every `submitted/<student>/07_optimizers/` folder not already graded in its current form
(unless `force`). Workers (local processes, `pool.py`, or Dask workers, `dask_pool.py`) read a
read-only snapshot of the gradebook and return a `Result`; this process records each one as it
arrives (`record.py`), so a batch that is killed can be run again and finishes with the same gradebook.
A folder whose name cannot be a student id (`intake.py`) or whose files are not regular files
(`worker.refusal`) is recorded with its reason and never run; whatever recording one submission
raises becomes that student's error, and the batch goes on.
"""

import os
import shutil
import tempfile
from pathlib import Path

from nbgrader.api import Gradebook

from .course import ASSIGNMENT, Course, fingerprint, tool_env
from .intake import name_refusal
from .record import is_done, record_safely
from .sandbox import LIMITS
from .worker import refusal


def autograde(
    course: Course,
    workers: int = 0,
    force: bool = False,
    memory_bytes: int = LIMITS["as"],
    budget: float = 1800.0,
    progress: bool = True,
    sandbox: bool = True,
    scheduler: str | None = None,
    cgroups: bool = True,
) -> dict:
    """Grade every submission; returns {student: status}.

    With `sandbox` (the default) it first checks that a sandbox starts here and raises
    `sandbox.SandboxUnavailable`, naming the command that fixes it, if not. With `scheduler` (a Dask
    scheduler's address) the submissions are graded on that cluster's workers; this process still
    writes every grade. `budget` bounds the seconds one submission may take on the local pool. Without
    `cgroups`, a sandbox's processes share no control group (only per-process limits); every row says so.
    A submission that is not a regular file (a link, a FIFO...) is refused here, before any worker reads it.
    """
    course.config.SandboxedKernelManager.cgroups = cgroups
    if sandbox and scheduler is None:  # on Dask, each grading machine needs bwrap itself
        from .sandbox import check_sandbox

        check_sandbox(cgroups)
    with Gradebook(course.db_url, course.course_id) as gb:
        gb.find_assignment(ASSIGNMENT)  # raises if `release` never ran
    queue, results = [], {}
    for student in course.students():
        fp = fingerprint(course, student)
        if not force and is_done(course, student, fp):
            results[student] = "already graded"
        elif (refused := name_refusal(student) or refusal(course, student)) is not None:
            results[student] = record_safely(course, refused, fp).status
        else:
            queue.append((student, fp))
    # Workers make their temporary folders (the submission's copy, each kernel's sandbox folder) in the
    # batch's scratch folder, removed below even when a worker was killed mid-submission.
    scratch = Path(tempfile.mkdtemp(prefix="autograde-"))
    snapshot = scratch / "gradebook-snapshot.db"
    if course.db_url.startswith("sqlite:///"):  # workers read a copy; only this process writes the real one
        shutil.copy(course.db_url[len("sqlite:///") :], snapshot)
    bar = _progress(len(queue), progress)
    try:
        if scheduler is not None:
            from .dask_pool import run

            finished = run(
                course,
                queue,
                scheduler,
                memory_bytes,
                sandbox,
                snapshot if snapshot.exists() else None,
                cgroups=cgroups,
            )
        else:
            from .pool import run

            env = tool_env(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", TMPDIR=str(scratch))
            finished = run(
                course,
                queue,
                f"sqlite:///{snapshot}" if snapshot.exists() else course.db_url,
                env,
                memory_bytes,
                scratch,
                sandbox,
                workers or os.cpu_count() or 1,
                budget,
                cgroups,
            )
        for student, fp, result in finished:
            results[student] = record_safely(course, result, fp).status  # one student's failure stops no one
            bar.update(1)
    finally:
        bar.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def _progress(total: int, enabled: bool):
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc="autograde", unit="notebook", disable=not enabled, file=sys.stderr)
