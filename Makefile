# chatd: every target creates .venv when it is missing, installs what it
# needs, then does its job.  Only python3 (3.10 or newer) must exist.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8998
DB     ?= chatd.sqlite3
SOURCES := $(shell find chatd client twisted sql -name '*.py' -o -name '*.sql' 2>/dev/null)

.PHONY: run test lint client bench clean

run: $(VENV)/installed
	$(BIN)/twistd --nodaemon --pidfile= chatd --port $(PORT) --db $(DB)

test: $(VENV)/installed
	@$(BIN)/python -c 'from tests import postgres, redis; [print(s) for s in (postgres.SKIP, redis.SKIP) if s]'
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m twisted.trial --temp-directory=.trial tests

lint: $(VENV)/installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

client: $(VENV)/installed
	$(BIN)/python -m client --port $(PORT)

bench: $(VENV)/installed
	$(BIN)/python -m bench $(if $(CHATLOAD),--chatload $(CHATLOAD))

clean:
	rm -rf $(VENV) build *.egg-info .trial .mypy_cache .ruff_cache

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip 'setuptools>=68' wheel

# Third-party dependencies: reinstalled only when pyproject.toml changes.
$(VENV)/deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet '.[client,dev]'
	touch $@

# chatd itself, as a regular install: twistd then finds the chatd plugin from
# any directory (an editable install would not put twisted/plugins on its
# path).  The last line rebuilds Twisted's plugin cache while we may write it.
$(VENV)/installed: $(VENV)/deps $(SOURCES)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --force-reinstall .
	$(BIN)/python -c 'from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))'
	touch $@
