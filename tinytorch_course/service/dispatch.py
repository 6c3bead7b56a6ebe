"""The dispatcher: queued submissions from the store to an engine's free slots, verdicts back to the store.

One thread per server. Each turn it writes the verdicts that came back (`queue.finish`, fenced by the
lease), puts lost jobs back in the queue (`queue.release`), then claims a submission for each free
slot. A second, small thread renews the leases it holds and says which slots are alive
(`queue.heartbeat`) every third of a lease, whatever a turn costs on a busy machine. It holds nothing
the store does not: a server killed mid-grading loses only its leases, which expire, and the
submissions are graded by whichever server claims them next.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

from . import queue
from .store import Store

log = logging.getLogger("tinytorch.handin")


class Dispatcher(threading.Thread):
    "Moves submissions between the store's queue and an engine's slots (see the module docstring)."

    def __init__(self, store: Store, make_engine, on_verdict=None, tick: float = 0.1):
        """`make_engine()` builds the engine in this thread: local workers die with the thread that started
        them (PR_SET_PDEATHSIG is per thread), so that must be the one that lives as long as the server."""
        super().__init__(name="handin-dispatcher", daemon=True)
        self.store, self.make_engine, self.on_verdict, self.tick = (
            store,
            make_engine,
            on_verdict or (lambda student, attempt: None),
            tick,
        )
        self.engine, self.ready, self.failed = None, threading.Event(), None
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._wake, self._halt = threading.Event(), threading.Event()
        self._beats = threading.Thread(target=self.beat, name="handin-leases", daemon=True)

    def owner(self, slot: str) -> str:
        return f"{self.instance}/{slot}"

    def wake(self) -> None:
        "A submission was just accepted: look at the queue now, not at the next tick."
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._halt.set()
        self._wake.set()
        self.join(timeout)

    def beat(self) -> None:
        "Renew the leases of what the engine grades, and say which slots are alive, every third of a lease."
        while not self._halt.wait(self.store.settings.lease_seconds / 3):
            try:
                busy = dict(self.engine.busy())
                for slot, job in busy.items():
                    queue.renew(self.store, self.owner(slot), [job.id])
                for slot in [*busy, *self.engine.free()]:
                    job = busy.get(slot)
                    queue.heartbeat(self.store, self.owner(slot), self.engine.kind, job.id if job else None)
            except Exception:
                log.exception("lease renewal failed")

    def started(self, timeout: float = 300.0) -> None:
        "Wait until the engine is up; raise what stopped it."
        if not self.ready.wait(timeout):
            raise RuntimeError("the grading engine did not start in time")
        if self.failed is not None:
            raise RuntimeError(f"the grading engine did not start: {self.failed!r}") from self.failed

    def run(self) -> None:
        try:
            self.engine = self.make_engine()
        except Exception as exc:
            self.failed = exc
            return
        finally:
            self.ready.set()
        self._beats.start()
        try:
            while not self._halt.is_set():
                try:
                    self.turn()
                except Exception:  # the database went away for a moment: try again next turn
                    log.exception("dispatcher turn failed")
                    time.sleep(1.0)
                self._wake.wait(self.tick)
                self._wake.clear()
        finally:
            self.shutdown()

    def turn(self) -> None:
        for outcome in self.engine.poll():
            owner = self.owner(outcome.slot)
            if outcome.result is not None:
                queue.finish(self.store, outcome.job.id, owner, outcome.result)
            else:
                log.warning("lost submission %s (run %s): %s", outcome.job.id, outcome.job.run, outcome.lost)
                queue.release(self.store, outcome.job.id, owner, outcome.lost)
            self.on_verdict(outcome.job.student, outcome.job.attempt)
        for slot in self.engine.free():
            job = queue.claim(self.store, self.owner(slot))
            if job is None:
                break
            self.engine.start(slot, job)
            queue.heartbeat(self.store, self.owner(slot), self.engine.kind, job.id)

    def shutdown(self) -> None:
        "Stop the engine and hand back what it was grading, at no cost to anyone (a graceful stop)."
        self._halt.set()
        if self._beats.is_alive():
            self._beats.join(10)
        busy = self.engine.busy()
        self.engine.stop()
        for slot, job in busy.items():
            try:
                queue.release(self.store, job.id, self.owner(slot), "the server stopped", counted=False)
            except Exception:
                log.exception("could not hand back submission %s", job.id)
        try:
            queue.forget_slots(self.store, [self.owner(s) for s in [*busy, *self.engine.free()]])
        except Exception:
            log.exception("could not remove this server's slots")


def default_workers() -> int:
    """Local grading processes when none are asked for: one per core and one more. A grading leaves its core
    idle while its kernel starts and between cells: on 2 cores, 40 students x 3 hand-ins took 180 s with
    2 workers (cores 85% busy) and 145-166 s with 3 (96%) (README, Benchmarks)."""
    return (os.cpu_count() or 1) + 1


def make_engine(course, settings, scratch: Path, engine: str, workers: int, scheduler: str | None, sandbox: bool):
    "The engine of `make serve`: local worker processes (the default) or a Dask cluster."
    from ..grading.dask_pool import bundle
    from ..grading.sandbox import LIMITS
    from .engine import DaskEngine, LocalEngine

    snapshot = None
    if course.db_url.startswith("sqlite:///"):  # workers read a copy of the gradebook, never the real one
        snapshot = scratch / "gradebook-snapshot.db"
        shutil.copy(course.db_url[len("sqlite:///") :], snapshot)
    archive = bundle(course, snapshot)
    if engine == "dask":
        return DaskEngine(scheduler, archive, LIMITS["as"], sandbox)
    (scratch / "course.tar.gz").write_bytes(archive)
    return LocalEngine(
        scratch / "course.tar.gz",
        workers or default_workers(),
        LIMITS["as"],
        sandbox,
        scratch,
        settings.budget_seconds,
    )


def scratch_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="handin-"))
