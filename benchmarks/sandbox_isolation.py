"""One submission's hogs do not slow the others: honest submissions graded alone, then beside a CPU hog and a
memory hog, in the same run (`make bench`). Prints each honest submission's time and the ratio to alone.

The CPU hog forks 110 busy children in sessions of their own and sleeps; the memory hog forks four children
that each touch 1.5 GiB. Each sandbox's control group holds them to one core and 4 GiB together (before
control groups, four honest submissions took 20-111 s instead of 6-8 s beside the CPU hog). The target is
every honest submission within 1.5x of its time alone.
"""

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import released_course  # noqa: E402
from tinytorch_course.examples.build import write_submission  # noqa: E402
from tinytorch_course.grading.autograde import autograde  # noqa: E402
from tinytorch_course.grading.record import read_record  # noqa: E402

HONEST = ["reference", "plain-whole-arrays", "seed-style-out-of-place", "adam-no-bias-correction"]


def grade(root: Path, students: dict, workers: int) -> dict:
    "{student: seconds its grading took} for one batch of `students` ({student: example})."
    course = released_course(root, timeout=20)
    for student, example in students.items():
        write_submission(course.root, student, example)
    autograde(course, workers=workers, progress=False)
    records = {s: read_record(course, s) for s in students}
    assert all(r["status"] == "graded" for r in records.values()), records
    return {s: r["seconds"] for s, r in records.items()}


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="bench-isolation-"))
    try:
        honest = {f"h{i}-{name}": name for i, name in enumerate(HONEST)}
        alone = grade(scratch / "alone", honest, workers=2)
        print(f"{len(HONEST)} honest submissions on 2 cores; each one's grading time, and its ratio to alone")
        print(f"  {'alone':12s} " + "  ".join(f"{alone[s]:5.1f} s" for s in honest))
        for hog in ("cpu-hog", "memory-hog"):  # the hog first in the queue, beside the honest ones
            beside = grade(scratch / hog, {"a-hog": hog, **honest}, workers=2)
            ratios = [beside[s] / alone[s] for s in honest]
            print(
                f"  {'beside ' + hog:12s} "
                + "  ".join(f"{beside[s]:5.1f} s" for s in honest)
                + f"   ratio {min(ratios):.2f}-{max(ratios):.2f}x (target: at most 1.5x)"
            )
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
