"""`make autograde` against sequential `nbgrader autograde`, the same configuration, the same submissions, the
same run; the grades must agree.

    python benchmarks/autograde_parallel.py [--submissions 40] [--workers 2] [--every-cell]

Builds identical scratch courses of N example submissions (correct styles and bugs in turn, one course
secret, so each submission meets the same hidden inputs everywhere), then times, with the course's
configuration (cells tagged `demo` skipped):
1. `nbgrader autograde`, sequential (one process, a kernel started for each submission);
2. `make autograde` with W workers (each keeps a ready kernel, `grading/ready.py`).
With `--every-cell`, the same two again running every cell (the module's figures and races too), as
plain nbgrader would. All run each kernel in the sandbox and judge outside it. Prints seconds per
submission, ratios and a cost model.
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
from tinytorch_course.grading.course import SECRET as COURSE_SECRET

SECRET = os.urandom(32).hex() + "\n"  # one course secret for the three courses: the same hidden inputs


def make_course(dest: Path, n: int, run_demo: bool) -> Course:
    course = scratch_course(dest)
    (dest / COURSE_SECRET).write_text(SECRET)
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
    parser.add_argument("--every-cell", action="store_true", help="also time both running every cell (slow)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-autograde-"))
    try:
        n, w = args.submissions, args.workers
        modes = [("demo skipped", False)] + ([("every cell", True)] if args.every_cell else [])
        times, writing, graded = {}, [], []
        timed_record = driver.record_safely

        def record(*args):  # the single writer's own time per submission
            start = time.perf_counter()
            recorded = timed_record(*args)
            writing.append(time.perf_counter() - start)
            return recorded

        driver.record_safely = record
        for mode, run_demo in modes:
            slug = mode.replace(" ", "-")
            seq, pool = (make_course(scratch / f"{slug}-{kind}", n, run_demo) for kind in ("sequential", "pool"))
            start = time.perf_counter()
            seq.tool("nbgrader", "autograde", ASSIGNMENT)
            times[mode, "sequential"] = time.perf_counter() - start
            start = time.perf_counter()
            driver.autograde(pool, workers=w, progress=False)
            times[mode, "pool"] = time.perf_counter() - start
            graded += [scores(seq), scores(pool)]
        same = all(g == graded[0] for g in graded)
        for student in sorted(s for s in graded[0] if any(g.get(s) != graded[0][s] for g in graded)):
            print(f"  grades differ for {student}: " + ", ".join(str(g.get(student)) for g in graded))
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; {n} submissions")
        for mode, _ in modes:
            seq, pool = times[mode, "sequential"], times[mode, "pool"]
            print(f"  {mode}: nbgrader autograde, sequential: {seq:7.1f} s ({seq / n:.2f} s each)")
            print(f"  {mode}: make autograde, {w} workers: {pool:7.1f} s ({pool / n:.2f} s each): {seq / pool:.2f}x")
        print(f"  grades identical: {same}")
        print(f"  the gradebook writer: {1e3 * sum(writing) / len(writing):.0f} ms per submission")
        cost_model(times["demo skipped", "pool"] * w / n, len(writing) / sum(writing))  # measured here
        return 0 if same else 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
