"""nbdev export processor: the package must read as library code.

nbgrader needs delimiter comments around each solution, and its student version puts a
"your code here" comment in front of every stub. Neither belongs in `tinytorch/`, so this processor
drops those lines from every exported cell. Configured in `pyproject.toml` as `export_procs`.
"""

import re

GRADER_LINE = re.compile(r"^[ \t]*(### (BEGIN|END) SOLUTION|# YOUR CODE HERE)[ \t]*$")


def strip_grader_lines(cell):
    "Remove nbgrader marker lines from a code cell's source (an nbdev processor)."
    if cell.cell_type != "code" or not cell.source:
        return
    lines = cell.source.splitlines(keepends=True)
    kept = [line for line in lines if not GRADER_LINE.match(line.rstrip("\n"))]
    if len(kept) != len(lines):
        cell.source = "".join(kept)
