"""nbgrader preprocessors that close the gaps of plain nbgrader 0.9.6 (configured in nbgrader_config.py).

- `RobustExecute`: a kernel that dies (`os._exit`, a segfault, the out-of-memory killer) no longer
  costs the whole submission. The notebook is re-run in a fresh kernel without the cell that killed
  it; that cell gets an error output saying so, which also makes it score 0 if it is graded.
- `HideHiddenTests`: feedback shows hidden tests' failure messages but never their source
  (nbgrader issue #917): hidden regions leave the cell source, and traceback frames that show a
  graded cell's code are dropped.
"""
import copy
import re

from nbclient.exceptions import DeadKernelError
from nbformat.notebooknode import NotebookNode
from traitlets import Integer

from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor

KERNEL_DIED = "KernelDiedError"
NOT_RUN = "NotRunError"


def error_output(ename: str, message: str) -> NotebookNode:
    "An error output as nbformat stores it; a graded cell holding one scores 0."
    return NotebookNode(output_type="error", ename=ename, evalue=message,
                        traceback=[f"\x1b[0;31m{ename}\x1b[0m: {message}"])


def cell_label(cell, index: int) -> str:
    "How a report names a cell: its nbgrader id when it has one."
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    return f"cell {index} ({grade_id})" if grade_id else f"cell {index}"


class RobustExecute(Execute):
    "nbgrader's Execute, restarting after a dead kernel and re-running without the cell that killed it."

    max_restarts = Integer(3, help="How many dead kernels to survive before giving up on the rest.").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        original, self._skip = copy.deepcopy(nb), {}
        for _ in range(self.max_restarts + 1):
            work = copy.deepcopy(original)
            self._current = None
            try:
                work, resources = super().preprocess(work, resources, km)
                return self._copy_into(nb, work), resources
            except DeadKernelError:
                index = self._current
                if index is None:  # died before any cell: the grading environment, not the student
                    raise
                self._skip[index] = ("The kernel died while running this cell (os._exit, a crash or running out "
                                     "of memory). The notebook was run again without it.")
                self.log.warning("Kernel died in %s; re-running without it", cell_label(work.cells[index], index))
        for index, cell in enumerate(work.cells):
            if cell.cell_type == "code" and index >= self._current and index not in self._skip:
                self._skip[index] = "Not run: the kernel kept dying, so grading stopped before this cell."
        for index, message in self._skip.items():
            work.cells[index].outputs = [error_output(KERNEL_DIED if "died" in message else NOT_RUN, message)]
        return self._copy_into(nb, work), resources

    def preprocess_cell(self, cell, resources, index):
        self._current = index
        if index in self._skip:
            cell.outputs = [error_output(KERNEL_DIED, self._skip[index])]
            return cell, resources
        return super().preprocess_cell(cell, resources, index)

    @staticmethod
    def _copy_into(nb, work):
        "Callers hold `nb`; give it the executed cells."
        nb.cells = work.cells
        nb.metadata = work.metadata
        return nb


_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[ \t]*\n?", re.S | re.M)
_CELL_FRAME = re.compile(r"Cell In\s*\[(\d+)\]")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class HideHiddenTests(NbGraderPreprocessor):
    "For feedback: remove hidden tests from graded cells' source and from tracebacks; keep their messages."

    def preprocess(self, nb, resources):
        locked = {c.get("execution_count") for c in nb.cells
                  if c.cell_type == "code" and utils.is_grade(c) and c.get("execution_count")}
        for cell in nb.cells:
            if cell.cell_type != "code" or not utils.is_grade(cell):
                continue
            cell.source = _HIDDEN.sub("", cell.source)
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output.traceback = self._public_frames(output, locked)
        return nb, resources

    @staticmethod
    def _public_frames(output, locked: set) -> list:
        "Traceback entries that do not show the source of a graded cell, plus the error line itself."
        kept = []
        for entry in output.get("traceback", [])[:-1]:
            plain = _ANSI.sub("", entry)
            match = _CELL_FRAME.search(plain)
            if match and int(match.group(1)) in locked:
                continue
            if match or plain.strip().startswith("File "):
                kept.append(entry)
        return kept + [f"\x1b[0;31m{output.get('ename', 'Error')}\x1b[0m: {output.get('evalue', '')}"]


def _grade_id(cell):
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


class RestoreMissingCells(NbGraderPreprocessor):
    """Put back read-only and graded cells a student deleted, where they stood in the source.

    nbgrader's own `add_missing_cells` only re-inserts a graded cell after another graded or solution
    cell and raises KeyError when the cell before it is read-only. Solution cells are never restored:
    that would grade the instructor's code.
    """

    def preprocess(self, nb, resources):
        from pathlib import Path

        import nbformat
        from nbgrader.coursedir import CourseDirectory

        info = resources["nbgrader"]
        coursedir = CourseDirectory(config=self.config)
        folder = coursedir.format_path(coursedir.source_directory, ".", info["assignment"])
        source = nbformat.read(Path(folder) / f"{info['notebook']}.ipynb", as_version=4)
        events = resources.setdefault("grading_events", [])
        present = {_grade_id(c) for c in nb.cells} - {None}
        order = [c for c in source.cells if _grade_id(c)]
        for position, cell in enumerate(order):
            meta = cell.metadata.nbgrader
            if _grade_id(cell) in present or meta.get("solution") or not (meta.get("locked") or meta.get("grade")):
                continue
            restored = copy.deepcopy(cell)
            if restored.cell_type == "code":
                restored.outputs, restored.execution_count = [], None
            nb.cells.insert(self._insert_at(nb, order, position), restored)
            present.add(_grade_id(cell))
            events.append(f"Cell {_grade_id(cell)} was missing from the submission and has been put back.")
        return nb, resources

    @staticmethod
    def _insert_at(nb, order, position) -> int:
        "Just after the nearest earlier source cell the submission has, else before the nearest later one."
        index_of = {_grade_id(c): i for i, c in enumerate(nb.cells) if _grade_id(c)}
        for earlier in reversed(order[:position]):
            if _grade_id(earlier) in index_of:
                return index_of[_grade_id(earlier)] + 1
        for later in order[position + 1:]:
            if _grade_id(later) in index_of:
                return index_of[_grade_id(later)]
        return len(nb.cells)
