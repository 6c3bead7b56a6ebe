"""The grading kernel's own Python environment: what a student gets on Binder, and nothing of the grader.

    python -m tinytorch_course.grading.kernel_env      # make kernel-env: build it, or say it is current

It is a virtual environment holding exactly `binder/requirements.txt` (the packages a student's Binder
has, ipykernel among them), made from this machine's Python. The sandbox (`sandbox.py`) runs every
kernel with it, mounting this environment, the base Python's interpreter and standard library (its
site-packages hidden), the system, and the stripped prerequisite library, never the grader's
environment. So a submission cannot import nbgrader, SQLAlchemy, Dask or torch, and is graded with the
numpy it was written against.

It lives in `.kernel-env/` beside this repository, or where TINYTORCH_KERNEL_ENV points (a grading
machine or a Dask worker's image builds it once: `make kernel-env`). It is rebuilt when the Binder
files change: a stamp records the hash of what it was built from.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .course import REPO

SOURCES = ("binder/requirements.txt", "binder/runtime.txt")
STAMP = ".tinytorch-kernel-env"


class KernelEnvMissing(RuntimeError):
    "The kernel environment is not built, or is stale."


def location() -> Path:
    return Path(os.environ.get("TINYTORCH_KERNEL_ENV") or REPO / ".kernel-env")


def wanted(repo: Path = REPO) -> str:
    "The stamp an environment built from this repository's Binder files carries."
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (repo / name).read_bytes())
    return digest.hexdigest()


def is_current(path: Path | None = None) -> bool:
    path = path or location()
    stamp = path / STAMP
    return stamp.is_file() and stamp.read_text().strip() == wanted() and (path / "bin" / "python").exists()


def python(path: Path | None = None) -> Path:
    "The environment's interpreter; raises KernelEnvMissing, naming the fix, if it is not built and current."
    path = path or location()
    if not is_current(path):
        raise KernelEnvMissing(
            f"The grading kernel's environment at {path} is missing or older than binder/.\n"
            "Fix: make kernel-env   (it installs binder/requirements.txt, what students have)"
        )
    return path / "bin" / "python"


def base_prefix(path: Path | None = None) -> Path:
    "The prefix of the Python the environment was made from (its `home` in pyvenv.cfg is that prefix's bin/)."
    lines = (path or location()).joinpath("pyvenv.cfg").read_text().splitlines()
    config = {key.strip(): value.strip() for key, _, value in (line.partition("=") for line in lines)}
    return Path(os.path.realpath(config["home"])).parent


def build(path: Path | None = None, quiet: bool = True) -> Path:
    "Build the environment from binder/requirements.txt; the stamp, written last, marks it complete."
    path = path or location()
    if is_current(path):
        return path
    shutil.rmtree(path, ignore_errors=True)
    base = getattr(sys, "_base_executable", sys.executable)  # the interpreter, not the grader's venv
    subprocess.run([base, "-m", "venv", str(path)], check=True)
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", *(["--quiet"] if quiet else [])]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(REPO / "binder" / "requirements.txt")], check=True)
    (path / STAMP).write_text(wanted() + "\n")
    return path


if __name__ == "__main__":
    where = location()
    print(f"kernel environment: {where} is current" if is_current(where) else f"built: {build(where, quiet=False)}")
