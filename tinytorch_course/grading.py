"""Instructor commands: release, autograde (parallel, robust, resumable), feedback, grades.

    python -m tinytorch_course.grading release              # nbgrader generate_assignment + dist/student/
    python -m tinytorch_course.grading autograde [--workers N] [--force]
    python -m tinytorch_course.grading feedback
    python -m tinytorch_course.grading grades

Autograding runs nbgrader 0.9's own preprocessors, split in two. Worker processes (one per
submission, at most N at a time) sanitize and execute a notebook against a read-only snapshot of
the gradebook; the main process is the only one that writes the gradebook, so sqlite never sees two
writers. Every submission ends with a score and an explanation: a missing or unreadable notebook
scores 0 with the reason; timeouts and dead kernels are reported cell by cell. Files under
`submitted/` are only ever read. A batch that is killed can be run again: finished submissions are
skipped (unless they changed or `--force` is given), and nothing is recorded twice.
"""
import argparse
import warnings
import csv
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from traitlets.config.loader import PyFileConfigLoader

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput, DeduplicateIds,
                                    GetGrades, IgnorePattern, LimitOutput, OverwriteCells, OverwriteKernelspec,
                                    SaveAutoGrades)

from .preprocessors import KERNEL_DIED, HideHiddenTests, RestoreMissingCells, RobustExecute, cell_label

ASSIGNMENT, NOTEBOOK = "07_optimizers", "optimizers"
# nbgrader's Autograde.sanitize_preprocessors, then its autograde_preprocessors split in two:
# what a worker may run (no gradebook writes) and what only the writer runs.
SANITIZE = [ClearOutput, DeduplicateIds, OverwriteKernelspec, RestoreMissingCells, OverwriteCells, CheckCellMetadata]
EXECUTE = [RobustExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput]
RECORD = [SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
FEEDBACK = [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]
MARKER = "grading.json"
REPO = Path(__file__).resolve().parents[1]


def tool_env(**extra) -> dict:
    "The environment for this Python's console scripts (nbgrader, nbdev-export, alembic): its bin folder first."
    return dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""), **extra)


def run_script(cwd, *args):
    "Run a console script of this Python environment in `cwd`; raise with its output if it fails."
    proc = subprocess.run([str(Path(sys.executable).parent / args[0]), *args[1:]], cwd=cwd, env=tool_env(),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


class Course:
    "Paths and configuration of a course folder (the folder holding nbgrader_config.py)."

    def __init__(self, root="."):
        self.root = Path(root).resolve()
        self.config = PyFileConfigLoader("nbgrader_config.py", path=str(self.root)).load_config()
        self.config.CourseDirectory.root = str(self.root)
        self.coursedir = CourseDirectory(config=self.config, root=str(self.root))
        self.db_url = self.coursedir.db_url
        self.course_id = self.coursedir.course_id

    def submitted(self, student: str) -> Path:
        return self.root / "submitted" / student / ASSIGNMENT

    def autograded(self, student: str) -> Path:
        return self.root / "autograded" / student / ASSIGNMENT

    def students(self) -> list:
        "Everyone with a submission folder for this assignment, notebook or not."
        base = self.root / "submitted"
        return sorted(p.parent.name for p in base.glob(f"*/{ASSIGNMENT}") if p.is_dir()) if base.exists() else []

    def tool(self, *args):
        "Run a console script of this Python environment in the course folder."
        return run_script(self.root, *args)


def scratch_course(dest) -> Course:
    "A throwaway course folder with this repository's nbgrader config and the module 07 source."
    dest = Path(dest)
    (dest / "modules").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "nbgrader_config.py", dest)
    shutil.copytree(REPO / "modules" / ASSIGNMENT, dest / "modules" / ASSIGNMENT)
    return Course(dest)


def fingerprint(course: Course, student: str) -> str:
    "A hash of what the student submitted (all files), to tell a changed submission from a graded one."
    digest = hashlib.sha256()
    folder = course.submitted(student)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# ---- worker side: sanitize and execute one submission, never writing the gradebook ----------

def _run(preprocessors, nb, resources, config):
    for cls in preprocessors:
        nb, resources = cls(config=config)(nb, resources)
    return nb, resources


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
    return {"status": "graded", "events": events,
            "notebook": nbformat.writes(nb)}


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
    "Runs in the worker before exec: its kernel inherits this address-space limit and its own process group."
    def apply():
        os.setpgrp()
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    return apply


# ---- writer side: the only code that writes the gradebook -----------------------------------

def report_cell(student: str, result: dict) -> nbformat.NotebookNode:
    lines = [f"## Grading report for {student}", ""]
    if result["status"] == "graded":
        lines += [f"- {e}" for e in result["events"]] or ["- Every cell ran to completion."]
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
    _atomic_write(out / MARKER, json.dumps({**summary, "fingerprint": fp}, indent=1))


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

    def __init__(self, course: Course, snapshot_url: str, env: dict, memory_bytes: int, log: Path):
        cmd = [sys.executable, "-m", "tinytorch_course.grading", "_worker", "--root", str(course.root),
               "--snapshot", snapshot_url]
        with open(log, "a") as err:
            self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=err, text=True, preexec_fn=_limit_worker(memory_bytes))
        self.task = None  # (student, fingerprint, result file, start time)

    def give(self, student: str, fp: str, out: Path) -> None:
        self.proc.stdin.write(json.dumps({"student": student, "out": str(out)}) + "\n")
        self.proc.stdin.flush()
        self.task = (student, fp, out, time.monotonic())

    def stop(self) -> None:
        _kill_group(self.proc)


def worker_loop(root: str, snapshot_url: str) -> None:
    "Grade the students named on stdin, one JSON line each, writing each result file atomically."
    course = Course(root)
    for line in sys.stdin:
        task = json.loads(line)
        try:
            result = execute_submission(course, task["student"], snapshot_url)
        except Exception as exc:  # the grader's own failure still yields a result for that student
            result = {"status": "error", "reason": f"The grader failed on this submission: {exc!r}"[:500]}
        _atomic_write(Path(task["out"]), json.dumps(result))


def autograde(course: Course, workers: int = 0, force: bool = False, memory_gib: float = 4.0,
              budget: float = 1800.0, progress: bool = True) -> dict:
    "Grade every submission; returns {student: status}."
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
    env = tool_env(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    spawn = lambda: Worker(course, snapshot_url, env, int(memory_gib * 2**30), scratch / "workers.log")
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
                record(course, student, result, fp)
                results[student] = result["status"]
                bar.update(1)
            time.sleep(0.05)
    finally:
        for worker in pool:
            worker.stop()
        bar.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def _kill_group(proc) -> None:
    "Stop a worker and everything it started (its kernel)."
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


# ---- feedback, grades, release ---------------------------------------------------------------

def feedback(course: Course) -> list:
    "feedback/<student>/07_optimizers/optimizers.html for every autograded submission."
    course.tool("nbgrader", "generate_feedback", ASSIGNMENT, "--force")
    return sorted(course.root.glob(f"feedback/*/{ASSIGNMENT}/{NOTEBOOK}.html"))


def grade_rows(course: Course) -> list:
    rows = []
    with Gradebook(course.db_url, course.course_id) as gb:
        for sub in gb.assignment_submissions(ASSIGNMENT):
            marker = course.autograded(sub.student_id) / MARKER
            info = json.loads(marker.read_text()) if marker.exists() else {}
            notes = info.get("reason") or "; ".join(info.get("events", []))
            rows.append({"student_id": sub.student_id, "score": sub.score, "max_score": sub.max_score,
                         "late_penalty": sub.late_submission_penalty,
                         "timestamp": sub.timestamp.isoformat() if sub.timestamp else "",
                         "status": info.get("status", "graded by nbgrader"), "notes": notes})
    return sorted(rows, key=lambda r: r["student_id"])


def grades(course: Course, path: str = "grades.csv") -> list:
    rows = grade_rows(course)
    with open(course.root / path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["student_id", "score", "max_score", "late_penalty", "timestamp",
                                               "status", "notes"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def print_table(rows: list) -> None:
    print(f"\n{'student':22s} {'score':>7s}  status / notes")
    for r in rows:
        print(f"{r['student_id']:22s} {r['score']:5.1f}/{r['max_score']:.0f}  {r['status']}"
              + (f": {r['notes'][:80]}" if r["notes"] else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinytorch_course.grading", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("release", help="generate the student version and build dist/student/")
    auto = sub.add_parser("autograde", help="grade every submitted/<student>/07_optimizers/")
    auto.add_argument("--workers", type=int, default=0, help="parallel notebooks (default: number of cores)")
    auto.add_argument("--force", action="store_true", help="regrade submissions already graded")
    auto.add_argument("--memory-gib", type=float, default=4.0, help="address-space limit of each notebook's kernel")
    sub.add_parser("feedback", help="HTML feedback for every graded submission")
    sub.add_parser("grades", help="write grades.csv and print the table")
    worker = sub.add_parser("_worker", help=argparse.SUPPRESS)
    for flag in ("--root", "--snapshot"):
        worker.add_argument(flag, required=True)
    args = parser.parse_args(argv)
    if args.command == "_worker":
        worker_loop(args.root, args.snapshot)
        return 0
    course = Course(".")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed batch still stops its workers
    if args.command == "release":
        from .student_repo import release
        print(f"student repository: {release(course)}")
    elif args.command == "autograde":
        results = autograde(course, args.workers, args.force, args.memory_gib)
        print(f"{len(results)} submissions: " + ", ".join(f"{n} {s}" for s, n in _count(results.values())))
    elif args.command == "feedback":
        print(f"{len(feedback(course))} feedback files under feedback/")
    elif args.command == "grades":
        print_table(grades(course))
        print("\nwritten: grades.csv")
    return 0


def _count(values) -> list:
    from collections import Counter
    return sorted(Counter(values).items())


if __name__ == "__main__":
    sys.exit(main())
