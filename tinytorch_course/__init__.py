"Course tooling for tinytorch: nbdev export processing (and, later, grading helpers)."
