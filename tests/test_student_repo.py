"""The student repository holds no solution line, no hidden test and no grader marker, and its
package carries the student's stubs for the optimizers and the solved prerequisites."""

import pytest

from helpers import secret_lines

pytestmark = pytest.mark.slow


def test_no_file_holds_a_solution_or_hidden_test_line(student_repo):
    secret = secret_lines()
    assert len(secret) > 50
    for path in student_repo.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text, f"{path} carries a grader marker"
        found = {line.strip() for line in text.replace("\\n", "\n").replace('\\"', '"').splitlines()} & secret
        assert not found, f"{path} holds solution lines: {sorted(found)[:3]}"


def test_package_has_student_stubs_and_solved_prerequisites(student_repo):
    optimizers = (student_repo / "tinytorch" / "core" / "optimizers.py").read_text()
    assert "raise NotImplementedError()" in optimizers and "YOUR CODE HERE" not in optimizers
    assert "class AdamW(Adam):" in optimizers
    for module in ("tensor", "activations", "layers", "losses", "autograd"):
        assert (student_repo / "tinytorch" / "core" / f"{module}.py").exists()
    assert (student_repo / "binder" / "postBuild").read_text().splitlines()[1] == "set -e"
