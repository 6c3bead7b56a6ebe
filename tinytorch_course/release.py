"""The student repository: what a course publishes and points Binder at (built by `make release`).

It holds the student version of module 07 (as nbgrader releases it), the solved prerequisite
notebooks, the package exported from those (so `tinytorch/core/optimizers.py` holds only stubs),
`binder/`, a student README and `tinytorch_course/student/` (the export processor, "check my
notebook" and the hand-in client, with the service's address from `$TINYTORCH_SERVICE_URL` in
`student/service.json`; `python -m tinytorch_course.submit` runs the client). It holds no solution,
no hidden test and no grader marker.
"""

import os
import shutil
from pathlib import Path

from .grading.course import ASSIGNMENT, NOTEBOOK, run_script
from .grading.course import REPO as ROOT

LAUNCH_PATH = f"lab/tree/modules/{ASSIGNMENT}/{NOTEBOOK}.ipynb"


def binder_url(repo: str | None = None) -> str:
    "The mybinder.org link that opens module 07 in JupyterLab, for GitHub repository `repo` (owner/name)."
    repo = repo or os.environ.get("TINYTORCH_STUDENT_REPO", "your-course/tinytorch-student")
    return f"https://mybinder.org/v2/gh/{repo}/HEAD?urlpath={LAUNCH_PATH}"


def service_url(url: str | None = None) -> str | None:
    "The hand-in service students reach (`TINYTORCH_SERVICE_URL`, e.g. https://handin.example.edu), or None."
    url = url or os.environ.get("TINYTORCH_SERVICE_URL") or None
    return url.rstrip("/") if url else None


def binder_python() -> str:
    "The Python version Binder builds with, from binder/runtime.txt (`python-3.11` -> `3.11`)."
    return (ROOT / "binder" / "runtime.txt").read_text().strip().removeprefix("python-")


def build_student_repo(course_root: Path, dest: Path) -> Path:
    "Assemble dist/student/ from the course's release/ folder and the solved prerequisites."
    release = course_root / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    if not release.exists():
        raise FileNotFoundError(f"{release} is missing: run nbgrader generate_assignment first")
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "modules").mkdir(parents=True)
    for module in sorted((ROOT / "modules").iterdir()):
        if module.is_dir() and module.name != ASSIGNMENT:
            shutil.copytree(module, dest / "modules" / module.name, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (dest / "modules" / ASSIGNMENT).mkdir()
    shutil.copy(release, dest / "modules" / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    shutil.copytree(ROOT / "binder", dest / "binder")
    tooling = dest / "tinytorch_course"
    tooling.mkdir()
    (tooling / "__init__.py").write_text('"""What students get of the course tooling: see student/."""\n')
    shutil.copytree(
        ROOT / "tinytorch_course" / "student",
        tooling / "student",
        ignore=shutil.ignore_patterns("__pycache__", "*.json"),
    )
    import json

    import nbformat

    from .student.check import MANIFEST, manifest_of

    manifest = manifest_of(nbformat.read(release, as_version=4), f"modules/{ASSIGNMENT}/{NOTEBOOK}.ipynb")
    (tooling / "student" / MANIFEST.name).write_text(json.dumps(manifest, indent=1))
    (tooling / "student" / "service.json").write_text(json.dumps({"url": service_url()}) + "\n")
    (tooling / "submit.py").write_text(
        '"""python -m tinytorch_course.submit: hand in (see student/submit.py)."""\n\n'
        "import sys\n\nfrom .student.submit import main\n\nsys.exit(main())\n"
    )
    (dest / "tinytorch").mkdir()
    shutil.copy(ROOT / "tinytorch" / "__init__.py", dest / "tinytorch" / "__init__.py")
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    readme = (ROOT / "tinytorch_course" / "templates" / "student_README.md").read_text()
    (dest / "README.md").write_text(readme.replace("{binder_url}", binder_url()).replace("{python}", binder_python()))
    (dest / ".gitignore").write_text(".venv/\n__pycache__/\n*.egg-info/\n.ipynb_checkpoints/\n.tinytorch/\nfeedback/\n")
    _export(dest)
    return dest


def _export(dest: Path) -> None:
    "Run nbdev-export inside the student repository: the package comes from the student notebooks."
    run_script(dest, "nbdev-export")


def release(course) -> Path:
    "nbgrader generate_assignment, then the student repository in dist/student/."
    course.tool("nbgrader", "generate_assignment", ASSIGNMENT, "--force")
    course.secret()  # the course secret hidden inputs are drawn from (made once, kept)
    return build_student_repo(course.root, course.root / "dist" / "student")
