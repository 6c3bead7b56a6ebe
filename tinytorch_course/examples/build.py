"""Example submissions as files: every example, hostile notebook and attack, by name, built from the current source."""

import json
from pathlib import Path

from ..grading.course import ASSIGNMENT, NOTEBOOK, SOURCE
from ..grading.course import REPO as ROOT
from .attacks import ATTACKS, HONEST
from .scripted import SCRIPTED
from .submissions import BUGS, CORRECT, HOSTILE, UNREADABLE


def build(name: str, course_root: Path = ROOT):
    "The bytes of submission `name`'s optimizers.ipynb, or None when it submits no notebook."
    if name in UNREADABLE:
        return UNREADABLE[name]
    if name == "blank":
        return (course_root / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb").read_bytes()
    base, edits = (
        ATTACKS[name] if name in ATTACKS else ("source", {**BUGS, **CORRECT, **HOSTILE, **HONEST, **SCRIPTED}[name])
    )
    nb = json.loads(SOURCE.read_text() if base == "source" else build(base, course_root))
    for edit in edits:
        edit(nb)
    return (json.dumps(nb, indent=1) + "\n").encode()


def write_submission(course_root: Path, student: str, name: str) -> Path:
    "Put submission `name` in submitted/<student>/07_optimizers/ (with a timestamp, as nbgrader's exchange does)."
    folder = Path(course_root) / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    content = build(name, Path(course_root))
    if content is None:
        (folder / "notes.txt").write_text("I could not get the notebook to save, sorry!\n")
    else:
        (folder / f"{NOTEBOOK}.ipynb").write_bytes(content)
    (folder / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC\n")
    return folder
