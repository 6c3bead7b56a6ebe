"""Parallel autograde against sequential `nbgrader autograde`, same submissions, same run.

    python benchmarks/autograde_parallel.py [--submissions 40] [--workers 2]

Builds two identical scratch courses of N example submissions (correct styles and bugs in turn),
times `nbgrader autograde` on one and `tinytorch_course.grading.autograde` with W workers on the
other, checks the grades agree, and prints the ratio.
"""
import argparse
import itertools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tinytorch_course.examples import BUGS, CORRECT
from tinytorch_course.submissions import write_submission
from tinytorch_course.batch import autograde
from tinytorch_course.course import ASSIGNMENT, Course, scratch_course


def make_course(dest: Path, n: int) -> Course:
    course = scratch_course(dest)
    course.tool("nbgrader", "generate_assignment", ASSIGNMENT, "--force")
    for i, name in zip(range(n), itertools.cycle([*CORRECT, *BUGS])):
        write_submission(dest, f"s{i:03d}-{name}", name)
    return course


def scores(course: Course) -> dict:
    from nbgrader.api import Gradebook
    with Gradebook(course.db_url) as gb:
        return {s.student_id: s.score for s in gb.assignment_submissions(ASSIGNMENT)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--submissions", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-autograde-"))
    try:
        seq, par = make_course(scratch / "sequential", args.submissions), make_course(scratch / "parallel", args.submissions)
        start = time.perf_counter()
        seq.tool("nbgrader", "autograde", ASSIGNMENT)
        t_seq = time.perf_counter() - start
        start = time.perf_counter()
        autograde(par, workers=args.workers, progress=False)
        t_par = time.perf_counter() - start
        same = scores(seq) == scores(par)
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
        print(f"{args.submissions} submissions")
        print(f"  nbgrader autograde (sequential):    {t_seq:7.1f} s  ({t_seq / args.submissions:.2f} s each)")
        print(f"  tinytorch_course, {args.workers} workers:         {t_par:7.1f} s  ({t_par / args.submissions:.2f} s each)")
        print(f"  speed-up: {t_seq / t_par:.2f}x   grades identical: {same}")
        return 0 if same else 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
