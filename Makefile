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

.PHONY: help install system-deps export clean-nbs demo notebooks test lab release autograde feedback grades report bench

help:
	@echo "make demo    install, export the package, run every notebook, print a summary"
	@echo "make test    the test suite (package, notebooks, nbdev, nbgrader)"
	@echo "make export  regenerate tinytorch/ from modules/ with nbdev"
	@echo "make lab     JupyterLab on the modules"
	@echo "make release    nbgrader generate_assignment + the student repository in dist/student/"
	@echo "make autograde  grade submitted/*/07_optimizers/ in parallel (WORKERS=N, default: cores)"
	@echo "make feedback   feedback/<student>/07_optimizers/optimizers.html"
	@echo "make grades     grades.csv and a grade table (LMS=canvas ROSTER=export.csv: Canvas's import file too)"
	@echo "make report     report.html: what the class got wrong, who needs a person"

.venv/.installed: pyproject.toml
	$(PYTHON) -m venv .venv
	.venv/bin/python -m pip install --quiet --upgrade pip
	.venv/bin/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

# What grading and the tests need from Debian, as command:package: bubblewrap (every grading kernel
# runs in bwrap), chromium (the JupyterLab test) and postgresql (the PostgreSQL gradebook test).
# Installed with apt-get as root or with passwordless sudo; otherwise make stops and prints the
# command to run. `make demo` needs only bwrap.
APT_NEEDS ?= bwrap:bubblewrap chromium:chromium pg_ctlcluster:postgresql
system-deps:
	@missing=""; \
	for need in $(APT_NEEDS); do command -v $${need%%:*} >/dev/null || missing="$$missing $${need#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo"; \
	  else echo "make needs Debian packages:$$missing. Run: sudo apt-get update && sudo apt-get install -y$$missing" >&2; exit 1; fi; \
	  echo "installing$$missing with apt-get"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null; \
	fi

# The tests also compare with torch.optim: the `oracle` extra (torch==2.13.0).
ifeq ($(VENV),.venv)
ORACLE := .venv/.oracle
else
ORACLE :=
endif
.venv/.oracle: .venv/.installed
	.venv/bin/python -m pip install --quiet -e '.[dev,oracle]'
	touch $@

export: install
	$(BIN)/nbdev-export

clean-nbs: install
	$(BIN)/nbdev-clean

WORKERS ?= 0
GRADING := $(BIN)/python -m tinytorch_course.grading

# The instructor's whole path on bundled example submissions (see tinytorch_course/demo.py).
demo: export
	@$(MAKE) --no-print-directory system-deps APT_NEEDS=bwrap:bubblewrap
	$(BIN)/python -m tinytorch_course.demo

notebooks: export
	$(BIN)/python -m tinytorch_course.demo --notebooks-only

release: install
	$(GRADING) release

# ENGINE=dask SCHEDULER=tcp://host:8786 grades on a Dask cluster; this machine still writes the gradebook.
ENGINE ?= local
autograde: install
ifeq ($(ENGINE),dask)
	$(GRADING) autograde --scheduler $(SCHEDULER) $(ARGS)
else
	$(GRADING) autograde --workers $(WORKERS) $(ARGS)
endif

feedback: install
	$(GRADING) feedback

report: install
	$(BIN)/python -m tinytorch_course.report

# LMS=canvas ROSTER=canvas-export.csv [CANVAS_COLUMN="07 Optimizers"]: also Canvas's import file.
CANVAS_COLUMN ?= 07_optimizers
grades: install
ifeq ($(LMS),canvas)
	$(GRADING) grades --lms canvas --roster "$(ROSTER)" --column "$(CANVAS_COLUMN)" $(ARGS)
else
	$(GRADING) grades $(ARGS)
endif

test: install system-deps $(ORACLE)
	$(BIN)/python -m pytest

# Benchmarks print ratios measured in one run; torch comes from the oracle extra.
bench: install
	$(BIN)/python benchmarks/optimizer_step.py
	$(BIN)/python benchmarks/autograde_parallel.py
	$(BIN)/python benchmarks/class_report.py

lab: install
	$(BIN)/jupyter lab modules
