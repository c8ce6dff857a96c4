# pags: the two front-door commands are `make book` and `make test` (see README.md).
# Every target creates the virtual environment first if it is missing or out of date.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pags-installed
# One torch thread by default: on a shared 2-core machine two OpenMP threads spin against each other and a
# training run slowed from 8 s to over 60 s in our measurements. Override with OMP_NUM_THREADS=2 on a quiet machine.
export OMP_NUM_THREADS ?= 1
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg

.PHONY: help setup book test test-unit test-cluster test-notebooks test-browser test-paper-profile bench clean

help:
	@echo "make book   - set up .venv if needed, execute every notebook on the embedded data set, build _build/html"
	@echo "make test   - set up .venv if needed, run unit tests and the local Slurm cluster test, build the book, nbval the notebooks, browser-check the pages, run every chapter in the paper profile at tiny size"
	@echo "make bench  - run the benchmarks and write tables under benchmarks/results/"
	@echo "make clean  - remove _build/ and the run store (.pags_store/); keeps .venv"

# The environment: exact pins from requirements-lock.txt, then this package in editable mode.
$(STAMP): requirements-lock.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-lock.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (pags)" >/dev/null
	@touch $(STAMP)

setup: $(STAMP)

# The notebooks' kernels must use the inline matplotlib backend: with the MPLBACKEND=Agg exported above for scripts,
# a figure that is not explicitly displayed would silently be missing from the book.
book: $(STAMP)
	env -u MPLBACKEND bash scripts/build_book.sh

test-unit: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 -m "not cluster" tests

# A single-node Slurm cluster on 127.0.0.1 (scripts/slurm_cluster.sh, installs slurm-wlm and munge as root) runs a
# toy sweep through the slurm executor; skipped with one line where it cannot run, a failure with CI=true.
test-cluster: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m cluster tests/test_cluster.py

test-notebooks: $(STAMP)
	bash scripts/nbval.sh

# First the checker's own test (it must fail a broken tiny site, page and defect named), then the built book.
test-browser: $(STAMP)
	bash scripts/browser_check.sh --self-test
	bash scripts/browser_check.sh

# The paper profile end to end at tiny size (CIFAR-shaped synthetic data, one epoch, a tiny population) on the CPU:
# the one-flag GPU path runs. Outputs and its own run store under _build/paper_smoke/.
test-paper-profile: $(STAMP)
	bash scripts/paper_smoke.sh

# Order matters for time: the book build executes every notebook once and fills the run store (.pags_store/),
# so nbval's second execution reuses the finished training runs instead of training again.
test: test-unit test-cluster book test-notebooks test-browser test-paper-profile

bench: $(STAMP)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf _build .pags_store
