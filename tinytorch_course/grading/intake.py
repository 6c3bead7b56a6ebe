"""What a student controls, read defensively before the gradebook's writer sees it: the submission
folder's name (their student id) and what `timestamp.txt` says (the files themselves: `worker.refusal`).

None of it can stop a batch or cost another student their grade: each problem becomes that student's
reason (in `grades.csv`, their grading record and the report), and the batch goes on.

- **The folder name** becomes the student id that nbgrader stores and formgrader shows, and
  formgrader puts it in its pages unescaped (inside an attribute, a JavaScript string, the page
  itself). An id holding `<`, `>`, `"`, a backslash or an invisible character would be markup there,
  and one longer than nbgrader's column (128) does not fit a PostgreSQL gradebook. Such a folder is
  not graded and never reaches the gradebook: `grades.csv` lists it with the reason. Real ids
  (user names, e-mail addresses, LMS logins) never hold these. An id that starts a spreadsheet
  formula (`=`, `@`, ...) is graded: only spreadsheets read it as one, and `grades.csv` quotes it.
- **`timestamp.txt`** is parsed as nbgrader parses it (`parse_utc`), but only from a small regular
  file, and any failure (not a time, a number too big for a date, a year past 9999 once in UTC, not
  UTF-8, empty) means *no timestamp*: it is ignored, so no late penalty applies, and an event says so
  (the class report lists it for a person to check when the work came in).
"""

import os
import stat
import unicodedata
from datetime import datetime
from pathlib import Path

from .result import ERROR, Result

MAX_ID = 128  # nbgrader's student.id column is String(128)
MARKUP = set('<>"\\')  # what formgrader's pages would read as markup or a string's end
STAMP_BYTES = 200  # nbgrader writes 30; anything longer is not a time


def student_id_problem(student: str) -> str | None:
    "Why folder name `student` cannot be a student id, or None when it can."
    if len(student) > MAX_ID:
        return f"it is {len(student)} characters long; nbgrader's gradebook holds at most {MAX_ID}"
    bad = sorted({c for c in student if c in MARKUP or unicodedata.category(c)[0] in "CZ" and c != " "})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        return f"it holds {shown}, which formgrader's pages would read as markup"
    return None


def name_refusal(student: str) -> Result | None:
    "A Result that says why folder `student` is not graded, or None when its name can be a student id."
    problem = student_id_problem(student)
    if problem is None:
        return None
    return Result.failed(
        student,
        ERROR,
        f"Not graded: the folder name cannot be a student id ({problem}). "
        "Rename the folder to the student's id and run make autograde again.",
    )


def read_timestamp(folder: Path) -> tuple[datetime | None, str | None]:
    "(when the submission was handed in, in UTC, or None; why timestamp.txt was ignored, or None)."
    from nbgrader.utils import parse_utc

    path = Path(folder) / "timestamp.txt"
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"timestamp.txt could not be read ({exc.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return None, "timestamp.txt is not a regular file"
    if info.st_size > STAMP_BYTES:
        return None, f"timestamp.txt holds {info.st_size} bytes, not a time"
    text = ""
    try:
        text = path.read_bytes().decode("utf-8").strip()
        if not text:
            return None, "timestamp.txt is empty"
        when = parse_utc(text)
        if not isinstance(when, datetime):
            raise ValueError(text)
        return when, None
    except Exception:  # ValueError, OverflowError, UnicodeDecodeError, whatever dateutil raises
        return None, f"timestamp.txt holds {text[:40]!r}, which is not a time"
