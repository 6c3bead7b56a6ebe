"""Binder really builds the student repository.

repo2docker's own detection (`repo2docker --no-build`, no Docker needed) must pick the Python that
`binder/runtime.txt` names, and every pinned requirement, with its dependencies, must resolve as
wheels for that Python on Binder's platform (Linux x86_64, Ubuntu 24.04's glibc 2.39): a pin that
needs a newer Python, or has no wheel there, fails the image build at the student's first click.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinytorch_course.release import binder_python

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(5, 40)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
]


def repo2docker_python(repo: Path) -> str:
    out = subprocess.run([str(BIN / "repo2docker"), "--no-build", "--debug", str(repo)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    found = re.search(r"conda environment for python=(\d+\.\d+)", out.stdout + out.stderr)
    assert found, "repo2docker did not say which Python it would build"
    return found.group(1)


def test_repo2docker_builds_the_python_runtime_txt_names(student_repo):
    assert (student_repo / "binder" / "runtime.txt").exists()
    assert repo2docker_python(student_repo) == binder_python() == "3.11"


def test_every_requirement_resolves_as_wheels_for_binders_python(student_repo, tmp_path):
    version = repo2docker_python(student_repo)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--only-binary=:all:",
        "--python-version",
        version,
        "--implementation",
        "cp",
        *platforms,
        "--target",
        str(tmp_path / "t"),
        "--report",
        str(tmp_path / "report.json"),
        "-r",
        str(student_repo / "binder" / "requirements.txt"),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, f"binder/requirements.txt does not resolve for Python {version}:\n{out.stderr[-2000:]}"
    resolved = {
        i["metadata"]["name"].lower(): i["metadata"]["version"]
        for i in json.loads((tmp_path / "report.json").read_text())["install"]
    }
    pins = dict(
        line.split("==")
        for line in (student_repo / "binder" / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert {k.lower(): v for k, v in pins.items()}.items() <= resolved.items()


def test_the_student_readme_names_the_python_version(student_repo):
    readme = (student_repo / "README.md").read_text()
    assert f"Python {binder_python()}" in readme and f"python{binder_python()} -m venv" in readme
