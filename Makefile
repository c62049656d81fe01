# make run   : install what is needed, start Azurite and serve the functions on http://localhost:7071
# make test  : install what is needed, lint, type-check and run the whole test suite
# make bench : measure what a request costs (writes docs/performance.md)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench install clean

run: $(VENV)/.runtime $(VENV)/.node
	$(BIN)/python -m tools.run

test: $(VENV)/.dev $(VENV)/.node lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(VENV)/.dev $(VENV)/.node
	$(BIN)/python -m tools.bench $(BENCH_ARGS)

install: $(VENV)/.dev $(VENV)/.node

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

$(VENV)/.node: package.json package-lock.json | $(BIN)/python
	@command -v npm >/dev/null || { echo "Node.js 18+ with npm is required (for Azurite)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) node_modules .azurite .pytest_cache .mypy_cache .ruff_cache
