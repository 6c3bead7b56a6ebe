"""Canvas's gradebook import file round-trips through a reader of Canvas's format: identity columns
copied from the gradebook Canvas exported (`Integration ID` included), one row per roster student in
its order, the Points Possible row, and every student missing from the roster or from the submissions
listed, never dropped. The export's manual-posting row and its test student are not students."""

import csv

import pytest

from tinytorch_course.lms.canvas import canvas_csv, read_canvas, roster_ids

HEADER = [
    "Student",
    "ID",
    "SIS User ID",
    "SIS Login ID",
    "Integration ID",
    "Section",
    "Homework 1 (101)",
    "07 Optimizers (102)",
    "Current Score",
]
EXPORT = [  # what Canvas's Grades > Export gives, as Canvas's GradebookExporter writes it
    HEADER,
    ["", "", "", "", "", "", "", "Manual Posting", ""],  # an assignment with a manual posting policy
    ["    Points Possible", "", "", "", "", "", "10.00", "100.00", "(read only)"],
    ["Lovelace, Ada", "1001", "S1001", "ada", "int-1", "Section A", "9", "", "90"],
    ["Hopper, Grace", "1002", "S1002", "grace", "int-2", "Section A", "8", "", "80"],
    ["Turing, Alan", "1003", "S1003", "alan", "int-3", "Section B", "", "", ""],
    ['=HYPERLINK("http://x","open")', "1004", "S1004", "eve", "int-4", "Section B", "", "", ""],
    ["Student, Test", "9999", "", "3f2a1b0c9d8e", "", "Section A", "", "", ""],
]
ROWS = [
    {"student_id": "ada", "score": 97.5, "manual_grading": "done"},
    {"student_id": "grace", "score": 88.0, "manual_grading": "needs manual grading"},
    {"student_id": "eve", "score": 10.0, "manual_grading": "done"},
    {"student_id": "zoe", "score": 70.0, "manual_grading": "done"},
]


@pytest.fixture
def roster(tmp_path):
    path = tmp_path / "export.csv"
    with open(path, "w", newline="", encoding="utf-8-sig") as f:
        csv.writer(f).writerows(EXPORT)
    return path


def test_the_export_reads_as_canvas_writes_it(roster):
    identity, columns, points, students = read_canvas(roster)
    assert identity == ["Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Section"]
    assert columns == ["Homework 1 (101)", "07 Optimizers (102)", "Current Score"]
    assert points["07 Optimizers (102)"] == "100.00"
    assert [s["SIS Login ID"] for s in students] == ["ada", "grace", "alan", "eve"], (
        "neither the manual-posting row nor the test student is a student"
    )
    assert roster_ids(roster) == {"1001": "ada", "1002": "grace", "1003": "alan", "1004": "eve"}


def test_canvas_file_round_trips(roster, tmp_path):
    out = tmp_path / "grades-canvas.csv"
    result = canvas_csv(ROWS, roster, out, "07 Optimizers (102)")
    identity, columns, points, students = read_canvas(out)
    assert columns == ["07 Optimizers (102)"] and points == {"07 Optimizers (102)": "100"}
    assert [s["SIS Login ID"] for s in students] == ["ada", "grace", "alan", "eve"], "the roster's students, in order"
    exported_identity, _, _, exported = read_canvas(roster)
    assert identity == exported_identity, "every identity column, Integration ID included"
    keep = [c for c in identity if c != "Student"]
    assert [{k: s[k] for k in keep} for s in students] == [{k: s[k] for k in keep} for s in exported]
    assert [s["07 Optimizers (102)"] for s in students] == ["97.50", "88.00", "", "10.00"]
    assert result["no_submission"] == ["alan"] and result["not_on_roster"] == ["zoe"]
    assert result["needs_manual_grading"] == ["grace"]
    assert "\n," not in out.read_text(), "no empty row"


def test_no_cell_starts_a_formula(roster, tmp_path):
    out = tmp_path / "grades-canvas.csv"
    canvas_csv(ROWS, roster, out, "07 Optimizers (102)")
    cells = [c for row in csv.reader(out.open()) for c in row]
    assert '\'=HYPERLINK("http://x","open")' in cells
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]


def test_a_file_that_is_not_canvas_is_refused(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("name,email\nAda,ada@example.org\n")
    with pytest.raises(ValueError, match="no Student, ID"):
        canvas_csv(ROWS, path, tmp_path / "out.csv", "07 Optimizers")
