"""nbgrader preprocessors that close the gaps of plain nbgrader 0.9.6 (configured in nbgrader_config.py).

- `RobustExecute`: runs each kernel in the sandbox and skips cells tagged `demo`. A kernel that dies
  (`os._exit`, a segfault, the out-of-memory killer) no longer costs the whole submission. The
  notebook is re-run in a fresh kernel without the cell that killed it; that cell gets an error
  output saying so, which also makes it score 0 if it is graded.
- `Judge`: scores each graded test cell from the judge's verdicts on what the kernel reported
  (`checks/judge.py`), removes those reports, and removes hidden-test lines from every output. The
  verdicts travel in `resources["tinytorch"]["verdicts"]`, never in the notebook a student could edit.
- `DrawHiddenInputs`: before the kernel starts, gives every graded cell's hidden call this submission's
  salt (an HMAC of the submission under the course secret), so the hidden inputs are drawn per
  submission; the judge rebuilds the same inputs from the same salt.
- `SaveJudgedGrades`: nbgrader's SaveAutoGrades, recording the judge's score for test cells instead
  of reading the cell's outputs, so stderr, warnings and printed numbers never change a grade.
- `HideHiddenTests`: feedback shows hidden tests' failure messages but never their source
  (nbgrader issue #917): hidden regions leave the cell source, hidden lines leave every output, and
  traceback frames that show a graded cell's code are dropped.
"""

import copy
import hashlib
import hmac
import html
import json
import re

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor, SaveAutoGrades
from traitlets import Bool, Float, Integer, default

from ..checks.harness import MIME, PROBES
from ..student.notebook import grade_id, is_demo
from .result import RESTORED, Event

# The error names a cell's output carries when grading, not the student's code, stopped it.
KERNEL_DIED, NOT_RUN, CELL_TIMEOUT = "KernelDiedError", "NotRunError", "CellTimeoutError"
CPU_SPENT = "CPUBudgetError"
OUTPUT_DROPPED = "[grader] "  # how the note on dropped output starts


def error_output(ename: str, message: str) -> NotebookNode:
    "An error output as nbformat stores it; a graded cell holding one scores 0."
    return NotebookNode(
        output_type="error", ename=ename, evalue=message, traceback=[f"\x1b[0;31m{ename}\x1b[0m: {message}"]
    )


def cell_label(cell, index: int) -> str:
    "How a report names a cell: its nbgrader id when it has one."
    return f"cell {index} ({grade_id(cell)})" if grade_id(cell) else f"cell {index}"


def verdicts(resources) -> dict:
    "{grade id: {score, checks}} that `Judge` left in `resources` for the writer."
    return resources.setdefault("tinytorch", {}).setdefault("verdicts", {})


_OBSERVE = re.compile(
    r'^([ \t]*_observe\("[\w-]+", globals\(\))\)[ \t]*$', re.M
)  # the hidden call, as the source has it


class DrawHiddenInputs(NbGraderPreprocessor):
    """Give each graded cell's hidden call this submission's salt, so its hidden inputs are drawn for it.

    The salt is an HMAC, under the course secret (`course.course_secret`, never in a sandbox), of the
    student and the notebook as graded. The same bytes always draw the same inputs (a regrade gives the
    same grade, on any machine that has the secret); other bytes draw other inputs, so outputs recorded
    for one set of inputs are worth nothing on the next. The kernel learns the salt only when the
    cell that uses it runs; every line holding it is a hidden-test line, scrubbed from every output."""

    def preprocess(self, nb, resources):
        from nbgrader.coursedir import CourseDirectory

        from .course import course_secret

        info = resources.get("nbgrader", {})
        graded = json.dumps([[c.cell_type, c.source] for c in nb.cells]).encode()
        message = f"{info.get('student', '')}\0".encode() + hashlib.sha256(graded).digest()
        secret = course_secret(CourseDirectory(config=self.config).root)
        salt = hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]
        resources.setdefault("tinytorch", {})["salt"] = salt
        for cell in nb.cells:
            if cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell):
                cell.source = _OBSERVE.sub(rf'\1, "{salt}")', cell.source)
        return nb, resources


class BudgetSpent(Exception):
    "The submission used its CPU-time budget: grading stops running its cells."


class RobustExecute(Execute):
    "nbgrader's Execute, restarting after a dead kernel and re-running without the cell that killed it."

    max_restarts = Integer(3, help="How many dead kernels to survive before giving up on the rest.").tag(config=True)
    sandbox = Bool(True, help="Run each kernel in a bubblewrap sandbox (tinytorch_course.sandbox).").tag(config=True)
    skip_demo = Bool(True, help="Skip cells tagged `demo` (figures, races, timing: they grade nothing).").tag(
        config=True
    )
    cpu_budget = Float(
        300.0, help="CPU seconds a submission may use, all its kernels and their processes together."
    ).tag(config=True)
    max_text_bytes = Integer(2**20, help="Text output a cell may keep; the rest is dropped, and said so.").tag(
        config=True
    )
    max_image_bytes = Integer(4 * 2**20, help="Image output a cell may keep; the rest is dropped, and said so.").tag(
        config=True
    )

    @default("shutdown_kernel")
    def _kill_when_done(self):
        return "immediate"  # a graded kernel holds nothing worth a graceful shutdown

    def create_kernel_manager(self):
        if self.sandbox:
            from . import ready
            from .sandbox import SandboxedKernelManager

            self.kernel_manager_class = SandboxedKernelManager
            self.km = ready.take(self)  # a kernel started while this process waited, if there is one that fits
            if self.km is not None:
                return self.km
        return super().create_kernel_manager()

    def preprocess(self, nb, resources=None, km=None):
        self._demo = {i for i, c in enumerate(nb.cells) if is_demo(c)} if self.skip_demo else set()
        if resources is not None:
            resources["skipped_demo_cells"] = len(self._demo)
        original, self._skip, self._cpu_spent = copy.deepcopy(nb), {}, 0.0
        for _ in range(self.max_restarts + 1):
            work = copy.deepcopy(original)
            self._current, self._kept, self._last_cpu = None, {}, 0.0
            try:
                work, resources = super().preprocess(work, resources, km)
                return self._copy_into(nb, work), resources
            except BudgetSpent:
                message = (
                    f"Not run: this submission used its CPU-time budget of {self.cpu_budget:g} s "
                    "(its kernel and every process it started, together)."
                )
                for index, cell in enumerate(work.cells):
                    if cell.cell_type == "code" and index > self._current and index not in self._demo:
                        cell.outputs = [error_output(CPU_SPENT, message)]
                return self._copy_into(nb, work), resources
            except DeadKernelError:
                index = self._current
                if index is None:  # died before any cell: the grading environment, not the student
                    raise
                self._cpu_spent += self._last_cpu
                self._skip[index] = (
                    KERNEL_DIED,
                    "The kernel died while running this cell (os._exit, a crash or "
                    "running out of memory). The notebook was run again without it.",
                )
                self.log.warning("Kernel died in %s; re-running without it", cell_label(work.cells[index], index))
        for index, cell in enumerate(work.cells):
            if cell.cell_type == "code" and index >= self._current and index not in self._skip:
                self._skip[index] = (NOT_RUN, "Not run: the kernel kept dying, so grading stopped before this cell.")
        for index, (ename, message) in self._skip.items():
            work.cells[index].outputs = [error_output(ename, message)]
        return self._copy_into(nb, work), resources

    def preprocess_cell(self, cell, resources, index):
        self._current = index
        if index in self._demo:
            cell.outputs, cell.execution_count = [], None
            return cell, resources
        if index in self._skip:
            cell.outputs = [error_output(*self._skip[index])]
            return cell, resources
        if cell.cell_type != "code" or not cell.source.strip():  # nbclient sends nothing to the kernel
            return super().preprocess_cell(cell, resources, index)
        if hasattr(self.km, "lock"):  # sandboxed: the kernel is up, its socket folder can close
            self.km.lock()
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except KeyError as exc:  # a reply without the fields a client reads (a kernel patched by the submission)
            cell.outputs.append(error_output("MalformedReplyError", f"The kernel's reply to this cell was malformed "
                                             f"(no {exc}): the cell counts as failed."))  # fmt: skip
        except CellTimeoutError:  # the kernel went silent (starved by its own processes): this cell fails
            cell.outputs.append(error_output(CELL_TIMEOUT, "The kernel stopped answering while running this cell "
                                             "(processes it started were stopped)."))  # fmt: skip
        finally:
            if hasattr(self.km, "reap") and self.km.reap():
                self.log.warning("Killed processes left running by cell %d", index)
            self._last_cpu = self.km.cpu_seconds() if hasattr(self.km, "cpu_seconds") else 0.0
        cell = self._note_dropped(cell, index)
        if self._cpu_spent + self._last_cpu > self.cpu_budget:
            spent = f"This submission used its CPU-time budget of {self.cpu_budget:g} s here; later cells were not run."
            cell.outputs.append(error_output(CPU_SPENT, spent))
            raise BudgetSpent()
        return cell, resources

    async def _async_handle_timeout(self, timeout, cell=None):
        "Before interrupting a cell that overran, stop the processes it started (they starve the kernel of CPU)."
        if hasattr(self.km, "reap"):
            self.km.reap()
        return await super()._async_handle_timeout(timeout, cell)

    def output(self, outs, msg, display_id, cell_index):
        """Keep at most `max_text_bytes` of text and `max_image_bytes` of images per cell; count the rest.
        The judge's observations are never dropped (their size is bounded by the judge itself)."""
        content = msg.get("content", {})
        data = content.get("data", {})
        if msg.get("msg_type") != "error" and MIME not in data:
            kind = "image" if any(key.startswith("image/") for key in data) else "text"
            size = len(content.get("text", "")) + sum(len(v) if isinstance(v, str) else len(json.dumps(v))
                                                      for v in data.values())  # fmt: skip
            kept = self._kept.setdefault(cell_index, {"text": 0, "image": 0, "dropped": 0})
            limit = self.max_image_bytes if kind == "image" else self.max_text_bytes
            if kept[kind] + size > limit:
                kept["dropped"] += size
                return None
            kept[kind] += size
        elif msg.get("msg_type") == "error":
            content["evalue"] = str(content.get("evalue", ""))[:10_000]
            content["traceback"] = [str(t)[:10_000] for t in content.get("traceback", [])[:200]]
        return super().output(outs, msg, display_id, cell_index)

    def _note_dropped(self, cell, index):
        dropped = self._kept.get(index, {}).get("dropped", 0)
        if dropped:
            cell.outputs.append(
                NotebookNode(
                    output_type="stream",
                    name="stdout",
                    text=(
                        f"{OUTPUT_DROPPED}{dropped / 2**20:.1f} MiB more output of this cell was dropped: a cell "
                        f"keeps at most {self.max_text_bytes / 2**20:g} MiB of text and "
                        f"{self.max_image_bytes / 2**20:g} MiB of images.\n"
                    ),
                )
            )
        return cell

    @staticmethod
    def _copy_into(nb, work):
        "Callers hold `nb`; give it the executed cells."
        nb.cells = work.cells
        nb.metadata = work.metadata
        return nb


_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[ \t]*\n?", re.S | re.M)
_CELL_FRAME = re.compile(r"Cell In\s*\[(\d+)\]")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def hidden_lines(nb) -> set:
    "Every line of every hidden region of the notebook's graded cells (markers included)."
    lines = set()
    for cell in nb.cells:
        if cell.cell_type == "code" and utils.is_grade(cell):
            for region in _HIDDEN.findall(cell.source):
                lines |= {line.strip() for line in region.splitlines() if len(line.strip()) >= 8}
    return lines


def _clean_text(text: str, secret: set) -> str:
    "`text` without the lines that show any of `secret` (compared without colour codes or HTML escapes)."
    if not secret or not isinstance(text, str):
        return text
    kept = [
        line
        for line in text.splitlines(keepends=True)
        if not any(s in html.unescape(_ANSI.sub("", line)) for s in secret)
    ]
    return "".join(kept)


def scrub_outputs(cell, secret: set) -> None:
    "Remove every line of a hidden region from every output of `cell`, whatever printed it."
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            output.text = _clean_text(output.text, secret)
        elif output.get("output_type") == "error":
            output.evalue = _clean_text(output.get("evalue", ""), secret)
            output.traceback = [t for t in (_clean_text(t, secret) for t in output.get("traceback", [])) if t]
        for mime, value in list(output.get("data", {}).items()):
            if isinstance(value, str):
                output.data[mime] = _clean_text(value, secret)
            elif any(s in json.dumps(value) for s in secret):
                del output.data[mime]


class Judge(NbGraderPreprocessor):
    """Score graded test cells from the judge's verdicts (outside the kernel); remove the kernel's reports.

    A test cell scores 0 if its visible part failed (an error output), else its points times the share
    of its hidden checks that passed. The verdicts go to `resources` (see `verdicts`), which
    `SaveJudgedGrades` records: nothing in the notebook, which the submission wrote, is read back.
    """

    def preprocess(self, nb, resources):
        from ..checks.judge import judge_cell

        secret = hidden_lines(nb)
        judged = verdicts(resources)
        judged.clear()
        salt = resources.get("tinytorch", {}).get("salt")  # this submission's inputs (DrawHiddenInputs)
        judge = lambda cell_id, observations: judge_cell(cell_id, observations, salt)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            reports = [
                o.data[MIME] for o in cell.outputs if MIME in o.get("data", {}) and isinstance(o.data[MIME], dict)
            ]
            cell.outputs = [o for o in cell.outputs if MIME not in o.get("data", {})]
            scrub_outputs(cell, secret)
            if utils.is_grade(cell) and not utils.is_solution(cell):
                mine = [r for r in reports if r.get("cell") == grade_id(cell)]
                judged[grade_id(cell)] = self._score(cell, mine, judge)
        return nb, resources

    @staticmethod
    def _score(cell, reports, judge_cell) -> dict:
        points = float(cell.metadata.nbgrader.get("points", 0))
        failed = any(o.get("output_type") == "error" for o in cell.outputs)
        verdicts = [] if failed else judge_cell(grade_id(cell), reports)
        passed = sum(v["passed"] for v in verdicts)
        score = points * passed / len(verdicts) if verdicts and not failed else 0.0  # no judged check, no points
        if failed:  # for the class report: every check of the cell failed, with the visible error as the reason
            error = next(o for o in cell.outputs if o.get("output_type") == "error")
            reason = (
                f"the visible test failed first: {error.get('ename', 'Error')}: {str(error.get('evalue', ''))[:200]}"
            )
            checks = [
                {"check": spec["check"], "passed": False, "message": reason} for spec in PROBES.get(grade_id(cell), [])
            ]
        else:
            checks = [{k: v[k] for k in ("check", "passed", "message")} for v in verdicts]
        verdict = {"score": score, "checks": checks}
        if failed:
            lines = [
                f"This cell scores 0 of {points:g}: it stopped with the error above, "
                "so its hidden checks did not count."
            ]
        elif verdicts:
            lines = [f"Hidden checks: {passed} of {len(verdicts)} passed ({score:.3g} of {points:g} points)."]
            lines += [f"  passed: {v['check']}" if v["passed"] else f"  FAILED: {v['message']}" for v in verdicts]
        else:
            return verdict
        cell.outputs.append(NotebookNode(output_type="stream", name="stdout", text="\n".join(lines) + "\n"))
        return verdict


class SaveJudgedGrades(SaveAutoGrades):
    "nbgrader's SaveAutoGrades, taking a test cell's score from the judge, never from its outputs."

    def _add_score(self, cell, resources):
        if cell.cell_type != "code" or not utils.is_grade(cell) or utils.is_solution(cell):
            return super()._add_score(cell, resources)
        grade = self.gradebook.find_grade(grade_id(cell), self.notebook_id, self.assignment_id, self.student_id)
        points = float(cell.metadata.nbgrader.get("points", 0))
        judged = verdicts(resources).get(grade_id(cell), {}).get("score", 0.0)  # not judged: no points
        grade.auto_score = min(max(float(judged), 0.0), points)
        grade.needs_manual_grade = grade.manual_score is not None
        self.gradebook.db.commit()


class HideHiddenTests(NbGraderPreprocessor):
    "For feedback: remove hidden tests from graded cells' source, from every output and from tracebacks."

    def preprocess(self, nb, resources):
        secret = hidden_lines(nb)
        locked = {
            c.get("execution_count")
            for c in nb.cells
            if c.cell_type == "code" and utils.is_grade(c) and c.get("execution_count")
        }
        for cell in nb.cells:
            if cell.cell_type == "code":
                scrub_outputs(cell, secret)
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
        present = {grade_id(c) for c in nb.cells} - {None}
        order = [c for c in source.cells if grade_id(c)]
        for position, cell in enumerate(order):
            meta = cell.metadata.nbgrader
            if grade_id(cell) in present or meta.get("solution") or not (meta.get("locked") or meta.get("grade")):
                continue
            restored = copy.deepcopy(cell)
            if restored.cell_type == "code":
                restored.outputs, restored.execution_count = [], None
            nb.cells.insert(self._insert_at(nb, order, position), restored)
            present.add(grade_id(cell))
            events.append(
                Event(RESTORED, f"Cell {grade_id(cell)} was missing from the submission and has been put back.")
            )
        return nb, resources

    @staticmethod
    def _insert_at(nb, order, position) -> int:
        "Just after the nearest earlier source cell the submission has, else before the nearest later one."
        index_of = {grade_id(c): i for i, c in enumerate(nb.cells) if grade_id(c)}
        for earlier in reversed(order[:position]):
            if grade_id(earlier) in index_of:
                return index_of[grade_id(earlier)] + 1
        for later in order[position + 1 :]:
            if grade_id(later) in index_of:
                return index_of[grade_id(later)]
        return len(nb.cells)
