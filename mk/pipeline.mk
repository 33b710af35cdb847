# Telemetry pipeline: the otelcol-otelpower collector, VictoriaMetrics, and `make stack`.
# Included by the main Makefile (`include mk/pipeline.mk`); it uses BIN, RUN, TOOLS and the
# `setup` target from there, with fallbacks so that it also reads on its own.
#
#   make collector           ocb v$(OCB_VERSION) -> .tools/bin/builder, then build/otelcol-otelpower
#   make victoria-metrics    Debian's victoria-metrics (apt-get, as root) when it is missing
#   make collector-validate  otelcol validate on collector-config/config.yaml
#   make stack / stack-down  emulated plugs + otelpower + collector + VictoriaMetrics, in the
#                            background (state, logs and PIDs in $(RUN)/stack)
#
# The main Makefile can run the pipeline tests with:
#   test: lint collector victoria-metrics collector-validate

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
VICTORIA_METRICS ?= /usr/bin/victoria-metrics

.PHONY: collector victoria-metrics collector-validate stack stack-down

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

collector: $(COLLECTOR)

# The Debian package (1.79.x). It also installs a systemd unit; on a host with systemd that
# would hold port 8428, so a unit started by this install is stopped and disabled again
# (`make stack` and the tests run their own instance).
victoria-metrics:
	@if [ -x "$(VICTORIA_METRICS)" ]; then \
	  exit 0; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "installing victoria-metrics (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq victoria-metrics >/dev/null \
	    || exit 1; \
	  if command -v systemctl >/dev/null && systemctl is-active --quiet victoria-metrics 2>/dev/null; then \
	    systemctl disable --now victoria-metrics; \
	  fi; \
	else \
	  echo "victoria-metrics is not installed; as root run:"; \
	  echo "  apt-get update && apt-get install -y victoria-metrics"; \
	  if [ -n "$$CI" ]; then exit 1; fi; \
	  echo "(the pipeline tests are skipped until then)"; \
	fi

collector-validate: $(COLLECTOR)
	$(COLLECTOR) validate --config $(COLLECTOR_CONFIG)

stack: setup collector victoria-metrics
	@RUN=$(RUN) BIN=$(BIN) COLLECTOR=$(COLLECTOR) COLLECTOR_CONFIG=$(COLLECTOR_CONFIG) \
	  VICTORIA_METRICS=$(VICTORIA_METRICS) tools/stack.sh up

stack-down:
	@RUN=$(RUN) tools/stack.sh down
