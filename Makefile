# `make figures` and `make test` both bootstrap .venv from pyproject.toml when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
JOBS ?= 2

.PHONY: figures test test-fast lint bench clean-venv

$(VENV)/.base: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(PY) -m pip install -q -e ".[test]"
	touch $@

$(VENV)/.docs: $(VENV)/.base
	$(PY) -m pip install -q -e ".[docs]"
	touch $@

$(VENV)/.bench: $(VENV)/.base
	$(PY) -m pip install -q -e ".[bench]"
	touch $@

figures: $(VENV)/.base
	$(VENV)/bin/scsc figures --out figures

lint: $(VENV)/.test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# The docs site must build without a warning (broken links, anchors, docstring parameters);
# into a temporary folder, never site/ in the tree. Seconds: griffe reads the source.
.PHONY: docs
docs: $(VENV)/.docs
	site=$$(mktemp -d) && trap 'rm -rf "$$site"' EXIT && \
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir "$$site"

# One pytest process per area, the last one taking everything else (so no new test file is
# missed): a full single-process run (~2,000 XLA compilations, 17+ minutes) once died of a
# segfault inside XLA's CPU compiler (backend_compile_and_load) in a theory test that passes
# on its own; fresh processes bound what one process accumulates (docs/design.md#testing).
# Digits share the last process (alone they left one worker idle ~20 s of their ~125 s).
SPLIT := tests/theory tests/sims/gaussian tests/sims/motion
# Each split on $(JOBS) pytest-xdist workers, one test file per worker at a time (module
# fixtures stay shared; session fixtures and tmp_path_factory are per worker), the slowest
# files first (tests/conftest.py's SLOWEST_FIRST; xdist's default order is by test count).
# One data cache (SCSC_CACHE: motion datasets, evaluators) and one persistent XLA compilation
# cache inside it for all of them (pytest processes, xdist workers, notebook kernels, CLI
# subprocesses), removed after: a program one process compiled, the others load (pytest
# about 1,255 -> 994 s on the 2-core AMD EPYC; docs/design.md#testing).
XDIST := -n $(JOBS) --dist loadfile --no-loadscope-reorder

test: lint docs
	set -e; export SCSC_CACHE=$$(mktemp -d); trap 'rm -rf "$$SCSC_CACHE"' EXIT; \
	export SCSC_JAX_CACHE=$$SCSC_CACHE/jax JAX_COMPILATION_CACHE_DIR=$$SCSC_CACHE/jax \
		JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0.5; \
	for d in $(SPLIT); do $(PY) -m pytest $(XDIST) $$d; done; \
	$(PY) -m pytest $(XDIST) tests $(addprefix --ignore=,$(SPLIT))

# The contributor's first check, about 3 minutes on 2 CPU cores: the theory and the Gaussian
# experiment (plus the metrics, CLI and layout checks), without the tests marked `heavy`
# (learned models, notebooks, phase diagrams, multi-device sweeps; `make test` runs them).
FAST_TESTS := tests/theory tests/sims/gaussian tests/sims/common tests/test_cli.py tests/test_layout.py \
	tests/test_docs.py

# $(XDIST): 421 tests, pytest 186 s, 3 min 10 s wall on the idle 2-core CPU (2026-12-02).
test-fast: $(VENV)/.test lint
	$(PY) -m pytest $(XDIST) -m "not slow and not gpu and not heavy" $(FAST_TESTS)

bench: $(VENV)/.bench
	$(PY) benchmarks/gaussian_toy.py

clean-venv:
	rm -rf $(VENV)
