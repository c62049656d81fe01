# make run   : install what is needed, start Azurite and MailDev and serve the functions on http://localhost:7071
# make test  : install what is needed, lint, type-check and run the whole test suite
# make bench : measure what a request costs (writes docs/performance.md)
# make soak  : minutes of mixed traffic with a storage restart, then a full check
#
# Python: the newest 3.13+ found (on the PATH or under pyenv), where Microsoft's worker package
# azure-functions-runtime-v1 loads and runs the functions as Azure does; else the newest 3.11+,
# where the local host's port of that worker does. `make PYTHON=/path/to/python3.x` picks one.
# `make test` then also runs the tests of the function folders on a Python 3.11 or 3.12 (the
# port's pass), when one is found. REQUIRE_WORKER=1 (as .ci/run sets) fails without a 3.13+.

ifeq ($(origin PYTHON), undefined)
PYTHON := $(shell python3 tools/find_python.py worker)
endif
VENV      := .venv
BIN       := $(VENV)/bin
PORT_VENV := .venv-port
# The tests that run the app's function folders through the local host: marked `through_host`.
PORT_TESTS := -m through_host tests

.PHONY: run test port-test lint bench soak install clean which-python

run: which-python $(VENV)/.runtime $(VENV)/.node
	$(BIN)/python -m tools.run

test: which-python $(VENV)/.dev $(VENV)/.node $(VENV)/.browser lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory port-test

lint: which-python $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: which-python $(VENV)/.dev $(VENV)/.node
	$(BIN)/python -m tools.bench $(BENCH_ARGS)

soak: which-python $(VENV)/.dev $(VENV)/.node
	$(BIN)/python -m tools.bench.soak $(SOAK_ARGS)

install: which-python $(VENV)/.dev $(VENV)/.node

# Says which Python and which worker; rebuilds .venv when it was made with another Python.
which-python:
	@[ -n "$(PYTHON)" ] || { echo "Python 3.11 or newer is required (none found; set PYTHON=...)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required")'
	@want="$$($(PYTHON) -c 'import sys; print(sys.version.split()[0])')"; \
	if [ -x $(BIN)/python ] && [ "$$($(BIN)/python -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)" != "$$want" ]; then \
	  echo "$(VENV) was made with another Python: making it again with Python $$want"; rm -rf $(VENV); fi; \
	if $(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)'; then \
	  echo "Python $$want ($(PYTHON)): functions run on Microsoft's worker, azure-functions-runtime-v1"; \
	elif [ "$(REQUIRE_WORKER)" = 1 ]; then \
	  echo "Python 3.13 or newer is required here (REQUIRE_WORKER=1), to run the functions on Microsoft's worker; found $$want"; exit 1; \
	else echo "Python $$want ($(PYTHON)): no Python 3.13+ found, functions run on the local host's port of the worker"; fi

$(BIN)/python:
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

# Headless Chromium for the browser tests: Debian's package.
# Where it cannot be installed (no apt, not root), the test says so and skips.
$(VENV)/.browser: | $(BIN)/python
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
	    >/dev/null 2>&1 || echo "Chromium could not be installed: the browser test will be skipped"; \
	else echo "Chromium is not installed (needs apt-get as root): the browser test will be skipped"; fi
	touch $@

# The port's pass: the function-folder tests again, on a Python 3.11 or 3.12, through the local
# host's own loader (what runs for users who have nothing newer). Skipped, saying so, when the
# main pass already ran on the port or no such Python is found.
port-test:
	@if $(BIN)/python -c 'import sys; sys.exit(0 if sys.version_info < (3, 13) else 1)'; then \
	  echo "The main pass ran on the port: no second pass"; exit 0; fi; \
	port="$$(python3 tools/find_python.py port)"; \
	if [ -z "$$port" ]; then echo "No Python 3.11 or 3.12 found: the port's pass is skipped"; exit 0; fi; \
	want="$$($$port -c 'import sys; print(sys.version.split()[0])')"; \
	if [ -x $(PORT_VENV)/bin/python ] && [ "$$($(PORT_VENV)/bin/python -c 'import sys; print(sys.version.split()[0])')" != "$$want" ]; then rm -rf $(PORT_VENV); fi; \
	echo "The port's pass: Python $$want ($$port), the local host's port of the worker"; \
	if [ ! -f $(PORT_VENV)/.dev ] || [ requirements-dev.txt -nt $(PORT_VENV)/.dev ] || [ requirements.txt -nt $(PORT_VENV)/.dev ]; then \
	  $$port -m venv $(PORT_VENV) && $(PORT_VENV)/bin/python -m pip install --quiet --upgrade pip \
	  && $(PORT_VENV)/bin/python -m pip install --quiet -r requirements-dev.txt && touch $(PORT_VENV)/.dev || exit 1; fi; \
	DEVHOST_WORKER=port $(PORT_VENV)/bin/python -m pytest $(PORT_TESTS) $(PORT_PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(PORT_VENV) node_modules .azurite .pytest_cache .mypy_cache .ruff_cache
