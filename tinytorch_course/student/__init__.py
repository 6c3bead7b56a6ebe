"""What students get, as one folder: the nbdev export processor, "check my notebook" and the hand-in client.

Imports nothing from the rest of `tinytorch_course` and needs nothing Binder lacks (no nbgrader)."""
