"""Autograde a batch: worker processes execute submissions, one process writes the gradebook.

Workers (one submission at a time each, at most N at once) sanitize a notebook, execute it with its
kernel in a bubblewrap sandbox (`sandbox.py`), and judge it (`judge.py`) against a read-only snapshot
of the gradebook. The main process is the only one that writes the gradebook, so sqlite never sees two
writers. Every submission ends with a score and an explanation: a missing or unreadable notebook
scores 0 with the reason; timeouts and dead kernels are reported cell by cell. Files under
`submitted/` are only ever read. A batch that is killed can be run again: finished submissions are
skipped (unless they changed or `force` is given), and nothing is recorded twice.
"""
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import nbformat

from nbgrader.api import Gradebook, MissingEntry

from .course import ASSIGNMENT, NOTEBOOK, Course, fingerprint, tool_env
from .pipeline import EXECUTE, RECORD, SANITIZE
from .preprocessors import KERNEL_DIED, RobustExecute, cell_label

MARKER = "grading.json"
UNSANDBOXED = "graded WITHOUT a sandbox (--unsandboxed): the submission's code could read and write the course folder"


def _run(preprocessors, nb, resources, config):
    for cls in preprocessors:
        nb, resources = cls(config=config)(nb, resources)
    return nb, resources


# ---- worker side: sanitize, execute and judge one submission, never writing the gradebook ----

def execute_submission(course: Course, student: str, snapshot_url: str) -> dict:
    "Grade-ready notebook for `student` plus what happened, or the reason there is none."
    path = course.submitted(student) / f"{NOTEBOOK}.ipynb"
    if not path.exists():
        found = sorted(p.name for p in course.submitted(student).iterdir())
        return {"status": "missing", "reason": f"No {NOTEBOOK}.ipynb was submitted"
                + (f" (the folder holds: {', '.join(found)})." if found else " (the folder is empty).")}
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # not JSON, not a notebook, wrong encoding...
        return {"status": "unreadable", "reason": f"{NOTEBOOK}.ipynb could not be read as a notebook: "
                + str(exc).splitlines()[0][:200]}
    with tempfile.TemporaryDirectory(prefix="grade-") as workdir:
        shutil.copy(path, Path(workdir) / path.name)  # the kernel's own copy; submitted/ is never exposed
        resources = {"nbgrader": {"notebook": NOTEBOOK, "assignment": ASSIGNMENT, "student": student,
                                  "db_url": snapshot_url}, "metadata": {"path": workdir}}
        try:
            nb, resources = _run(SANITIZE, nb, resources, course.config)
        except Exception as exc:
            return {"status": "unreadable", "reason": f"The notebook's grading metadata is damaged: {exc}"}
        executor = RobustExecute(config=course.config)
        os.environ["NBGRADER_EXECUTION"] = "autograde"
        nb, resources = executor(nb, resources)
        nb, resources = _run(EXECUTE[1:], nb, resources, course.config)
    events = resources.get("grading_events", []) + execution_events(nb, executor.timeout)
    if resources.get("skipped_demo_cells"):  # routine, so it comes last
        events.append(f"{resources['skipped_demo_cells']} demonstration cells (figures, races, timing; tagged demo) "
                      "were not run: they grade nothing.")
    return {"status": "graded", "events": events, "sandboxed": executor.sandbox, "notebook": nbformat.writes(nb)}


def execution_events(nb, timeout) -> list:
    "One sentence per cell that timed out, crashed the kernel or was not run."
    events = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") != "error":
                continue
            if out.get("ename") == "CellTimeoutError":
                events.append(f"{cell_label(cell, index)} ran longer than {timeout} s and was stopped.")
            elif out.get("ename") == KERNEL_DIED:
                events.append(f"{cell_label(cell, index)}: the kernel died here; the notebook was re-run without it.")
            elif out.get("ename") == "NotRunError":
                events.append(f"{cell_label(cell, index)} was not run: the kernel kept dying.")
            elif out.get("ename") == "MemoryError":
                events.append(f"{cell_label(cell, index)} ran out of memory.")
    return events


def _limit_worker(memory_bytes: int):
    "Runs in the worker before exec: its own process group, and a bound on what it may hold in memory."
    def apply():
        os.setpgrp()
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    return apply


# ---- writer side: the only code that writes the gradebook -----------------------------------

def report_cell(student: str, result: dict) -> nbformat.NotebookNode:
    lines = [f"## Grading report for {student}", ""]
    if result["status"] == "graded":
        lines += [f"- {e}" for e in result["events"]] or ["- Every cell ran to completion."]
        if not result.get("sandboxed", True):
            lines += [f"- **{UNSANDBOXED}.**"]
    else:
        lines += [f"- **Not graded, score 0:** {result['reason']}"]
    return nbformat.v4.new_markdown_cell("\n".join(lines))


def record(course: Course, student: str, result: dict, fp: str) -> None:
    "Write one submission's grades, its autograded notebook and its completion marker."
    from sqlalchemy.exc import SAWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's own session bookkeeping, harmless
        _record(course, student, result, fp)


def _record(course: Course, student: str, result: dict, fp: str) -> None:
    timestamp = course.coursedir.get_existing_timestamp(str(course.submitted(student)))
    with Gradebook(course.db_url, course.course_id) as gb:
        gb.update_or_create_student(student)
        if timestamp:
            gb.update_or_create_submission(ASSIGNMENT, student, timestamp=timestamp)
        else:
            gb.update_or_create_submission(ASSIGNMENT, student)
    if result["status"] == "graded":
        nb = nbformat.reads(result["notebook"], as_version=4)
        resources = {"nbgrader": {"notebook": NOTEBOOK, "assignment": ASSIGNMENT, "student": student,
                                  "db_url": course.db_url}}
        nb, _ = _run(RECORD, nb, resources, course.config)
    else:
        nb = nbformat.v4.new_notebook()
        with Gradebook(course.db_url, course.course_id) as gb:
            for grade in gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, student).grades:
                grade.auto_score, grade.needs_manual_grade = 0, False
            gb.db.commit()
    nb.cells.insert(0, report_cell(student, result))
    out = course.autograded(student)
    out.mkdir(parents=True, exist_ok=True)
    stamp = course.submitted(student) / "timestamp.txt"
    if stamp.exists():
        shutil.copy(stamp, out / "timestamp.txt")
    _atomic_write(out / f"{NOTEBOOK}.ipynb", nbformat.writes(nb))
    summary = {k: v for k, v in result.items() if k != "notebook"}
    summary["checks"] = judged_checks(nb)  # for the class report, which reads markers, not notebooks
    _atomic_write(out / MARKER, json.dumps({**summary, "fingerprint": fp}, indent=1))


def judged_checks(nb) -> list:
    "Every hidden check's verdict in a judged notebook: {cell, check, passed, message}, in notebook order."
    return [{"cell": cell.metadata["nbgrader"]["grade_id"], **check} for cell in nb.cells
            for check in cell.get("metadata", {}).get("tinytorch", {}).get("checks", [])]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def is_done(course: Course, student: str, fp: str) -> bool:
    marker = course.autograded(student) / MARKER
    if not marker.exists() or json.loads(marker.read_text()).get("fingerprint") != fp:
        return False
    with Gradebook(course.db_url, course.course_id) as gb:
        try:
            gb.find_submission(ASSIGNMENT, student)
        except MissingEntry:
            return False
    return True


# ---- the batch -------------------------------------------------------------------------------

class Worker:
    "A long-lived grading process (imports once, grades many); killed with its kernel if it overruns."

    def __init__(self, course: Course, snapshot_url: str, env: dict, memory_bytes: int, log: Path, sandbox: bool):
        cmd = [sys.executable, "-m", "tinytorch_course.batch", "--root", str(course.root), "--snapshot",
               snapshot_url, "--memory", str(memory_bytes)] + ([] if sandbox else ["--unsandboxed"])
        with open(log, "a") as err:
            self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=err, text=True, preexec_fn=_limit_worker(memory_bytes + 2 * 2**30))
        self.task = None  # (student, fingerprint, result file, start time)

    def give(self, student: str, fp: str, out: Path) -> None:
        self.proc.stdin.write(json.dumps({"student": student, "out": str(out)}) + "\n")
        self.proc.stdin.flush()
        self.task = (student, fp, out, time.monotonic())

    def stop(self) -> None:
        _kill_group(self.proc)


def worker_loop(root: str, snapshot_url: str, memory_bytes: int, sandbox: bool) -> None:
    "Grade the students named on stdin, one JSON line each, writing each result file atomically."
    course = Course(root)
    course.config.RobustExecute.sandbox = sandbox
    course.config.SandboxedKernelManager.memory_limit = memory_bytes
    for line in sys.stdin:
        task = json.loads(line)
        try:
            result = execute_submission(course, task["student"], snapshot_url)
        except Exception as exc:  # the grader's own failure still yields a result for that student
            result = {"status": "error", "reason": f"The grader failed on this submission: {exc!r}"[:500]}
        _atomic_write(Path(task["out"]), json.dumps(result))


def autograde(course: Course, workers: int = 0, force: bool = False, memory_gib: float = 4.0,
              budget: float = 1800.0, progress: bool = True, sandbox: bool = True, scheduler: str | None = None) -> dict:
    """Grade every submission; returns {student: status}.

    With `sandbox` (the default) it first checks that a sandbox starts here and raises
    `sandbox.SandboxUnavailable`, naming the command that fixes it, if not. With `scheduler` (a Dask
    scheduler's address) the submissions are graded on that cluster's workers (`dask_engine.py`);
    this process still writes every grade.
    """
    if sandbox and scheduler is None:  # on Dask, each grading machine needs bwrap itself
        from .sandbox import check_sandbox
        check_sandbox()
    workers = workers or os.cpu_count() or 1
    with Gradebook(course.db_url, course.course_id) as gb:
        gb.find_assignment(ASSIGNMENT)  # raises if `release` never ran
    queue, results = [], {}
    for student in course.students():
        fp = fingerprint(course, student)
        if not force and is_done(course, student, fp):
            results[student] = "already graded"
        else:
            queue.append((student, fp))
    scratch = Path(tempfile.mkdtemp(prefix="autograde-"))
    snapshot = scratch / "gradebook-snapshot.db"
    if course.db_url.startswith("sqlite:///"):  # workers read a copy; only this process writes the real one
        shutil.copy(course.db_url[len("sqlite:///"):], snapshot)
    snapshot_url = f"sqlite:///{snapshot}" if snapshot.exists() else course.db_url
    # Workers make their temporary folders (the submission's copy, each kernel's sandbox folder) in the
    # batch's scratch folder, removed below even when a worker was killed mid-submission.
    if scheduler is not None:
        return _autograde_on_dask(course, queue, results, scheduler, int(memory_gib * 2**30), sandbox, snapshot,
                                  scratch, progress)
    env = tool_env(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", TMPDIR=str(scratch))
    spawn = lambda: Worker(course, snapshot_url, env, int(memory_gib * 2**30), scratch / "workers.log", sandbox)
    pool = [spawn() for _ in range(min(workers, len(queue)))]
    bar = _progress(len(queue), progress)
    try:
        while queue or any(w.task for w in pool):
            for i, worker in enumerate(pool):
                if worker.task is None:
                    if queue:
                        if worker.proc.poll() is not None:  # died between tasks
                            pool[i] = worker = spawn()
                        student, fp = queue.pop(0)
                        worker.give(student, fp, scratch / f"{student}.json")
                    continue
                student, fp, out, start = worker.task
                if out.exists():
                    result = json.loads(out.read_text())
                elif time.monotonic() - start > budget:
                    result = {"status": "timeout", "reason": f"Grading took longer than {budget:.0f} s in total."}
                elif worker.proc.poll() is not None:
                    result = {"status": "error", "reason": "The grading process died on this submission."}
                else:
                    continue
                if result["status"] in ("timeout", "error"):
                    worker.stop()
                    pool[i] = worker = spawn()
                worker.task = None
                _finish(course, results, bar, student, fp, result, sandbox)
            time.sleep(0.05)
    finally:
        for worker in pool:
            worker.stop()
        bar.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def _finish(course, results, bar, student, fp, result, sandbox) -> None:
    "Record one submission's result (this process is the only writer) and count it."
    result.setdefault("sandboxed", sandbox)
    record(course, student, result, fp)
    results[student] = result["status"]
    bar.update(1)


def _autograde_on_dask(course, queue, results, scheduler, memory_bytes, sandbox, snapshot, scratch, progress) -> dict:
    from .dask_engine import grade_on_dask
    bar = _progress(len(queue), progress)
    try:
        for student, fp, result in grade_on_dask(course, queue, scheduler, memory_bytes, sandbox,
                                                 snapshot if snapshot.exists() else None):
            _finish(course, results, bar, student, fp, result, sandbox)
    finally:
        bar.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def _kill_group(proc) -> None:
    "Stop a worker and everything it started (its sandboxed kernel dies with it: bwrap --die-with-parent)."
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    if proc.stdin:
        proc.stdin.close()


def _progress(total: int, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc="autograde", unit="notebook", disable=not enabled, file=sys.stderr)


if __name__ == "__main__":  # a worker: python -m tinytorch_course.batch --root R --snapshot URL --memory B
    import argparse
    parser = argparse.ArgumentParser()
    for flag in ("--root", "--snapshot", "--memory"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--unsandboxed", action="store_true")
    args = parser.parse_args()
    worker_loop(args.root, args.snapshot, int(args.memory), not args.unsandboxed)
