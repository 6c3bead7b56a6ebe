"""Example submissions built from the source notebook by named edits: correct styles, bugs, hostile
notebooks and attacks on the grader. Test data for tests/, benchmarks/ and `make demo`; never shipped."""
