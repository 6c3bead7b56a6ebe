"""The grading record of one submission: built here, written by `record`, read by the report and `make grades`.

A `Result` says what became of a submission (`status`), why when it was not graded (`reason`), what
happened while it was graded (`events`, each with a `kind` a reader can count on), whether its kernel
was sandboxed, and every hidden check's verdict. Nothing else in the grader builds one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

# What a grading event can be. Readers (the class report, the grading report cell) go by these, never by wording.
KERNEL_DIED, TIMEOUT, NOT_RUN, OUT_OF_MEMORY = "kernel-died", "timeout", "not-run", "out-of-memory"
RESTORED, SKIPPED_DEMO, LATE, REFUSED = "restored-cell", "skipped-demo", "late", "refused"
CPU_BUDGET, OUTPUT_DROPPED = "cpu-budget", "output-dropped"
BAD_TIMESTAMP = "bad-timestamp"  # timestamp.txt could not be read as a time: ignored, so no late penalty
KINDS = (
    KERNEL_DIED,
    TIMEOUT,
    NOT_RUN,
    OUT_OF_MEMORY,
    RESTORED,
    SKIPPED_DEMO,
    LATE,
    REFUSED,
    CPU_BUDGET,
    OUTPUT_DROPPED,
    BAD_TIMESTAMP,
)

# What became of a submission.
GRADED, MISSING, UNREADABLE, ERROR, OVER_BUDGET = "graded", "missing", "unreadable", "error", "timeout"
NOT_ACCEPTED = "refused"  # not a regular file, too large: never opened, scored 0 with the reason

UNSANDBOXED = "graded WITHOUT a sandbox (--unsandboxed): the submission's code could read and write the course folder"
NO_CGROUPS = "graded with per-process limits only (--no-cgroups): its processes together could use more"


def printable(text: str) -> str:
    "`text` as valid Unicode: the bytes of a file name that are not UTF-8 become visible escapes (\\udcff)."
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class Event:
    "Something that happened while grading, for the student and the instructor: a kind and a sentence."

    kind: str
    message: str

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown event kind: {self.kind!r}")
        object.__setattr__(self, "message", printable(self.message))


@dataclass
class Result:
    "One submission's grading record."

    student: str
    status: str
    reason: str = ""
    events: list[Event] = field(default_factory=list)
    sandboxed: bool = True
    cgroups: bool = True  # its sandbox's processes shared one control group (memory, CPU, processes)
    seconds: float = 0.0  # how long executing and judging it took (0 when it was not executed)
    verdicts: dict = field(default_factory=dict)  # grade id -> {"score": float, "checks": [{check, passed, message}]}
    notebook: str | None = None  # the executed, judged notebook (nbformat JSON); only while it travels to the writer

    def __post_init__(self):
        self.reason = printable(self.reason)  # it may quote a student's file names, written to UTF-8 files

    @classmethod
    def failed(cls, student: str, status: str, reason: str, sandboxed: bool = True, events=()) -> Result:
        "A submission that was not graded: it scores 0, and `reason` says why."
        return cls(student, status, reason, list(events), sandboxed)

    @property
    def graded(self) -> bool:
        return self.status == GRADED

    def kinds(self) -> set:
        return {e.kind for e in self.events}

    def checks(self) -> list:
        "Every hidden check's verdict, in notebook order: {cell, check, passed, message}."
        return [{"cell": cell, **check} for cell, verdict in self.verdicts.items() for check in verdict["checks"]]

    def to_json(self, with_notebook: bool = False) -> dict:
        """The record as stored in grading.json, with `checks` flattened for readers; the notebook only
        `with_notebook` (a worker's result on its way to the writer: grading.json has it stored beside it)."""
        out = dataclasses.asdict(self)
        if not with_notebook:
            out.pop("notebook")
        out["checks"] = self.checks()
        return out

    @classmethod
    def from_json(cls, data: dict) -> Result:
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["events"] = [Event(**e) for e in data.get("events", [])]
        return cls(**data)
