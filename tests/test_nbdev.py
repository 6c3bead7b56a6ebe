"""nbdev 3 round trip: the committed package is exactly what the notebooks export, and clean is a no-op."""

import filecmp
import shutil

from helpers import ROOT, SOURCE_NB, cell_source, nbgrader_meta, read_nb, run_tool

PACKAGE_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "YOUR CODE HERE")


def copy_project(dest):
    shutil.copy(ROOT / "pyproject.toml", dest)
    shutil.copytree(ROOT / "modules", dest / "modules")
    shutil.copytree(ROOT / "tinytorch", dest / "tinytorch", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def tree_differences(a, b) -> list:
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    diffs = [f"{a.name}/{n}" for n in cmp.left_only + cmp.right_only + cmp.diff_files]
    for sub in cmp.common_dirs:
        diffs += tree_differences(a / sub, b / sub)
    return diffs


def test_export_reproduces_the_committed_package(tmp_path):
    project = copy_project(tmp_path)
    shutil.rmtree(project / "tinytorch" / "core")
    shutil.rmtree(project / "tinytorch" / "data")
    run_tool(project, "nbdev-export")
    assert tree_differences(ROOT / "tinytorch", project / "tinytorch") == [], "run `make export` and commit"


def test_clean_changes_nothing(tmp_path):
    project = copy_project(tmp_path)
    run_tool(project, "nbdev-clean")
    assert tree_differences(ROOT / "modules", project / "modules") == [], "run `make clean-nbs` and commit"


def test_package_has_no_grader_markers():
    for path in (ROOT / "tinytorch").rglob("*.py"):
        text = path.read_text()
        assert not [m for m in PACKAGE_MARKERS if m in text], f"{path} carries nbgrader markers"


def test_source_notebook_keeps_its_grader_metadata():
    cells = read_nb(SOURCE_NB)["cells"]
    graded = [nbgrader_meta(c) for c in cells if nbgrader_meta(c).get("grade")]
    assert sum(m["points"] for m in graded) == 100 and len(graded) >= 12
    solutions = [cell_source(c) for c in cells if nbgrader_meta(c).get("solution") and c["cell_type"] == "code"]
    for name in ("Optimizer", "SGD", "Adam", "AdamW"):
        owners = [
            s
            for s in solutions
            if any(line.startswith(f"class {name}(") or line.startswith(f"class {name}:") for line in s.splitlines())
        ]
        assert len(owners) == 1, f"class {name} should be defined in exactly one solution cell"
    assert all("### BEGIN SOLUTION" in s for s in solutions), "a solution cell without markers is replaced whole"
    hidden = [c for c in cells if "### BEGIN HIDDEN TESTS" in cell_source(c)]
    assert hidden and all(nbgrader_meta(c).get("grade") for c in hidden)


def test_no_source_cell_imports_the_optimizers_package():
    "Otherwise an empty submission would borrow the instructor's solution from the installed package."
    for cell in read_nb(SOURCE_NB)["cells"]:
        assert "tinytorch.core.optimizers" not in cell_source(cell) or cell["cell_type"] == "markdown"
