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
# Matter test bed: python-matter-server in its own venv, matter.js virtual plugs, test PAA.
MATTER_PLUG := otelpower/sim/matter_plug
MATTER_VENV := $(TOOLS)/matter-server
MATTER_SERVER := $(MATTER_VENV)/bin/matter-server
MATTER_REQS := tools/matter-server-requirements.txt
MATTER_MODULES := $(MATTER_PLUG)/node_modules/.installed
PAA_DIR := $(TOOLS)/paa
PAA_CERT := $(PAA_DIR)/Chip-Test-PAA-NoVID-Cert.der

.PHONY: help setup test lint format docs docs-check demo clean matter-deps matter-system-deps \
  matter-requirements

help:
	@echo "make demo   - emulated plugs + otelpower run, metrics on http://localhost:$(DEMO_PORT)/metrics"
	@echo "make test   - lint and run the test suite"
	@echo "make bench  - performance figures (bench/README.md)"
	@echo "make dist   - the sdist and wheel in dist/ (version from the git tag; mk/release.mk)"
	@echo "make docs   - regenerate docs/metrics.md's metric tables (tools/metric_tables.py)"
	@echo "make soak   - the long soak: 100 plugs, random faults, 12 h of operation compressed"
	@echo "make setup  - create .venv from the lock file (uv.lock) and the Matter test bed"
	@echo "make matter-deps - only the Matter test bed (server venv, node_modules, test PAA)"

$(UV):
	@test -n "$(PYTHON)" || { echo "error: Python >= 3.12 not found (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode compiled at install, as pip and the image do: with PYTHONDONTWRITEBYTECODE set
# every process would compile its imports from source (slower starts, ~1 MB more memory).
$(BIN)/otelpower: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --extra all --compile-bytecode --python $(PYTHON)
	@touch $@

setup: $(BIN)/otelpower matter-deps

# --- Matter test bed ---------------------------------------------------------------------
matter-deps: matter-system-deps $(MATTER_SERVER) $(MATTER_MODULES) $(PAA_CERT)

# Node.js, libnl-route-3-200 and /data (installed when root, else says what to run).
matter-system-deps:
	@tools/matter-system-deps.sh

# The server's [server] extra pins aiohttp/cryptography/...: keep it out of our own lock.
$(MATTER_SERVER): $(UV) $(MATTER_REQS)
	rm -rf $(MATTER_VENV)
	$(UV) venv --quiet --python $(PYTHON) $(MATTER_VENV)
	$(UV) pip sync --quiet --require-hashes --compile-bytecode --python $(MATTER_VENV)/bin/python \
		$(MATTER_REQS)
	@touch $@

$(MATTER_MODULES): $(MATTER_PLUG)/package.json $(MATTER_PLUG)/package-lock.json
	cd $(MATTER_PLUG) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Matter Test PAA from @matter/protocol (+ empty .version: no certificate download).
$(PAA_CERT): $(MATTER_MODULES) $(MATTER_PLUG)/export-paa.mjs
	node $(MATTER_PLUG)/export-paa.mjs $(PAA_DIR) >/dev/null

# Re-pin the server venv (after changing tools/matter-server-requirements.in).
matter-requirements: $(UV)
	$(UV) pip compile --quiet --generate-hashes --python-version 3.12 \
	  tools/matter-server-requirements.in -o $(MATTER_REQS)

lint: setup images-lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint collector victoria-metrics prometheus curl collector-validate k8s-check image-install-check images \
  deploy-check dashboards-check
	$(BIN)/pytest -q

# README.md's metric tables, from the reader registry and the quantity catalogue; the check
# also runs in `make test` (tests/test_metric_tables.py).
docs: $(BIN)/otelpower
	$(BIN)/python tools/metric_tables.py --write

docs-check: $(BIN)/otelpower
	$(BIN)/python tools/metric_tables.py --check

# Emulated plugs of every transport, a virtual Matter plug mirroring one of them (through a
# local python-matter-server), and otelpower reading both paths; Ctrl-C stops everything.
demo: setup
	@mkdir -p $(RUN)
	@rm -f $(RUN)/demo.yaml
	@$(BIN)/otelpower sim --matter --config-out $(RUN)/demo.yaml > $(RUN)/sim.log 2>&1 & echo $$! > $(RUN)/sim.pid
	@for i in $$(seq 600); do test -s $(RUN)/demo.yaml && break; \
	  kill -0 $$(cat $(RUN)/sim.pid) 2>/dev/null || break; sleep 0.1; done; \
	  test -s $(RUN)/demo.yaml || { cat $(RUN)/sim.log; kill $$(cat $(RUN)/sim.pid) 2>/dev/null; exit 1; }
	@cat $(RUN)/sim.log
	@echo "otelpower: metrics on http://localhost:$(DEMO_PORT)/metrics (Ctrl-C stops)"
	@trap 'kill $$(cat $(RUN)/sim.pid) 2>/dev/null' EXIT; \
	  $(BIN)/otelpower run $(RUN)/demo.yaml --protocol all --prometheus-port $(DEMO_PORT)

clean:
	rm -rf $(VENV) $(TOOLS) $(RUN) build .pytest_cache .ruff_cache $(MATTER_PLUG)/node_modules

include mk/pipeline.mk
include mk/images.mk
include mk/k8s.mk
include mk/dashboards.mk
include mk/bench.mk
include mk/release.mk
