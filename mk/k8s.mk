# Kubernetes deployment (k8s/, argocd/): render every kustomization and validate it offline.
# Included by the main Makefile (`include mk/k8s.mk`); uses BIN and TOOLS from there, with
# fallbacks so that it also reads on its own.
#
#   make k8s-tools   kustomize (go install) -> .tools/bin/kustomize; npm ci in tools/k8s-validate
#   make k8s-build   kustomize build of every root, overlay and component combination -> build/k8s/*.yaml
#   make k8s-check   k8s-build, then every rendered object and argocd/*.yaml validated offline:
#                    built-in kinds against the Kubernetes $(K8S_VERSION) schemas (strict),
#                    ServiceMonitor/PrometheusRule/Application against the npm CRD models,
#                    VMServiceScrape/VMRule against k8s/schemas
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

.PHONY: k8s-tools k8s-build k8s-check k8s-test

##@ Kubernetes (mk/k8s.mk)

$(KUSTOMIZE_STAMP):
	@command -v $(GO) >/dev/null || { echo "error: Go not found (kustomize is built with go install)"; exit 1; }
	@mkdir -p $(TOOLS)/bin
	GOBIN=$(abspath $(TOOLS)/bin) $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	@rm -f $(TOOLS)/bin/.kustomize-*
	@touch $@

$(K8S_NODE_MODULES): $(K8S_VALIDATE)/package.json $(K8S_VALIDATE)/package-lock.json
	cd $(K8S_VALIDATE) && $(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

k8s-tools: $(KUSTOMIZE_STAMP) $(K8S_NODE_MODULES) ## kustomize (go install) and tools/k8s-validate's node_modules (needs: Go, Node)

# Every rendering k8s/ offers (the roots, each component alone on the base, the combinations):
# the list is tools/k8s-validate/renders.py, which tests/k8s uses too.
k8s-build: $(KUSTOMIZE_STAMP) $(K8S_VENV_DEP) ## render every kustomization into build/k8s (needs: Go)
	@rm -rf $(K8S_OUT)
	$(BIN)/python $(K8S_VALIDATE)/renders.py --kustomize $(KUSTOMIZE) --out $(K8S_OUT)

k8s-check: k8s-build $(K8S_NODE_MODULES) $(K8S_VENV_DEP) ## k8s-build, then validate every object offline (needs: Go, Node)
	$(BIN)/python $(K8S_VALIDATE)/validate.py -k $(K8S_VERSION) $(K8S_OUT)/*.yaml argocd/*.yaml

k8s-test: k8s-check ## k8s-check, then pytest tests/k8s (needs: Go, Node)
	$(BIN)/pytest -q tests/k8s
