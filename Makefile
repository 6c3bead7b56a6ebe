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

.PHONY: help install export clean-nbs demo test lab

help:
	@echo "make demo    install, export the package, run every notebook, print a summary"
	@echo "make test    the test suite (package, notebooks, nbdev, nbgrader)"
	@echo "make export  regenerate tinytorch/ from modules/ with nbdev"
	@echo "make lab     JupyterLab on the modules"

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

demo: export
	$(BIN)/python -m tinytorch_course.demo

test: install
	$(BIN)/python -m pytest

lab: install
	$(BIN)/jupyter lab modules
