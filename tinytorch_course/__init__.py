"""Course tooling for tinytorch module 07, in rooms that follow a submission's path.

- `student/`  what ships to students (the export processor, "check my notebook", the hand-in client);
              imports nothing else here
- `checks/`   the hidden tests: `harness` runs in the grading kernel, `judge` decides outside it
- `grading/`  the course folder, nbgrader's pipeline, the sandbox, one submission's execution, the
              gradebook's single writer, and the local and Dask pools that feed it
- `results/`  what instructors read after grading: the class report, the LMS import file
- `lms/`      Canvas in and out: its submissions archive, its gradebook import file
- `service/`  the hand-in service: students hand in from the notebook and see the verdict in seconds
- `examples/` example and attack submissions built from the source notebook (test data, not the grader)
- `cli.py`, `release.py`, `demo.py`: the command line, the student repository, `make demo`

A room imports only from rooms listed above it (tests/test_layout.py).
"""
