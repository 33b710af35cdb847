# otelpower: `make demo` runs the product on emulated plugs, `make test` runs the tests,
# `make install` installs the product alone (`make help` lists every target).
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

.PHONY: help install setup demo unit test lint format docs docs-check clean matter-deps \
  matter-system-deps matter-requirements

# `make help` lists every target whose rule line carries a `## description` (this file, then
# mk/*.mk, in file order; `##@ ` lines are headings). tests/test_make_help.py checks that every
# .PHONY target has one. "needs:" says what a target needs beyond Python >= 3.12.
help: ## this list
	@echo "make TARGET     every target needs Python >= 3.12; \"needs:\" says what else. Where"
	@echo "                root is needed, as root it apt-installs what is missing, else it prints"
	@echo "                the commands to run (sudo ...)."
	@awk '/^##@ / { printf "\n%s\n", substr($$0, 5); next } \
	  /^[a-zA-Z0-9_-]+:.*## / { printf "  %-26s %s\n", substr($$0, 1, index($$0, ":") - 1), \
	    substr($$0, index($$0, "## ") + 3) }' $(MAKEFILE_LIST)

##@ Start here (what each needs: README.md's first lines)
install: $(BIN)/otelpower ## the product alone: .venv with both readers, from uv.lock (no Node, Go or root)

demo: setup ## emulated TP-Link plugs, a Shelly Pro 4PM and a virtual Matter plug, read by otelpower on :9464 (needs: Node >= 20.19, root once: matter-system-deps)
	@mkdir -p $(RUN)
	@rm -f $(RUN)/demo.yaml
	@$(BIN)/otelpower sim --matter --shelly pro-4pm --config-out $(RUN)/demo.yaml > $(RUN)/sim.log 2>&1 & echo $$! > $(RUN)/sim.pid
	@for i in $$(seq 600); do test -s $(RUN)/demo.yaml && break; \
	  kill -0 $$(cat $(RUN)/sim.pid) 2>/dev/null || break; sleep 0.1; done; \
	  test -s $(RUN)/demo.yaml || { cat $(RUN)/sim.log; kill $$(cat $(RUN)/sim.pid) 2>/dev/null; exit 1; }
	@cat $(RUN)/sim.log
	@echo "otelpower: metrics on http://localhost:$(DEMO_PORT)/metrics (Ctrl-C stops)"
	@trap 'kill $$(cat $(RUN)/sim.pid) 2>/dev/null' EXIT; \
	  $(BIN)/otelpower run $(RUN)/demo.yaml --protocol all --prometheus-port $(DEMO_PORT)

# The tests that use no test bed (no emulated plug, no process, no Matter, no collector,
# VictoriaMetrics or docker): tests/conftest.py marks the others `live`, by fixture and folder.
unit: install ## ruff + the tests that use no test bed (pytest -m "not live"), about a minute (no Node, Go or root)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q -m "not live"

TEST_NEEDS := setup lint collector victoria-metrics prometheus curl collector-validate k8s-check \
  image-install-check images deploy-check dashboards-check
test: $(TEST_NEEDS) ## lint + the whole suite, every test bed (needs: Node >= 20.19, Go >= 1.24, root or sudo, docker)
	$(BIN)/pytest -q

setup: install matter-deps ## install + the Matter test bed (needs: Node >= 20.19, root once: matter-system-deps)

lint: install images-lint ## ruff, hadolint, actionlint, the requirements.lock check (needs: Go, for actionlint)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## ruff format, then ruff check --fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

$(UV):
	@test -n "$(PYTHON)" || { echo "error: Python >= 3.12 not found (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode compiled at install, as pip and the image do: with PYTHONDONTWRITEBYTECODE set
# every process would compile its imports from source (slower starts, ~1 MB more memory).
$(BIN)/otelpower: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --extra all --compile-bytecode --python $(PYTHON)
	@touch $@

##@ Docs, housekeeping
# docs/metrics.md's metric tables, from the reader registry and the quantity catalogue; the check
# also runs in `make test` (tests/test_metric_tables.py).
docs: $(BIN)/otelpower ## regenerate docs/metrics.md's metric tables (tools/metric_tables.py)
	$(BIN)/python tools/metric_tables.py --write

docs-check: $(BIN)/otelpower ## fail when docs/metrics.md's metric tables are out of date
	$(BIN)/python tools/metric_tables.py --check

clean: ## remove .venv, .tools, .run, build/ and the Matter plug's node_modules
	rm -rf $(VENV) $(TOOLS) $(RUN) build .pytest_cache .ruff_cache $(MATTER_PLUG)/node_modules

##@ Matter test bed (make demo's virtual Matter plug, make test)
# python-matter-server (its own venv), the matter.js virtual plug (node_modules), the test PAA.
matter-deps: matter-system-deps $(MATTER_SERVER) $(MATTER_MODULES) $(PAA_CERT) ## the test bed alone (needs: Node >= 20.19, root once: matter-system-deps)

# Node.js >= 20.19, libnl-route-3-200 and a writable /data: says what is missing and why first;
# as root installs the package and makes /data, otherwise prints the commands to run.
matter-system-deps: ## check Node >= 20.19; libnl-route-3-200 and /data (root: installs; else prints sudo commands)
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
matter-requirements: $(UV) ## re-pin tools/matter-server-requirements.txt from its .in
	$(UV) pip compile --quiet --generate-hashes --python-version 3.12 \
	  tools/matter-server-requirements.in -o $(MATTER_REQS)

include mk/pipeline.mk
include mk/images.mk
include mk/k8s.mk
include mk/dashboards.mk
include mk/bench.mk
include mk/release.mk
