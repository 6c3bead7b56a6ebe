"""What students get, as one folder: the nbdev export processor and "check my notebook".

Imports nothing from the rest of `tinytorch_course` and needs nothing Binder lacks (no nbgrader)."""
