"""Named edits to a notebook, the way a student changes one: by cell id, with text that must occur once.

Every edit names a cell by its nbgrader id and replaces text that must occur exactly once, so a change
to the source that breaks an example fails loudly instead of silently testing nothing.
"""

from ..student.notebook import cell_source, grade_id


def _cell(nb: dict, cell_id: str) -> dict:
    matches = [c for c in nb["cells"] if grade_id(c) == cell_id]
    if len(matches) != 1:
        raise KeyError(f"no single cell with grade_id {cell_id!r}")
    return matches[0]


def replace(cell_id: str, old: str, new: str):
    "An edit: replace `old` (which must occur exactly once) in cell `cell_id`."

    def apply(nb):
        cell = _cell(nb, cell_id)
        text = cell_source(cell)
        if text.count(old) != 1:
            raise ValueError(f"{cell_id}: expected one occurrence of {old!r}, found {text.count(old)}")
        cell["source"] = text.replace(old, new)

    return apply


def rewrite(cell_id: str, text: str):
    "An edit: the whole cell becomes `text`."

    def apply(nb):
        _cell(nb, cell_id)["source"] = text

    return apply


def append_code(after_id: str, text: str):
    "An edit: a new plain code cell after cell `after_id` (as a student adds scratch cells)."

    def apply(nb):
        index = nb["cells"].index(_cell(nb, after_id))
        nb["cells"].insert(
            index + 1,
            {
                "cell_type": "code",
                "id": f"student-{index}",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": text,
            },
        )

    return apply


def delete(cell_id: str):
    def apply(nb):
        nb["cells"].remove(_cell(nb, cell_id))

    return apply


def to_markdown(cell_id: str):
    def apply(nb):
        cell = _cell(nb, cell_id)
        cell["cell_type"] = "markdown"
        cell.pop("outputs", None)
        cell.pop("execution_count", None)

    return apply


def solution_body(cell_id: str, method_marker: str, body: str):
    "An edit: replace the solution region that follows `method_marker` in cell `cell_id` by `body`."

    def apply(nb):
        cell = _cell(nb, cell_id)
        text = cell_source(cell)
        start = text.index("### BEGIN SOLUTION\n", text.index(method_marker)) + len("### BEGIN SOLUTION\n")
        end = text.index("        ### END SOLUTION", start)
        cell["source"] = text[:start] + body + text[end:]

    return apply


def append_cell(after_id: str, cell_type: str, text: str, metadata: dict | None = None):
    "An edit: a new markdown or raw cell after cell `after_id` (a student's notes)."

    def apply(nb):
        index = nb["cells"].index(_cell(nb, after_id))
        nb["cells"].insert(
            index + 1,
            {"cell_type": cell_type, "id": f"student-{cell_type}-{index}", "metadata": metadata or {}, "source": text},
        )

    return apply
