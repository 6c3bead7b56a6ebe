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

.PHONY: help install system-deps kernel-env export clean-nbs demo notebooks test lab release collect autograde feedback grades report bench serve tokens publish

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  make \1\t\2/' | expand -t 20

.venv/.installed: pyproject.toml
	$(PYTHON) -m venv .venv
	.venv/bin/python -m pip install --quiet --upgrade pip
	.venv/bin/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP) ## create .venv (the project editable, with its dev extra)

# What grading and the tests need from Debian, as command:package: bubblewrap (every grading kernel
# runs in bwrap), cgroup-tools (each sandbox in a control group of its own), chromium (the browser
# tests) and postgresql (the PostgreSQL gradebook test).
# Installed with apt-get as root or with passwordless sudo; otherwise make stops and prints the
# command to run. `make demo` needs only bwrap.
APT_NEEDS ?= bwrap:bubblewrap cgexec:cgroup-tools chromium:chromium pg_ctlcluster:postgresql
system-deps: ## apt-get the Debian packages grading and the tests need (bubblewrap, chromium, postgresql)
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

# The grading kernel's own environment: exactly binder/requirements.txt (what students have), never the
# grader's packages; rebuilt when binder/ changes (tinytorch_course/grading/kernel_env.py).
kernel-env: install ## the grading kernel's environment (.kernel-env/, or TINYTORCH_KERNEL_ENV): what students have on Binder
	$(BIN)/python -m tinytorch_course.grading.kernel_env

export: install ## regenerate tinytorch/ from modules/ with nbdev
	$(BIN)/nbdev-export

clean-nbs: install ## nbdev-clean the notebooks
	$(BIN)/nbdev-clean

WORKERS ?= 0
GRADING := $(BIN)/python -m tinytorch_course.cli

# The instructor's whole path on bundled example submissions (see tinytorch_course/demo.py).
demo: export ## install, export, run every notebook, then release -> autograde -> feedback -> grades on examples
	@$(MAKE) --no-print-directory system-deps APT_NEEDS="bwrap:bubblewrap cgexec:cgroup-tools"
	@$(MAKE) --no-print-directory kernel-env
	$(BIN)/python -m tinytorch_course.demo

notebooks: export ## run every notebook top to bottom
	$(BIN)/python -m tinytorch_course.demo --notebooks-only

release: install ## nbgrader generate_assignment + the student repository in dist/student/
	$(GRADING) release

# Without LMS: each student's hand-in of record from the hand-in service (POLICY=latest-before-due|latest|best-before-due).
# LMS=canvas ZIP=submissions.zip ROSTER=canvas-export.csv: Canvas's archive into submitted/ (nbgrader zip_collect).
POLICY ?= latest-before-due
collect: install ## submissions into submitted/: from the hand-in service (POLICY=...), or LMS=canvas ZIP=... ROSTER=...
ifeq ($(LMS),canvas)
	$(GRADING) collect --lms canvas --zip "$(ZIP)" --roster "$(ROSTER)" $(ARGS)
else
	$(GRADING) collect --policy "$(POLICY)" $(ARGS)
endif

# ENGINE=dask SCHEDULER=tcp://host:8786 grades on a Dask cluster; this machine still writes the gradebook.
ENGINE ?= local
autograde: install kernel-env ## grade submitted/*/07_optimizers/ (WORKERS=N; ENGINE=dask SCHEDULER=tcp://host:8786)
ifeq ($(ENGINE),dask)
	$(GRADING) autograde --scheduler $(SCHEDULER) $(ARGS)
else
	$(GRADING) autograde --workers $(WORKERS) $(ARGS)
endif

feedback: install ## feedback/<student>/07_optimizers/optimizers.html
	$(GRADING) feedback

report: install ## report.html: what the class got wrong, who needs a person
	$(GRADING) report

# The hand-in service: sqlite (handin.db) and the local sandboxed pool on 127.0.0.1 by default;
# DB_URL=postgresql+psycopg://... and ENGINE=dask SCHEDULER=tcp://host:8786 carry it past one machine.
HOST ?= 127.0.0.1
PORT ?= 8900
serve: install kernel-env ## the hand-in service (HOST, PORT; DB_URL=postgresql+psycopg://...; ENGINE=dask SCHEDULER=...)
	@$(MAKE) --no-print-directory system-deps APT_NEEDS=bwrap:bubblewrap
ifeq ($(ENGINE),dask)
	$(GRADING) serve --host $(HOST) --port $(PORT) --engine dask --scheduler $(SCHEDULER) $(ARGS)
else
	$(GRADING) serve --host $(HOST) --port $(PORT) --workers $(WORKERS) $(ARGS)
endif

tokens: install ## hand-in tokens, one per roster student (ROSTER=<Canvas export>; ARGS="--replace S", "--instructor NAME")
	$(GRADING) tokens $(if $(ROSTER),--roster "$(ROSTER)") $(ARGS)

publish: install ## publish feedback/ to the hand-in service (URL=https://... TOKEN_FILE=<instructor token file>)
	$(GRADING) publish --url "$(URL)" --token-file "$(TOKEN_FILE)" $(ARGS)

# LMS=canvas ROSTER=canvas-export.csv [CANVAS_COLUMN="07 Optimizers"]: also Canvas's import file.
CANVAS_COLUMN ?= 07_optimizers
grades: install ## grades.csv and a table (LMS=canvas ROSTER=export.csv: Canvas's import file too)
ifeq ($(LMS),canvas)
	$(GRADING) grades --lms canvas --roster "$(ROSTER)" --column "$(CANVAS_COLUMN)" $(ARGS)
else
	$(GRADING) grades $(ARGS)
endif

test: install system-deps kernel-env $(ORACLE) ## lint, then the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# Benchmarks print ratios measured in one run; torch comes from the oracle extra.
bench: install ## the benchmarks (ratios against a reference timed in the same run)
	$(BIN)/python benchmarks/optimizer_step.py
	$(BIN)/python benchmarks/autograde_parallel.py
	$(BIN)/python benchmarks/class_report.py
	$(BIN)/python benchmarks/sandbox_isolation.py
	$(BIN)/python benchmarks/handin_service.py

lab: install ## JupyterLab on the modules
	$(BIN)/jupyter lab modules
