"""Time to verdict through the hand-in service, against grading the same notebook alone, in the same run.

    python benchmarks/handin_service.py [--students 40] [--each 3] [--idle 5] [--workers 2]

On 127.0.0.1 only, with a bounded load (N students x K hand-ins, then it stops). It measures:
1. the references: one batch grading of the reference notebook (`make autograde`'s path for one
   submission: a fresh worker, the sandboxed kernel, the judge, the gradebook write), and the same
   notebook graded by an already-started worker (`grade_remote` in this process), starting its kernel
   and with a kernel started while it waited (`grading/ready.py`, as the service's workers do); and
   how long a sandboxed kernel takes to start and stop;
2. one idle student: `--idle` hand-ins one after another, each timed from the request to the verdict,
   as the client sees them;
3. N students at once, K different notebooks each: p50 and p95 time to verdict, and the total.
Prints each against the references.
"""

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' helpers: a course, tokens, the service as a process

from handin import Service, handin_course, issue_tokens, submit, variant, verdict  # noqa: E402
from tinytorch_course.examples.build import build, write_submission  # noqa: E402


def percentile(values, q):
    values = sorted(values)
    return values[max(0, min(len(values) - 1, -(-len(values) * q // 100) - 1))]


def hand_in(url, token, body) -> float:
    "Seconds from sending the notebook to having its verdict, as the client sees them."
    start = time.perf_counter()
    status, answer, _ = submit(url, token, body)
    assert status == 201, answer
    verdict(url, token, answer["receipt"]["attempt"], timeout=1800)
    return time.perf_counter() - start


def kernel_start_stop(n: int = 3) -> float:
    "Median seconds to start a sandboxed kernel until it answers, then stop it."
    from tinytorch_course.grading.sandbox import SandboxedKernelManager

    async def once():
        km = SandboxedKernelManager(kernel_name="python3")
        start = time.perf_counter()
        await km.start_kernel(cwd=tempfile.gettempdir())
        kc = km.client()
        kc.start_channels()
        await kc.wait_for_ready(timeout=60)
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
        return time.perf_counter() - start

    return statistics.median(asyncio.run(once()) for _ in range(n))


def cpu_seconds(pid: int) -> float:
    "CPU time (user and system) a process has used so far, all its threads."
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def workers_cpu(pids: list) -> tuple:
    """(the workers' own CPU seconds, their sandboxed kernels' CPU seconds) so far. Every kernel runs in a
    control group under one parent, whose CPU time counts that of its children, removed ones included."""
    from tinytorch_course.grading import cgroup

    return sum(cpu_seconds(p) for p in pids), cgroup.Group(cgroup.PARENT).cpu_seconds()


def machine_busy() -> tuple:
    "(busy, total) clock ticks of all the machine's cores so far, from /proc/stat."
    values = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)  # idle and iowait are not busy


def workers_busy(db_url: str, students: list, workers: int) -> tuple:
    """From the service's own store, for the load's hand-ins: the share of the time its workers spent grading
    (first receipt to last verdict), the mean seconds of one grading, and gradings per hand-in."""
    from sqlalchemy import create_engine, select

    from tinytorch_course.service.store import submissions

    with create_engine(db_url).connect() as conn:
        rows = conn.execute(
            select(
                submissions.c.received_at, submissions.c.started_at, submissions.c.verdict_at, submissions.c.runs
            ).where(submissions.c.student.in_(students))
        ).all()
    if not rows:
        return 0.0, 0.0, 0.0
    grading = [r.verdict_at - r.started_at for r in rows]
    span = max(r.verdict_at for r in rows) - min(r.received_at for r in rows)
    return sum(grading) / (workers * span), statistics.mean(grading), statistics.mean(r.runs for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--each", type=int, default=3)
    parser.add_argument("--idle", type=int, default=5)
    parser.add_argument("--workers", type=int, default=0, help="local workers (default: the service's own)")
    args = parser.parse_args()
    from tinytorch_course.service.dispatch import default_workers

    args.workers = args.workers or default_workers()
    scratch = Path(tempfile.mkdtemp(prefix="bench-handin-"))
    try:
        burst = max(args.each, args.idle + 1)  # the idle student: a warm-up and --idle hand-ins
        course = handin_course(scratch / "course", timeout=None, extra=f"c.HandInService.burst = {burst}\n")
        from tinytorch_course.grading.autograde import autograde
        from tinytorch_course.grading.dask_pool import bundle, grade_remote, grading_course

        # 1. the references, measured here
        batch = handin_course(scratch / "batch", timeout=None)
        write_submission(batch.root, "alone", "reference")
        start = time.perf_counter()
        autograde(batch, workers=1, progress=False)
        t_batch = time.perf_counter() - start
        archive, reference = bundle(batch, batch.root / "gradebook.db"), build("reference", course.root)
        from tinytorch_course.grading import ready
        from tinytorch_course.grading.worker import prepare_next

        def alone(ready_kernel: bool) -> float:
            "The reference graded by this (already-started) process, with or without a ready kernel."
            ready.discard()
            if ready_kernel:
                prepare_next(grading_course(archive, 4 * 2**30, True).config)
                time.sleep(2)  # an idle moment: the kernel boots
            start = time.perf_counter()
            grade_remote(archive, "warm", {"optimizers.ipynb": reference}, 4 * 2**30, True, prepare_next=False)
            return time.perf_counter() - start

        alone(False)
        pairs = [(alone(False), alone(True)) for _ in range(4)]  # interleaved, so drift hits both alike
        t_warm, t_ready = (statistics.median(p[k] for p in pairs) for k in (0, 1))
        t_kernel = kernel_start_stop()

        students = [f"s{k:03d}" for k in range(args.students)]
        db_url = f"sqlite:///{scratch / 'handin.db'}"
        tokens = issue_tokens(course.root, [*students, "idle"], db_url, instructor=None)
        service = Service(course.root, db_url, workers=args.workers, log=scratch / "service.log").start()
        try:
            hand_in(service.url, tokens["idle"], variant(course.root, "reference", "warm-up"))  # workers warm
            time.sleep(2)
            idle = []
            for k in range(args.idle):
                idle.append(hand_in(service.url, tokens["idle"], variant(course.root, "reference", f"idle-{k}")))
                time.sleep(1)

            times, lock = [], threading.Lock()

            def student(name):
                bodies = [variant(course.root, "reference", f"{name}-{k}") for k in range(args.each)]
                sent = []
                for body in bodies:
                    start = time.perf_counter()
                    status, answer, _ = submit(service.url, tokens[name], body)
                    assert status == 201, answer
                    sent.append((start, answer["receipt"]["attempt"]))
                for start, attempt in sent:
                    verdict(service.url, tokens[name], attempt, timeout=1800)
                    with lock:
                        times.append(time.perf_counter() - start)

            threads = [threading.Thread(target=student, args=(s,)) for s in students]
            pids = service.worker_pids()
            cpu_before, machine_before = cpu_seconds(service.proc.pid), machine_busy()
            workers_before = workers_cpu(pids)
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            t_load = time.perf_counter() - start
            service_cpu = cpu_seconds(service.proc.pid) - cpu_before
            own, kernels = (after - before for after, before in zip(workers_cpu(pids), workers_before))
            busy_cores = [after - before for after, before in zip(machine_busy(), machine_before)]
        finally:
            service.stop()
        n = args.students * args.each
        busy, per_grading, runs = workers_busy(db_url, students, args.workers)
        print(f"machine: {os.cpu_count()} cores; service with {args.workers} local workers, sqlite")
        print(f"references: one batch grading of the reference (make autograde, 1 submission): {t_batch:.2f} s")
        print(f"            the same notebook on an already-started worker, starting its kernel: {t_warm:.2f} s")
        print(f"            the same, its kernel started while it waited (ready.py): {t_ready:.2f} s")
        print(
            f"            a sandboxed kernel's start and stop: {t_kernel:.2f} s "
            f"({100 * t_kernel / t_warm:.0f}% of the worker's grading without a ready kernel)"
        )
        p50, p95 = statistics.median(idle), percentile(idle, 95)
        print(
            f"one idle student ({args.idle} hand-ins): time to verdict p50 {p50:.2f} s, p95 {p95:.2f} s = "
            f"{p50 / t_batch:.2f}x the batch grading, {p50 / t_warm:.2f}x the worker starting its kernel, "
            f"{p50 / t_ready:.2f}x the worker with a ready kernel"
        )
        print(
            f"{args.students} students x {args.each} at once ({n} hand-ins, {len(times)} verdicts): "
            f"p50 {statistics.median(times):.1f} s, p95 {percentile(times, 95):.1f} s, all in {t_load:.1f} s "
            f"({t_load / n:.2f} s per hand-in; {n} single batch gradings one after another: about {n * t_batch:.0f} s)"
        )
        print(
            f"            the workers were grading {100 * busy:.0f}% of that time, {per_grading:.2f} s a grading "
            f"under this load; gradings per hand-in: {runs:.2f}"
        )
        print(
            f"            the service process itself (HTTP, store, dispatcher; not its workers) used "
            f"{service_cpu:.1f} core-seconds: {100 * service_cpu / t_load:.0f}% of one core; the machine's cores "
            f"were busy {100 * busy_cores[0] / busy_cores[1]:.0f}% of the time"
        )
        machine = busy_cores[0] / busy_cores[1] * t_load * (os.cpu_count() or 1)  # core-seconds used
        print(
            f"            per hand-in: {machine / n:.2f} core-seconds of the machine, of which the graded kernels "
            f"{kernels / n:.2f} (started ready or not), the workers {own / n:.2f}, the service {service_cpu / n:.2f} "
            f"(the rest: the {args.students} clients, the machine); at that cost the {os.cpu_count()} cores cannot "
            f"finish {n} hand-ins in under {machine / (os.cpu_count() or 1):.0f} s"
        )
        return 0 if len(times) == n else 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
