# The two commands of the README:  `make run`  and  `make test`.
# Both set everything up first (virtual environment, dependencies), then do their job.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-stamp

.PHONY: run test setup lint bench clean chromium wrk

# Re-run setup whenever pyproject.toml or this Makefile changes.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e . --group dev
	# Declares Requires-Python >=3.14 but works on 3.11: it needs its own pip call.
	$(BIN)/python -m pip install --quiet --ignore-requires-python opa-golib-python-bindings==0.4.4
	touch $(STAMP)

setup: $(STAMP)

## make run: set up and run the service on http://127.0.0.1:8000 (embedded PostgreSQL, no config)
run: $(STAMP)
	$(BIN)/consent serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Browser tests drive Debian's Chromium through Playwright (never Playwright's own download).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "The browser tests need Chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

## make test: set up, lint, type-check and run the whole test suite
## (CONSENT_TEST_DATABASE_URL=postgresql://... runs it against another PostgreSQL server)
test: lint chromium
	$(BIN)/pytest

# bench/decisions_http.py loads the server with wrk, a separate C load generator.
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; \
	  else echo "bench/decisions_http.py needs wrk: sudo apt-get install wrk" >&2; exit 1; fi; }

bench: $(STAMP) wrk
	@for b in bench/*.py; do echo "== $$b" >&2; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
