"""Grading on this machine: long-lived worker processes, at most N submissions at once.

Each worker is `python -m tinytorch_course.grading.pool`, reading one JSON task per line on stdin
and writing each `Result` to its own file atomically. A worker imports once and grades many; one that
overruns the batch's per-submission budget or dies is killed with its kernel and replaced, and its
submission gets a result that says so. Workers never write the gradebook: `run` yields each result
to the caller, which records it.
"""

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from .course import Course
from .record import atomic_write
from .result import ERROR, OVER_BUDGET, Result
from .worker import execute_submission, prepare_next


def _limit_worker(memory_bytes: int):
    "Runs in the worker before exec: its own process group, and a bound on what it may hold in memory."

    def apply():
        os.setpgrp()
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    return apply


class Worker:
    "A long-lived grading process (imports once, grades many); killed with its kernel if it overruns."

    def __init__(
        self,
        course: Course,
        snapshot_url: str,
        env: dict,
        memory_bytes: int,
        log: Path,
        sandbox: bool,
        cgroups: bool = True,
    ):
        cmd = (
            [
                sys.executable,
                "-m",
                __name__,
                "--root",
                str(course.root),
                "--snapshot",
                snapshot_url,
                "--memory",
                str(memory_bytes),
            ]
            + ([] if sandbox else ["--unsandboxed"])
            + ([] if cgroups else ["--no-cgroups"])
        )
        with open(log, "a") as err:
            self.proc = subprocess.Popen(
                cmd,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=err,
                text=True,
                preexec_fn=_limit_worker(memory_bytes + 2 * 2**30),
            )
        self.task = None  # (student, fingerprint, result file, start time)

    def give(self, student: str, fp: str, out: Path) -> None:
        self.proc.stdin.write(json.dumps({"student": student, "out": str(out)}) + "\n")
        self.proc.stdin.flush()
        self.task = (student, fp, out, time.monotonic())

    def stop(self) -> None:
        "Stop the worker and everything it started (its sandboxed kernel dies with it: bwrap --die-with-parent)."
        kill_group(self.proc)


def close_all(procs, timeout: float = 15.0) -> None:
    """End idle workers the clean way: no more input, so each shuts down its ready kernel and gives back its
    control group and user before it exits; any still running after `timeout` s is killed."""
    for proc in procs:
        try:
            proc.stdin.close()
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        kill_group(proc)


def kill_group(proc) -> None:
    "Kill a worker that leads its own process group (its preexec calls os.setpgrp), all it started; reap it."
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    if proc.stdin:
        try:
            proc.stdin.close()
        except OSError:  # a pipe the dead worker left unflushed
            pass


def run(
    course: Course,
    queue: list,
    snapshot_url: str,
    env: dict,
    memory_bytes: int,
    scratch: Path,
    sandbox: bool,
    workers: int,
    budget: float,
    cgroups: bool = True,
):
    "Yield (student, fingerprint, Result) as local workers finish each queued (student, fingerprint)."
    queue = list(queue)
    spawn = lambda: Worker(course, snapshot_url, env, memory_bytes, scratch / "workers.log", sandbox, cgroups)
    pool = [spawn() for _ in range(min(workers, len(queue)))]
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
                    result = Result.from_json(json.loads(out.read_text()))
                elif time.monotonic() - start > budget:
                    result = Result.failed(student, OVER_BUDGET, f"Grading took longer than {budget:.0f} s in total.")
                elif worker.proc.poll() is not None:
                    result = Result.failed(student, ERROR, "The grading process died on this submission.")
                else:
                    continue
                if result.status in (OVER_BUDGET, ERROR):
                    worker.stop()
                    pool[i] = worker = spawn()
                worker.task = None
                yield student, fp, result
            time.sleep(0.05)
    finally:
        close_all([w.proc for w in pool if w.task is None])
        for worker in pool:
            if worker.task is not None:  # interrupted mid-submission
                worker.stop()


def worker_loop(root: str, snapshot_url: str, memory_bytes: int, sandbox: bool, cgroups: bool = True) -> None:
    "Grade the students named on stdin, one JSON line each, writing each Result file atomically."
    course = Course(root)
    course.config.RobustExecute.sandbox = sandbox
    course.config.SandboxedKernelManager.memory_limit = memory_bytes
    course.config.SandboxedKernelManager.cgroups = cgroups
    prepare_next(course.config)  # a kernel boots while the first task comes
    for line in sys.stdin:
        task = json.loads(line)
        try:
            result = execute_submission(course, task["student"], snapshot_url)
        except Exception as exc:  # the grader's own failure still yields a result for that student
            result = Result.failed(task["student"], ERROR, f"The grader failed on this submission: {exc!r}"[:500])
        atomic_write(Path(task["out"]), json.dumps(result.to_json(with_notebook=True)))
        prepare_next(course.config)  # the next one's kernel, once this result is out


if __name__ == "__main__":  # a worker: python -m tinytorch_course.grading.pool --root R --snapshot URL --memory B
    import argparse

    parser = argparse.ArgumentParser()
    for flag in ("--root", "--snapshot", "--memory"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--unsandboxed", action="store_true")
    parser.add_argument("--no-cgroups", action="store_true")
    args = parser.parse_args()
    worker_loop(args.root, args.snapshot, int(args.memory), not args.unsandboxed, not args.no_cgroups)
