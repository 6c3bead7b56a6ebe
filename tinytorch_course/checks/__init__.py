"""The hidden tests: `harness` runs in the grading kernel and reports; `judge` decides, outside it."""
