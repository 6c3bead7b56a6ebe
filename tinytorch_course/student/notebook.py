"""What a notebook cell is to this course: its nbgrader id, whether it only demonstrates, its source.

One definition of each, shared by the grader and by "check my notebook" (so no nbgrader import here).
"""


def nbgrader_meta(cell) -> dict:
    "The cell's nbgrader metadata ({} when it has none)."
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def grade_id(cell) -> str | None:
    "The cell's nbgrader id, or None."
    return nbgrader_meta(cell).get("grade_id")


def is_demo(cell) -> bool:
    """A code cell tagged `demo` that nbgrader does not grade, lock or take as a solution (figures, races,
    timing): grading skips it. nbgrader's own cells are never skipped, whatever their tags."""
    meta = nbgrader_meta(cell)
    return (
        cell.get("cell_type") == "code"
        and "demo" in cell.get("metadata", {}).get("tags", [])
        and not (meta.get("grade") or meta.get("solution") or meta.get("locked"))
    )


def cell_source(cell) -> str:
    "A cell's source as one string (nbformat allows a list of lines too)."
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
