# Sealdrop: `make run` serves the embedded default; `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint typecheck unit install test-deps clean bench bench-quick soak

run: $(VENV)/.installed
	$(BIN)/sealdrop serve

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	scripts/make-venv $(PYTHON) $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

# System packages the tests drive (PostgreSQL, Redis, curl, wget, Chromium, …), from apt
# when missing.
test-deps: $(VENV)/.test-installed
	scripts/install-test-deps

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy

# Two processes, each taking whole test files (module-scoped stacks stay shared): most of
# the suite waits on servers it started, so two halve the time even on two cores.
test: test-deps lint typecheck
	$(BIN)/pytest -q -n 2 --dist loadfile

# The hostile suite's long form: minutes of load with 1-100 MB files, a thousand slow
# connections, many more fuzzed requests (SEALDROP_SOAK=1 scales tests/hostile up).
soak: test-deps
	SEALDROP_SOAK=1 $(BIN)/pytest -q tests/hostile

# Benchmarks (bench/README.md): the full run also needs PostgreSQL and Redis (test-deps);
# nginx, wrk and curl come from apt when missing.
bench: test-deps
	$(BIN)/python -m bench

bench-quick: $(VENV)/.test-installed
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache sealdrop-data
