# Telemetry pipeline: the otelcol-otelpower collector, VictoriaMetrics, and `make stack`.
# Included by the main Makefile (`include mk/pipeline.mk`); it uses BIN, RUN, TOOLS and the
# `setup` target from there, with fallbacks so that it also reads on its own.
#
#   make collector           ocb v$(OCB_VERSION) -> .tools/bin/builder, then build/otelcol-otelpower,
#                            and build/otelcol-guard (collector-config/guard: the entrypoint
#                            that bounds the WAL and sets a damaged one aside; Go stdlib only)
#   make victoria-metrics    Debian's victoria-metrics (apt-get, as root) when it is missing
#   make prometheus          Debian's prometheus, the same way (the tests' second backend)
#   make collector-validate  otelcol validate on collector-config/config.yaml
#   make stack / stack-down  emulated plugs + otelpower + collector + VictoriaMetrics, in the
#                            background (state, logs and PIDs in $(RUN)/stack)
#
# The main Makefile can run the pipeline tests with:
#   test: lint collector victoria-metrics prometheus collector-validate

BIN ?= .venv/bin
RUN ?= .run
TOOLS ?= .tools
GO ?= go

OCB_VERSION := 0.165.0
OCB := $(TOOLS)/bin/builder
# The builder binary carries no version in its name: this stamp rebuilds it when OCB_VERSION
# changes.
OCB_STAMP := $(TOOLS)/bin/.builder-v$(OCB_VERSION)
COLLECTOR_MANIFEST := collector-config/builder-config.yaml
COLLECTOR_CONFIG := collector-config/config.yaml
COLLECTOR_SRC := build/otelcol-otelpower-src
COLLECTOR := build/otelcol-otelpower
GUARD := build/otelcol-guard
GUARD_SRC := collector-config/guard
VICTORIA_METRICS ?= /usr/bin/victoria-metrics
PROMETHEUS ?= /usr/bin/prometheus

.PHONY: collector victoria-metrics prometheus curl collector-validate stack stack-down

##@ Telemetry pipeline (mk/pipeline.mk)

$(OCB_STAMP):
	@command -v $(GO) >/dev/null || { echo "error: Go not found (the collector build needs go >= 1.24)"; exit 1; }
	@mkdir -p $(TOOLS)/bin
	GOBIN=$(abspath $(TOOLS)/bin) $(GO) install go.opentelemetry.io/collector/cmd/builder@v$(OCB_VERSION)
	@rm -f $(TOOLS)/bin/.builder-v*
	@touch $@

# Rebuilt only when the manifest (or the builder version) changes; the builder writes its
# sources and binary to $(COLLECTOR_SRC) (its own go.mod), and the binary is copied out.
$(COLLECTOR): $(COLLECTOR_MANIFEST) $(OCB_STAMP)
	@mkdir -p $(dir $@)
	$(OCB) --config $(COLLECTOR_MANIFEST)
	install -m 0755 $(COLLECTOR_SRC)/otelcol-otelpower $@

$(GUARD): $(GUARD_SRC)/main.go $(GUARD_SRC)/go.mod
	@mkdir -p $(dir $@)
	cd $(GUARD_SRC) && CGO_ENABLED=0 $(GO) build -trimpath -o $(abspath $@) .

collector: $(COLLECTOR) $(GUARD) ## build/otelcol-otelpower (ocb) and build/otelcol-guard (needs: Go >= 1.24)

# Debian's packages for the test backends: victoria-metrics (1.79.x) and prometheus (2.42),
# installed with apt-get as root when missing. Each also installs a systemd unit; on a host
# with systemd that would hold its port (8428, 9090), so a unit started by the install is
# stopped and disabled again (`make stack` and the tests run their own instances).
define debian-binary
	@if [ -x "$(2)" ]; then \
	  exit 0; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "installing $(1) (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $(1) >/dev/null || exit 1; \
	  if command -v systemctl >/dev/null && systemctl is-active --quiet $(1) 2>/dev/null; then \
	    systemctl disable --now $(1); \
	  fi; \
	else \
	  echo "$(1) is not installed; as root run:"; \
	  echo "  apt-get update && apt-get install -y --no-install-recommends $(1)"; \
	  if [ -n "$$CI" ]; then exit 1; fi; \
	  echo "(the tests that need it are skipped until then)"; \
	fi
endef

victoria-metrics: ## Debian's victoria-metrics when missing (needs: root, apt-get)
	$(call debian-binary,victoria-metrics,$(VICTORIA_METRICS))

prometheus: ## Debian's prometheus when missing (needs: root, apt-get)
	$(call debian-binary,prometheus,$(PROMETHEUS))

# the client the endpoint's TLS and basic auth are tested with
curl: ## Debian's curl when missing (needs: root, apt-get)
	$(call debian-binary,curl,/usr/bin/curl)

collector-validate: $(COLLECTOR) ## otelcol validate on collector-config/config.yaml (needs: Go)
	$(COLLECTOR) validate --config $(COLLECTOR_CONFIG)

stack: setup collector victoria-metrics ## plugs + otelpower + collector + VictoriaMetrics in the background (needs: Node, Go, root)
	@RUN=$(RUN) BIN=$(BIN) COLLECTOR=$(COLLECTOR) COLLECTOR_CONFIG=$(COLLECTOR_CONFIG) \
	  VICTORIA_METRICS=$(VICTORIA_METRICS) tools/stack.sh up

stack-down: ## stop what make stack started
	@RUN=$(RUN) tools/stack.sh down
