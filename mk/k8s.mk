# Kubernetes deployment (k8s/, argocd/): render every kustomization and validate it offline.
# Included by the main Makefile (`include mk/k8s.mk`); uses BIN and TOOLS from there, with
# fallbacks so that it also reads on its own.
#
#   make k8s-tools   kustomize (go install) -> .tools/bin/kustomize; npm ci in tools/k8s-validate
#   make k8s-build   kustomize build of k8s/base, every overlay and the components -> build/k8s/*.yaml
#   make k8s-check   k8s-build, then every rendered object and argocd/app.yaml validated offline:
#                    built-in kinds against the Kubernetes $(K8S_VERSION) schemas (strict),
#                    ServiceMonitor/Application against the npm CRD models, VMServiceScrape
#                    against k8s/schemas/vmservicescrape.schema.json
#   make k8s-test    k8s-check, then pytest tests/k8s
#
# `make test` runs tests/k8s with the rest of the suite; it needs k8s-check (or k8s-tools) first
# so that the kustomize binary is there.

BIN ?= .venv/bin
TOOLS ?= .tools
GO ?= go
NPM ?= npm

# v5.8.3 needs Go >= 1.27 and a kube-openapi version the Go module proxy does not serve here;
# v5.8.2 builds with Go 1.26 from the proxy alone.
KUSTOMIZE_VERSION := v5.8.2
KUSTOMIZE := $(TOOLS)/bin/kustomize
KUSTOMIZE_STAMP := $(TOOLS)/bin/.kustomize-$(KUSTOMIZE_VERSION)
K8S_VERSION := 1.33.0
K8S_VALIDATE := tools/k8s-validate
K8S_NODE_MODULES := $(K8S_VALIDATE)/node_modules/.installed
K8S_OUT := build/k8s
# The Python environment with kubernetes-validate (the main Makefile's rule creates it).
K8S_VENV_DEP ?= $(BIN)/otelpower
# Overlays (directories under k8s/overlays) and the component variants built on top of `home`.
K8S_OVERLAYS := $(notdir $(wildcard k8s/overlays/*))
K8S_VARIANTS := host-network sharded-native $(if $(wildcard dashboards/kustomization.yaml),dashboards)

.PHONY: k8s-tools k8s-build k8s-check k8s-test

$(KUSTOMIZE_STAMP):
	@command -v $(GO) >/dev/null || { echo "error: Go not found (kustomize is built with go install)"; exit 1; }
	@mkdir -p $(TOOLS)/bin
	GOBIN=$(abspath $(TOOLS)/bin) $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	@rm -f $(TOOLS)/bin/.kustomize-*
	@touch $@

$(K8S_NODE_MODULES): $(K8S_VALIDATE)/package.json $(K8S_VALIDATE)/package-lock.json
	cd $(K8S_VALIDATE) && $(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

k8s-tools: $(KUSTOMIZE_STAMP) $(K8S_NODE_MODULES)

# Each variant is a generated kustomization in build/k8s/variants/NAME: overlay `home` plus
# the component k8s/components/NAME.
k8s-build: $(KUSTOMIZE_STAMP)
	@rm -rf $(K8S_OUT) && mkdir -p $(K8S_OUT)/variants
	$(KUSTOMIZE) build k8s/base > $(K8S_OUT)/base.yaml
	@set -e; for o in $(K8S_OVERLAYS); do \
	  echo "$(KUSTOMIZE) build k8s/overlays/$$o > $(K8S_OUT)/$$o.yaml"; \
	  $(KUSTOMIZE) build k8s/overlays/$$o > $(K8S_OUT)/$$o.yaml; \
	done
	@set -e; for v in $(K8S_VARIANTS); do \
	  mkdir -p $(K8S_OUT)/variants/$$v; \
	  printf '%s\n' 'apiVersion: kustomize.config.k8s.io/v1beta1' 'kind: Kustomization' 'namespace: otelpower' \
	    'resources: [../../../../k8s/overlays/home]' "components: [../../../../k8s/components/$$v]" \
	    > $(K8S_OUT)/variants/$$v/kustomization.yaml; \
	  echo "$(KUSTOMIZE) build (home + components/$$v) > $(K8S_OUT)/home+$$v.yaml"; \
	  $(KUSTOMIZE) build $(K8S_OUT)/variants/$$v > $(K8S_OUT)/home+$$v.yaml; \
	done
	@$(if $(wildcard dashboards/kustomization.yaml),,echo "note: no dashboards/kustomization.yaml yet: the dashboards component is not built")

k8s-check: k8s-build $(K8S_NODE_MODULES) $(K8S_VENV_DEP)
	$(BIN)/python $(K8S_VALIDATE)/validate.py -k $(K8S_VERSION) $(K8S_OUT)/*.yaml argocd/app.yaml

k8s-test: k8s-check
	$(BIN)/pytest -q tests/k8s
