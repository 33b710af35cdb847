# Grafana dashboards (dashboards/) and alert rules (alerts/).
# Included by the main Makefile (`include mk/dashboards.mk`); uses BIN from there.
#
#   make dashboards         regenerate dashboards/*.json, alerts/otelpower-rules.yaml (from
#                           dashboards/otelpower-rules.yaml.in), alerts/vmalert-rules.yaml and
#                           the VMRule (k8s/components/vmrule), metric names from the registry
#                           (dashboards/generate.py, grafana-foundation-sdk)
#   make dashboards-check   fails when the committed files differ from what generate.py writes
#                           and, where vmalert is installed, `vmalert -dryRun` on the rules
#   make dashboards-test    dashboards-check, then pytest tests/dashboards (the live part runs
#                           every query against the pipeline test bed: needs `make collector
#                           victoria-metrics` and the Matter test bed; ~45 s)
#
# `make test` runs tests/dashboards with the rest of the suite; hook dashboards-check into it.

BIN ?= .venv/bin
VMALERT ?= vmalert
DASHBOARDS_GENERATOR := dashboards/generate.py
DASHBOARDS_OUTPUTS := dashboards/otelpower-power.json dashboards/otelpower-compare.json \
	alerts/vmalert-rules.yaml alerts/otelpower-rules.yaml \
	k8s/components/vmrule/otelpower-vmrule.yaml

.PHONY: dashboards dashboards-check dashboards-test

##@ Dashboards and alert rules (mk/dashboards.mk)

dashboards: $(BIN)/otelpower ## regenerate dashboards/*.json and the alert rules (dashboards/generate.py)
	$(BIN)/python $(DASHBOARDS_GENERATOR)

dashboards-check: $(BIN)/otelpower ## fail when those files differ from what generate.py writes
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  $(BIN)/python $(DASHBOARDS_GENERATOR) "$$tmp" && \
	  status=0 && for f in $(DASHBOARDS_OUTPUTS); do \
	    if ! diff -u "$$f" "$$tmp/$$(basename $$f)" > "$$tmp/diff" 2>&1; then \
	      echo "error: $$f differs from what $(DASHBOARDS_GENERATOR) generates; run: make dashboards"; \
	      head -40 "$$tmp/diff"; status=1; \
	    fi; \
	  done && \
	  if [ $$status = 0 ]; then echo "dashboards-check: $(words $(DASHBOARDS_OUTPUTS)) files up to date"; fi && \
	  exit $$status
	@if command -v $(VMALERT) >/dev/null; then \
	  $(VMALERT) -dryRun -rule=alerts/vmalert-rules.yaml -loggerLevel=ERROR && \
	  echo "dashboards-check: vmalert -dryRun: alerts/vmalert-rules.yaml OK"; \
	else echo "note: vmalert not installed: rules not dry-run (make victoria-metrics)"; fi

dashboards-test: dashboards-check ## dashboards-check, then pytest tests/dashboards (live part: collector, VictoriaMetrics, Matter)
	$(BIN)/pytest -q tests/dashboards
