"""The class report at course scale: summarize and render 1,000 generated submissions' records, against
10 in the same run.

    python benchmarks/class_report.py [--submissions 1000]

Each generated record has every hidden check of the module (passing with a per-check probability, so
some concepts fail often) and the gradebook fields the report reads, as `report.collect` returns them.
"""

import argparse
import random
import time

from tinytorch_course.checks.harness import PROBES
from tinytorch_course.results.class_report import render, summarize


def records(n: int, seed: int = 0) -> list:
    rng = random.Random(seed)
    checks = [(cell, spec["check"]) for cell, specs in PROBES.items() for spec in specs]
    hardness = {key: rng.uniform(0.5, 1.0) for key in checks}
    out = []
    for i in range(n):
        verdicts = [
            {
                "cell": cell,
                "check": check,
                "passed": rng.random() < hardness[(cell, check)],
                "message": f"{check}: after 6 steps the weights miss by {rng.uniform(1, 9):.1e} times",
            }
            for cell, check in checks
        ]
        out.append(
            {
                "student_id": f"s{i:05d}",
                "score": 88.0 * sum(v["passed"] for v in verdicts) / len(verdicts),
                "max_score": 100.0,
                "status": "graded",
                "late_penalty": 0.0 if i % 17 else 5.0,
                "manual_grading": "needs manual grading" if i % 3 else "done",
                "reason": "",
                "events": ["cell 12 (sgd-class): the kernel died here"] if i % 97 == 0 else [],
                "checks": verdicts,
            }
        )
    return out


def seconds(n: int) -> float:
    data = records(n)
    start = time.perf_counter()
    page = render(summarize(data))
    elapsed = time.perf_counter() - start
    assert "pass-rates" in page
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--submissions", type=int, default=1000)
    n = parser.parse_args().submissions
    seconds(10)  # warm up matplotlib
    small, large = seconds(10), seconds(n)
    print(
        f"class report: 10 submissions {small:.2f} s, {n:,} submissions {large:.2f} s "
        f"({large / small:.2f}x the time for {n // 10}x the submissions)"
    )


if __name__ == "__main__":
    main()
