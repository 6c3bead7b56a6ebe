"""Where the service's submissions are graded: local worker processes, or a Dask cluster.

Both grade with the grader's own `grading.dask_pool.grade_remote` (a course bundle and the
submission's bytes in, a `Result` out; the kernel sandboxed, the judge outside it) and neither
writes anything: the dispatcher (`dispatch.py`) writes each verdict to the store. An engine has
named slots; `start` gives a slot a job and `poll` reports, per finished slot, either a `Result` or
that the job was lost (its worker died), which the dispatcher puts back in the queue.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..grading.pool import close_all, kill_group
from ..grading.result import OVER_BUDGET, Result
from .queue import Job

NOTEBOOK_FILE = "optimizers.ipynb"


@dataclass
class Outcome:
    "What became of a slot's job: a Result, or lost (with why)."

    slot: str
    job: Job
    result: Result | None = None
    lost: str = ""


def _worker_preexec(memory_bytes: int):
    "Runs in a local worker before exec: its own process group, a memory bound, and death with the service."

    def apply():
        os.setpgrp()
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass

    return apply


class LocalSlot:
    "One long-lived grading process (`service/worker.py`) and the job it holds."

    def __init__(self, name: str, cmd: list, env: dict, memory_bytes: int, log: Path, scratch: Path):
        self.name, self.cmd, self.env, self.memory, self.log, self.scratch = name, cmd, env, memory_bytes, log, scratch
        self.job, self.out, self.started, self.proc = None, None, 0.0, None
        self.spawn()

    def spawn(self) -> None:
        with open(self.log, "a") as err:
            self.proc = subprocess.Popen(
                self.cmd,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=err,
                text=True,
                preexec_fn=_worker_preexec(self.memory + 2 * 2**30),
            )

    def give(self, job: Job) -> None:
        if self.proc.poll() is not None:  # died between jobs
            self.spawn()
        self.out = self.scratch / f"result-{job.id}-{job.run}.json"
        files = {NOTEBOOK_FILE: base64.b64encode(job.body).decode()}
        self.job, self.started = job, time.monotonic()
        try:
            self.proc.stdin.write(json.dumps({"student": job.student, "files": files, "out": str(self.out)}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it died just now: poll() reports the job lost

    def stop(self) -> None:
        "Kill the worker and everything it started (its sandboxed kernel dies with it)."
        if self.proc is not None:
            kill_group(self.proc)


class LocalEngine:
    "Grading processes on this machine, one submission each at a time (like `make autograde`'s pool)."

    kind = "local"

    def __init__(self, bundle: Path, workers: int, memory_bytes: int, sandbox: bool, scratch: Path, budget: float):
        from ..grading.course import tool_env

        self.budget, self.scratch = budget, scratch
        cmd = [sys.executable, "-m", "tinytorch_course.service.worker", "--bundle", str(bundle)]
        cmd += ["--memory", str(memory_bytes)] + ([] if sandbox else ["--unsandboxed"])
        env = tool_env(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", TMPDIR=str(scratch))
        self.slots = {
            f"local-{i}": LocalSlot(f"local-{i}", cmd, env, memory_bytes, scratch / "workers.log", scratch)
            for i in range(workers)
        }

    def free(self) -> list:
        return [name for name, slot in self.slots.items() if slot.job is None]

    def busy(self) -> dict:
        "{slot: job} of the slots grading now."
        return {name: slot.job for name, slot in self.slots.items() if slot.job is not None}

    def start(self, name: str, job: Job) -> None:
        self.slots[name].give(job)

    def poll(self) -> list:
        done = []
        for name, slot in self.slots.items():
            if slot.job is None:
                continue
            job = slot.job
            if slot.out.exists():
                outcome = Outcome(name, job, result=Result.from_json(json.loads(slot.out.read_text())))
                slot.out.unlink()
            elif time.monotonic() - slot.started > self.budget:
                slot.stop()
                slot.spawn()
                outcome = Outcome(
                    name,
                    job,
                    result=Result.failed(job.student, OVER_BUDGET, f"Grading took longer than {self.budget:.0f} s."),
                )
            elif slot.proc.poll() is not None:
                slot.spawn()
                outcome = Outcome(name, job, lost="The grading process died while grading this submission.")
            else:
                continue
            slot.job = None
            done.append(outcome)
        return done

    def pids(self) -> dict:
        "{slot: worker process id}, for the status page and the fault tests."
        return {name: slot.proc.pid for name, slot in self.slots.items()}

    def stop(self) -> None:
        close_all([slot.proc for slot in self.slots.values() if slot.job is None and slot.proc is not None])
        for slot in self.slots.values():
            if slot.job is not None:  # mid-submission: killed, and graded again after a restart
                slot.stop()


class DaskEngine:
    "Dask `distributed` workers (one slot per worker thread), each grading as a local worker does."

    kind = "dask"

    def __init__(self, scheduler: str, archive: bytes, memory_bytes: int, sandbox: bool):
        from distributed import Client

        self.client = Client(scheduler, timeout="30s")
        self.client.wait_for_workers(1, timeout=120)
        self.archive_bytes, self.memory, self.sandbox = archive, memory_bytes, sandbox
        self.archive = self.client.scatter(archive, broadcast=True)
        self.running = {}  # slot name -> (job, future)

    def capacity(self) -> int:
        workers = self.client.scheduler_info().get("workers", {})
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))

    def free(self) -> list:
        return [f"dask-{i}" for i in range(self.capacity()) if f"dask-{i}" not in self.running]

    def busy(self) -> dict:
        return {name: job for name, (job, _) in self.running.items()}

    def start(self, name: str, job: Job) -> None:
        from ..grading.dask_pool import grade_remote

        future = self.client.submit(
            grade_remote,
            self.archive,
            job.student,
            {NOTEBOOK_FILE: job.body},
            self.memory,
            self.sandbox,
            key=f"handin-{job.id}-{job.run}",
            pure=False,
        )
        self.running[name] = (job, future)

    def poll(self) -> list:
        from distributed.client import FutureCancelledError

        done = []
        for name, (job, future) in list(self.running.items()):
            if not future.done():
                continue
            del self.running[name]
            try:
                done.append(Outcome(name, job, result=future.result()))
            except FutureCancelledError:  # its input, the bundle, was lost with the workers that held it
                self.archive = self.client.scatter(self.archive_bytes, broadcast=True)
                done.append(Outcome(name, job, lost="The Dask workers lost the course bundle."))
            except Exception as exc:  # KilledWorker: the workers kept dying on it
                done.append(
                    Outcome(name, job, lost=f"The Dask workers failed on this submission ({type(exc).__name__}).")
                )
        return done

    def pids(self) -> dict:
        return {}

    def stop(self) -> None:
        for _, future in self.running.values():
            future.cancel()
        self.client.close()
