"""The class report: what the class got wrong, on one self-contained HTML page (`make report`).

    python -m tinytorch_course.cli report         # writes report.html at the course root (make report)

From the gradebook (scores, late penalties, manual grading) and each submission's grading record
(`autograded/<student>/07_optimizers/grading.json`: its status, what happened while grading, and
every hidden check's verdict), it shows

- the score histogram;
- the pass rate of every graded check, in the notebook's order, so the concept the class missed
  stands out;
- the most common failure messages, grouped (numbers in a message are blanked, so "off by 3.2" and
  "off by 4.1" count as one);
- the submissions that need a person: not graded, kernel deaths, timeouts, restored cells, late, or
  written answers not graded yet;
- when the submissions came through the hand-in service (`make collect` wrote `handins.json`), the
  attempts per student and the times to verdict.

Figures are embedded as PNG, so the page is one file to mail or put on a course site. The page holds
no solution and no hidden test (check names and the judge's messages only). Everything a student
wrote (ids, messages quoting their errors) is escaped, and the page's Content-Security-Policy forbids
every script (`grading.sanitize.with_csp`).
"""

import base64
import collections
import html
import io
import json
import re
import statistics

from ..checks.harness import PROBES
from ..grading.course import Course
from ..grading.record import NEEDS_MANUAL, grade_rows
from ..grading.result import (
    BAD_TIMESTAMP,
    GRADED,
    KERNEL_DIED,
    LATE,
    NOT_RUN,
    OUT_OF_MEMORY,
    REFUSED,
    RESTORED,
    TIMEOUT,
)
from ..grading.sanitize import with_csp

ATTENTION = {
    KERNEL_DIED: "the kernel died",
    TIMEOUT: "a cell timed out",
    RESTORED: "cells were restored",
    NOT_RUN: "cells were not run",
    OUT_OF_MEMORY: "a cell ran out of memory",
    LATE: "late",
    REFUSED: "refused",
    BAD_TIMESTAMP: "timestamp.txt is not a time (ignored: no late penalty)",
}  # the event kinds that need a person, and how the page says so
HANDINS = (
    "handins.json"  # written by the hand-in service's `make collect`: {student: {attempts, seconds_to_verdict, ...}}
)
_NUMBER = re.compile(r"(?<![A-Za-z_\d])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?%?")  # not the 2 of "L2"


def collect(course: Course) -> list:
    "One record per submission: the gradebook row and its grading record's checks, event kinds and reason."
    return [
        {
            **row,
            "checks": row["record"].checks() if row["record"] else [],
            "kinds": row["record"].kinds() if row["record"] else set(),
            "reason": row["record"].reason if row["record"] else "",
        }
        for row in grade_rows(course, with_record=True)
    ]


def handins(course: Course) -> dict:
    "The hand-in service's record of each student's attempts ({} when the submissions came another way)."
    path = course.root / HANDINS
    return json.loads(path.read_text()) if path.exists() else {}


def summarize(records: list, service: dict | None = None) -> dict:
    "The numbers the page shows, computed from `collect`'s records."
    order = [(cell, spec["check"]) for cell, specs in PROBES.items() for spec in specs]
    tally = {key: [0, 0] for key in order}  # (cell, check) -> [passed, judged]
    messages = collections.Counter()
    for record in records:
        for check in record["checks"]:
            key = (check["cell"], check["check"])
            if key in tally:
                tally[key][0] += bool(check["passed"])
                tally[key][1] += 1
            if not check["passed"]:
                messages[_NUMBER.sub("#", check.get("message") or check["check"])] += 1
    attention = []
    for r in records:
        why = [] if r["status"] in (GRADED, "graded by nbgrader") else [f"not graded ({r['status']}): {r['reason']}"]
        why += [label for kind, label in ATTENTION.items() if kind in r["kinds"]]
        why += ["late"] if r.get("late_penalty") and LATE not in r["kinds"] else []  # graded by plain nbgrader
        why += ["written answers to grade"] if r.get("manual_grading") == NEEDS_MANUAL else []
        if why:
            attention.append((r["student_id"], "; ".join(why)))
    return {
        "scores": [r["score"] for r in records],
        "max_score": max((r["max_score"] for r in records), default=100),
        "pass_rates": [(cell, check, *tally[(cell, check)]) for cell, check in order],
        "messages": messages.most_common(15),
        "attention": attention,
        "count": len(records),
        "handins": _handins(service or {}),
    }


def _handins(service: dict) -> dict:
    "Attempts per student and times to verdict, from the hand-in service's record."
    times = sorted(t for info in service.values() for t in info.get("seconds_to_verdict", []))
    pick = lambda q: times[max(0, -(-len(times) * q // 100) - 1)] if times else None  # noqa: E731
    rows = [
        (
            student,
            info["attempts"],
            statistics.median(info["seconds_to_verdict"]) if info["seconds_to_verdict"] else None,
        )
        for student, info in sorted(service.items())
    ]
    return {"rows": rows, "p50": pick(50), "p95": pick(95), "verdicts": len(times)}


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def figures(summary: dict) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.hist(summary["scores"], bins=20, range=(0, summary["max_score"]), color="tab:blue")
    ax.set_xlabel("score")
    ax.set_ylabel("submissions")
    ax.set_title(f"{summary['count']} submissions")
    histogram = _png(fig)
    rates = summary["pass_rates"]
    fig, ax = plt.subplots(figsize=(7, 0.22 * len(rates) + 0.8))
    values = [100 * p / n if n else 0 for _, _, p, n in rates]
    ax.barh(
        range(len(rates)),
        values,
        color=["tab:red" if v < 50 else "tab:orange" if v < 80 else "tab:green" for v in values],
    )
    ax.set_yticks(range(len(rates)), [check for _, check, _, _ in rates], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of submissions passing")
    return {"histogram": histogram, "pass_rates": _png(fig)}


def render(summary: dict, title: str = "07_optimizers: class report") -> str:
    images = figures(summary)
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(cell)}</td><td>{esc(check)}</td><td>{p}/{n}</td><td>{(100 * p / n if n else 0):.0f}%</td></tr>"
        for cell, check, p, n in summary["pass_rates"]
    )
    messages = "".join(f"<tr><td>{count}</td><td>{esc(message)}</td></tr>" for message, count in summary["messages"])
    people = "".join(f"<tr><td>{esc(s)}</td><td>{esc(why)}</td></tr>" for s, why in summary["attention"])
    service = summary.get("handins") or {"rows": []}
    handins = ""
    if service["rows"]:
        lines = "".join(
            f"<tr><td>{esc(s)}</td><td>{n}</td><td>{'' if t is None else f'{t:.1f} s'}</td></tr>"
            for s, n, t in service["rows"]
        )
        handins = (
            f'<h2 id="handins">Hand-ins through the service</h2><p>{service["verdicts"]} verdicts; time to verdict '
            + ("" if service["p50"] is None else f"p50 {service['p50']:.1f} s, p95 {service['p95']:.1f} s.")
            + "</p>"
            f"<table><tr><th>student</th><th>attempts</th><th>median time to verdict</th></tr>{lines}</table>"
        )
    scores = summary["scores"]
    mean = sum(scores) / len(scores) if scores else 0
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;max-width:980px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:left}}</style></head><body>
<h1>{esc(title)}</h1>
<p>{summary["count"]} submissions; mean score {mean:.1f} of {summary["max_score"]:g}.</p>
<h2 id="scores">Scores</h2><img alt="score histogram" src="data:image/png;base64,{images["histogram"]}">
<h2 id="pass-rates">Pass rate of every graded check, in notebook order</h2>
<img alt="pass rate per check" src="data:image/png;base64,{images["pass_rates"]}">
<table><tr><th>cell</th><th>check</th><th>passed</th><th>rate</th></tr>{rows}</table>
<h2 id="messages">Most common failure messages</h2>
<table><tr><th>times</th><th>message (numbers blanked as #)</th></tr>{messages}</table>
<h2 id="attention">Submissions that need a person ({len(summary["attention"])})</h2>
<table><tr><th>student</th><th>why</th></tr>{people}</table>
{handins}
</body></html>"""


def write_report(course: Course, name: str = "report.html"):
    "Write the class report at the course root; return its path."
    out = course.root / name
    out.write_text(with_csp(render(summarize(collect(course), handins(course)))))
    return out
