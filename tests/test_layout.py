"""The house's rooms: no import circle in tinytorch_course/, and no room imports from a room above it.

Rooms, lowest first: `student` (ships to students, imports nothing else here), `checks` (the hidden
tests), `grading` (a submission's path), `results` (what instructors read), `lms` (Canvas in and out), `service`
(the hand-in service), `examples` (test submissions), then the top-level commands (`cli`, `release`, `demo`).
"""

import ast
from pathlib import Path

import pytest

from helpers import ROOT

PACKAGE = ROOT / "tinytorch_course"
RANK = {"student": 0, "checks": 1, "grading": 2, "results": 3, "lms": 4, "service": 5, "examples": 6}
TOP = 7  # cli, release, demo


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set:
    "The tinytorch_course modules `path` imports, relative imports resolved, wherever the import statement is."
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + (node.module.split(".") if node.module else []))
            for alias in node.names:  # `from . import harness` names a module
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.startswith("tinytorch_course.") and name in MODULES}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: imports(path) for name, path in MODULES.items()}


def room(name: str) -> int:
    parts = name.split(".")
    return RANK.get(parts[1], TOP) if len(parts) > 2 else TOP


def test_every_module_belongs_to_a_room():
    loose = [
        n
        for n in MODULES
        if n.count(".") == 1 and n.split(".")[1] not in ("cli", "release", "demo") and n.split(".")[1] not in RANK
    ]
    assert not loose, f"modules outside the rooms: {loose}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_from_a_higher_room(name):
    upward = [t for t in GRAPH[name] if room(t) > room(name)]
    assert not upward, f"{name} (room {room(name)}) imports from a higher room: {upward}"


def test_no_import_circle():
    state, circles = {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == "open":
                circles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert not circles, circles


def test_the_student_room_imports_nothing_else_of_the_course():
    for name in (n for n in MODULES if room(n) == RANK["student"]):
        assert all(t.startswith("tinytorch_course.student") for t in GRAPH[name]), (name, GRAPH[name])


def test_the_detector_finds_what_it_should():
    "The import graph is not empty: the checks above can fail."
    assert "tinytorch_course.checks.harness" in GRAPH["tinytorch_course.checks.judge"]
    assert "tinytorch_course.grading.record" in GRAPH["tinytorch_course.grading.autograde"]


def test_make_help_lists_every_target():
    import re
    import subprocess

    makefile = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split()
    shown = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True).stdout
    listed = set(re.findall(r"^\s+make (\S+)", shown, re.M))
    assert len(phony) > 10 and set(phony) <= listed, f"not in `make help`: {sorted(set(phony) - listed)}"
