"""nbgrader configuration for the tinytorch course (nbgrader 0.9).

Run nbgrader from this folder (the course root). Assignments live in `modules/`
(`modules/07_optimizers/optimizers.ipynb` is assignment `07_optimizers`).
"""
c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "tinytorch"
c.CourseDirectory.source_directory = "modules"

# Gradebook: sqlite at the course root is the embedded default, fine for one grader.
# When several graders or a JupyterHub share a course, point this at PostgreSQL:
#   c.CourseDirectory.db_url = "postgresql://user:password@host/tinytorch"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"


# A cell that runs longer than this is stopped and graded as failed.
c.Execute.timeout = 60

# Graded cells a student deleted come back during autograding.
c.OverwriteCells.add_missing_cells = True

# What students see in place of a solution.
c.ClearSolutions.code_stub = {
    "python": "# YOUR CODE HERE\nraise NotImplementedError()",
}
