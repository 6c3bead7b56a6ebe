"""Canvas's gradebook import file round-trips through a reader of Canvas's format: identity columns
copied from the roster Canvas exported, one row per roster student in its order, the Points Possible
row, and every student missing from the roster or from the submissions listed, never dropped."""
import csv

import pytest

from tinytorch_course.lms import IDENTITY, canvas_csv, read_canvas

EXPORT = [  # what Canvas's Grades > Export gives (the BOM, the Points Possible and test-student rows included)
    IDENTITY + ["Homework 1 (101)", "Current Score"],
    ["    Points Possible", "", "", "", "", "10.00", "(read only)"],
    ["Lovelace, Ada", "1001", "S1001", "ada", "Section A", "9", "90"],
    ["Hopper, Grace", "1002", "S1002", "grace", "Section A", "8", "80"],
    ["Turing, Alan", "1003", "S1003", "alan", "Section B", "", ""],
    ["Student, Test", "9999", "", "test_student", "Section A", "", ""],
]
ROWS = [{"student_id": "ada", "score": 97.5, "manual_grading": "done"},
        {"student_id": "grace", "score": 88.0, "manual_grading": "needs manual grading"},
        {"student_id": "zoe", "score": 70.0, "manual_grading": "done"}]


@pytest.fixture
def roster(tmp_path):
    path = tmp_path / "export.csv"
    with open(path, "w", newline="", encoding="utf-8-sig") as f:
        csv.writer(f).writerows(EXPORT)
    return path


def test_canvas_file_round_trips(roster, tmp_path):
    out = tmp_path / "grades-canvas.csv"
    result = canvas_csv(ROWS, roster, out, "07 Optimizers")
    columns, points, students = read_canvas(out)
    assert columns == ["07 Optimizers"] and points == {"07 Optimizers": "100"}
    assert [s["SIS Login ID"] for s in students] == ["ada", "grace", "alan"], "the roster's students, in order"
    _, _, exported = read_canvas(roster)
    assert [{k: s[k] for k in IDENTITY} for s in students] == [{k: s[k] for k in IDENTITY} for s in exported]
    assert [s["07 Optimizers"] for s in students] == ["97.50", "88.00", ""]
    assert result["no_submission"] == ["alan"] and result["not_on_roster"] == ["zoe"]
    assert result["needs_manual_grading"] == ["grace"]


def test_a_file_that_is_not_canvas_is_refused(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("name,email\nAda,ada@example.org\n")
    with pytest.raises(ValueError, match="no Student, ID"):
        canvas_csv(ROWS, path, tmp_path / "out.csv", "07 Optimizers")
