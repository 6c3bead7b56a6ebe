"""nbgrader configuration for the tinytorch course (nbgrader 0.9).

Run nbgrader (or `make release/autograde/feedback/grades`) from this folder, the course root.
Assignments live in `modules/`: `modules/07_optimizers/optimizers.ipynb` is assignment `07_optimizers`.
"""

from tinytorch_course.grading.pipeline import EXECUTE, FEEDBACK, FEEDBACK_PAGE, RECORD, SANITIZE

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "tinytorch"
c.CourseDirectory.source_directory = "modules"

# The gradebook defaults to sqlite at <course root>/gradebook.db, fine for one grader.
# When several graders or a JupyterHub share the course, point it at PostgreSQL:
#   c.CourseDirectory.db_url = "postgresql://user:password@host/tinytorch"

# A cell that runs longer than this is interrupted and graded as failed.
c.Execute.timeout = 60

# Graded cells a student deleted come back during autograding.
c.OverwriteCells.add_missing_cells = True

# What students see in place of a solution.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# Autograding restores deleted read-only cells (RestoreMissingCells), runs each kernel in a bubblewrap
# sandbox and survives dead kernels (RobustExecute), scores test cells outside the kernel (Judge,
# SaveJudgedGrades), feedback never shows hidden-test source (HideHiddenTests), and no student text runs
# in formgrader or a feedback page (MakeInert, and a Content-Security-Policy on the page), also when nbgrader
# is run directly. See tinytorch_course/grading/pipeline.py. Without bwrap: c.RobustExecute.sandbox = False (unsafe).
c.Autograde.sanitize_preprocessors = SANITIZE
c.Autograde.autograde_preprocessors = EXECUTE + RECORD
c.GenerateFeedback.preprocessors = FEEDBACK
c.GenerateFeedback.exporter_class = FEEDBACK_PAGE
