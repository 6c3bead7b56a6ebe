"""A course folder: where a submission is read from and written to, for the one graded assignment."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from nbgrader.coursedir import CourseDirectory
from traitlets.config.loader import PyFileConfigLoader

ASSIGNMENT, NOTEBOOK = "07_optimizers", "optimizers"
REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "modules" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"


def tool_env(**extra) -> dict:
    "The environment for this Python's console scripts (nbgrader, nbdev-export, alembic): its bin folder first."
    return dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""), **extra)


def run_script(cwd, *args):
    "Run a console script of this Python environment in `cwd`; raise with its output if it fails."
    proc = subprocess.run(
        [str(Path(sys.executable).parent / args[0]), *args[1:]], cwd=cwd, env=tool_env(), capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


SECRET = ".grading-secret"  # at the course root: git-ignored, never mounted in a sandbox


def course_secret(root) -> bytes:
    "The course's secret (made on first use, e.g. at the first release): hidden inputs are drawn from it."
    import secrets

    path = Path(root) / SECRET
    if not path.exists():
        tmp = path.with_name(f"{SECRET}.{os.getpid()}")
        tmp.write_text(secrets.token_hex(32) + "\n")
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)  # atomic: two workers making it at once end with one secret
        except FileExistsError:
            pass
        tmp.unlink()
    return path.read_text().strip().encode()


class Course:
    "Paths and configuration of a course folder (the folder holding nbgrader_config.py)."

    def __init__(self, root="."):
        self.root = Path(root).resolve()
        self.config = PyFileConfigLoader("nbgrader_config.py", path=str(self.root)).load_config()
        self.config.CourseDirectory.root = str(self.root)
        self.coursedir = CourseDirectory(config=self.config, root=str(self.root))
        self.db_url = self.coursedir.db_url
        self.course_id = self.coursedir.course_id

    def submitted(self, student: str) -> Path:
        return self.root / "submitted" / student / ASSIGNMENT

    def autograded(self, student: str) -> Path:
        return self.root / "autograded" / student / ASSIGNMENT

    def students(self) -> list:
        """Everyone with a submission folder for this assignment, notebook or not. Nothing is followed: a
        link where a folder should be still names a student, whose submission the worker then refuses."""
        base = self.root / "submitted"
        if not base.is_dir():
            return []
        return sorted(entry.name for entry in os.scandir(base)
                      if os.path.lexists(os.path.join(entry.path, ASSIGNMENT)) or entry.is_symlink())  # fmt: skip

    def secret(self) -> bytes:
        return course_secret(self.root)

    def tool(self, *args):
        "Run a console script of this Python environment in the course folder."
        return run_script(self.root, *args)


def points(source=SOURCE) -> dict:
    """{"auto": points the grader computes, "manual": points of written answers an instructor grades}."""
    import nbformat

    totals = {"auto": 0.0, "manual": 0.0}
    for cell in nbformat.read(source, as_version=4).cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            written = cell.cell_type == "markdown" and meta.get("solution")
            totals["manual" if written else "auto"] += float(meta.get("points", 0))
    return totals


def scratch_course(dest) -> Course:
    "A throwaway course folder with this repository's nbgrader config and the module 07 source."
    dest = Path(dest)
    (dest / "modules").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "nbgrader_config.py", dest)
    shutil.copytree(REPO / "modules" / ASSIGNMENT, dest / "modules" / ASSIGNMENT)
    return Course(dest)


def fingerprint(course: Course, student: str) -> str:
    """A hash of what the student submitted, to tell a changed submission from a graded one: every regular
    file's name and bytes, and the name and kind of anything else (never followed, never read). A file
    name need not be UTF-8."""
    import stat

    digest = hashlib.sha256()
    folder = course.submitted(student)
    top = course.root / "submitted" / student
    if os.path.islink(top) or os.path.islink(folder) or not folder.is_dir():
        digest.update(f"not a folder: {os.path.lexists(top)} {os.path.islink(top)} {os.path.islink(folder)}".encode())
        return digest.hexdigest()
    for root, dirs, files in sorted(os.walk(folder)):  # os.walk does not follow links into folders
        dirs.sort()
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(root, d))]):
            path = Path(root) / name
            mode = os.lstat(path).st_mode
            digest.update(os.fsencode(path.relative_to(folder)) + f"\0{stat.S_IFMT(mode)}\0".encode())
            if stat.S_ISREG(mode):
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        digest.update(chunk)
    return digest.hexdigest()
