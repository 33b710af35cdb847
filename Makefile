# otelpower: `make demo` runs the product on emulated plugs, `make test` runs the tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# A Python >= 3.12 (pyenv shims that point nowhere are skipped).
PYTHON ?= $(shell for p in python3.13 python3.12 python3 $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3; do \
	"$$p" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { command -v "$$p"; break; }; done)
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
RUN := .run
DEMO_PORT ?= 9464

.PHONY: help setup test lint format demo clean

help:
	@echo "make demo   - emulated plugs + otelpower run, metrics on http://localhost:$(DEMO_PORT)/metrics"
	@echo "make test   - lint and run the test suite"
	@echo "make setup  - create .venv from the lock file (uv.lock)"

$(UV):
	@test -n "$(PYTHON)" || { echo "error: Python >= 3.12 not found (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(BIN)/otelpower: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

setup: $(BIN)/otelpower

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/pytest -q

# Emulated plugs of every transport, and otelpower reading them; Ctrl-C stops both.
demo: setup
	@mkdir -p $(RUN)
	@rm -f $(RUN)/demo.yaml
	@$(BIN)/otelpower sim --config-out $(RUN)/demo.yaml > $(RUN)/sim.log 2>&1 & echo $$! > $(RUN)/sim.pid
	@for i in $$(seq 100); do test -s $(RUN)/demo.yaml && break; sleep 0.1; done; \
	  test -s $(RUN)/demo.yaml || { cat $(RUN)/sim.log; kill $$(cat $(RUN)/sim.pid); exit 1; }
	@cat $(RUN)/sim.log
	@echo "otelpower: metrics on http://localhost:$(DEMO_PORT)/metrics (Ctrl-C stops)"
	@trap 'kill $$(cat $(RUN)/sim.pid) 2>/dev/null' EXIT; \
	  $(BIN)/otelpower run $(RUN)/demo.yaml --prometheus-port $(DEMO_PORT)

clean:
	rm -rf $(VENV) $(TOOLS) $(RUN) .pytest_cache .ruff_cache
