# make run   : install what is needed, start Azurite and serve the functions on http://localhost:7071
# make test  : install what is needed, lint, type-check and run the whole test suite
# make bench : measure what a request costs (writes docs/performance.md)
# make soak  : minutes of mixed traffic with a storage restart, then a full check

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench soak install clean

run: $(VENV)/.runtime $(VENV)/.node
	$(BIN)/python -m tools.run

test: $(VENV)/.dev $(VENV)/.node $(VENV)/.browser lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(VENV)/.dev $(VENV)/.node
	$(BIN)/python -m tools.bench $(BENCH_ARGS)

soak: $(VENV)/.dev $(VENV)/.node
	$(BIN)/python -m tools.soak $(SOAK_ARGS)

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

# Headless Chromium for the browser test of the Mobile Apps JavaScript client: Debian's package.
# Where it cannot be installed (no apt, not root), the test says so and skips.
$(VENV)/.browser: | $(BIN)/python
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
	    >/dev/null 2>&1 || echo "Chromium could not be installed: the browser test will be skipped"; \
	else echo "Chromium is not installed (needs apt-get as root): the browser test will be skipped"; fi
	touch $@

clean:
	rm -rf $(VENV) node_modules .azurite .pytest_cache .mypy_cache .ruff_cache
