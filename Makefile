# tinytorch course: every target works from a fresh clone.
# By default the targets create .venv with the project installed editable (plus its dev extra);
# VENV=/path/to/env uses an existing environment instead and creates nothing.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The default environment is (re)built when pyproject.toml changes; a given VENV is used as it is.
ifeq ($(VENV),.venv)
STAMP := .venv/.installed
else
STAMP :=
endif

.PHONY: help install export clean-nbs demo notebooks test lab release autograde feedback grades bench

help:
	@echo "make demo    install, export the package, run every notebook, print a summary"
	@echo "make test    the test suite (package, notebooks, nbdev, nbgrader)"
	@echo "make export  regenerate tinytorch/ from modules/ with nbdev"
	@echo "make lab     JupyterLab on the modules"
	@echo "make release    nbgrader generate_assignment + the student repository in dist/student/"
	@echo "make autograde  grade submitted/*/07_optimizers/ in parallel (WORKERS=N, default: cores)"
	@echo "make feedback   feedback/<student>/07_optimizers/optimizers.html"
	@echo "make grades     grades.csv and a grade table"

.venv/.installed: pyproject.toml
	$(PYTHON) -m venv .venv
	.venv/bin/python -m pip install --quiet --upgrade pip
	.venv/bin/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

export: install
	$(BIN)/nbdev-export

clean-nbs: install
	$(BIN)/nbdev-clean

WORKERS ?= 0
GRADING := $(BIN)/python -m tinytorch_course.grading

# The instructor's whole path on bundled example submissions (see tinytorch_course/demo.py).
demo: export
	$(BIN)/python -m tinytorch_course.demo

notebooks: export
	$(BIN)/python -m tinytorch_course.demo --notebooks-only

release: install
	$(GRADING) release

autograde: install
	$(GRADING) autograde --workers $(WORKERS) $(ARGS)

feedback: install
	$(GRADING) feedback

grades: install
	$(GRADING) grades

test: install
	$(BIN)/python -m pytest

# Benchmarks print ratios measured in one run; torch comes from the oracle extra.
bench: install
	$(BIN)/python benchmarks/optimizer_step.py
	$(BIN)/python benchmarks/autograde_parallel.py

lab: install
	$(BIN)/jupyter lab modules
