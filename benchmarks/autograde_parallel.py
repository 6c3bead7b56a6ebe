"""Autograde three ways on the same submissions, in the same run, and check the grades agree.

    python benchmarks/autograde_parallel.py [--submissions 40] [--workers 2]

Builds identical scratch courses of N example submissions (correct styles and bugs in turn), then times
1. `nbgrader autograde`, sequential, running every cell (the baseline of plain nbgrader);
2. `make autograde` with W workers, running every cell (the pipeline before demo cells were skipped);
3. `make autograde` with W workers, skipping the cells tagged `demo` (today's pipeline).
All three run each kernel in the sandbox and judge outside it. Prints seconds per submission and ratios.
"""

import argparse
import itertools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import tinytorch_course.grading.autograde as driver
from tinytorch_course.examples.build import write_submission
from tinytorch_course.examples.submissions import BUGS, CORRECT
from tinytorch_course.grading.course import ASSIGNMENT, Course, scratch_course


def make_course(dest: Path, n: int, run_demo: bool) -> Course:
    course = scratch_course(dest)
    if run_demo:
        with open(dest / "nbgrader_config.py", "a") as f:
            f.write("\nc.RobustExecute.skip_demo = False\n")
        course = Course(dest)
    course.tool("nbgrader", "generate_assignment", ASSIGNMENT, "--force")
    for i, name in zip(range(n), itertools.cycle([*CORRECT, *BUGS])):
        write_submission(dest, f"s{i:03d}-{name}", name)
    return course


def scores(course: Course) -> dict:
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url) as gb:
        return {s.student_id: s.score for s in gb.assignment_submissions(ASSIGNMENT)}


def cost_model(core_seconds: float, writes_per_second: float, counts=(1_000, 10_000), workers=(2, 16, 128)) -> None:
    """Projected wall time of a batch: submissions x core-seconds each / workers, one core per worker,
    but never faster than the single gradebook writer records them (measured above)."""
    print(
        f"cost model: {core_seconds:.2f} core-seconds per submission, the writer at {writes_per_second:.0f} "
        "submissions/s (both measured above)"
    )
    print(f"  {'submissions':>11s} " + " ".join(f"{f'{k} workers':>12s}" for k in workers))
    for n in counts:
        cells = []
        for k in workers:
            seconds = max(n * core_seconds / k, n / writes_per_second)
            cells.append(f"{seconds / 60:9.1f} min" if seconds < 3600 else f"{seconds / 3600:10.1f} h")
        print(f"  {n:>11,} " + " ".join(f"{c:>12s}" for c in cells))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--submissions", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-autograde-"))
    try:
        n, w = args.submissions, args.workers
        seq, full, skip = (
            make_course(scratch / name, n, run_demo)
            for name, run_demo in [("sequential", True), ("all-cells", True), ("demo-skipped", False)]
        )
        start = time.perf_counter()
        seq.tool("nbgrader", "autograde", ASSIGNMENT)
        t_seq = time.perf_counter() - start
        times, writing = {}, []
        timed_record = driver.record_safely

        def record(*args):  # the single writer's own time per submission
            start = time.perf_counter()
            recorded = timed_record(*args)
            writing.append(time.perf_counter() - start)
            return recorded

        driver.record_safely = record
        for name, course in [("all", full), ("skip", skip)]:
            start = time.perf_counter()
            driver.autograde(course, workers=w, progress=False)
            times[name] = time.perf_counter() - start
        same = scores(seq) == scores(full) == scores(skip)
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; {n} submissions")
        print(f"  nbgrader autograde, sequential, every cell: {t_seq:7.1f} s  ({t_seq / n:.2f} s each)")
        print(f"  make autograde, {w} workers, every cell:     {times['all']:7.1f} s  ({times['all'] / n:.2f} s each)")
        print(
            f"  make autograde, {w} workers, demo skipped:   {times['skip']:7.1f} s  ({times['skip'] / n:.2f} s each)"
        )
        print(
            f"  {w} workers against sequential nbgrader, same configuration (every cell): "
            f"{t_seq / times['all']:.2f}x faster"
        )
        print(
            f"  skipping demo cells: {times['all'] / times['skip']:.2f}x fewer seconds per submission; "
            f"against sequential nbgrader: {t_seq / times['skip']:.2f}x   grades identical: {same}"
        )
        print(f"  the gradebook writer: {1e3 * sum(writing) / len(writing):.0f} ms per submission")
        cost_model(times["skip"] * w / n, len(writing) / sum(writing))  # measured here
        return 0 if same else 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
