# Container images: otelpower (Dockerfile) and the collector (collector-config/Dockerfile),
# built and pushed by .github/workflows/images.yaml. No docker engine is needed for these
# targets; they check everything the image builds depend on.
# Included by the main Makefile (`include mk/images.mk`); it uses PYTHON, UV, BIN, TOOLS and
# the $(BIN)/otelpower (venv) target from there, with fallbacks for the variables.
#
#   make requirements          requirements.lock (runtime deps with hashes) from uv.lock
#   make requirements-check    fails when requirements.lock is out of date with uv.lock
#   make image-build-requirements  re-pin tools/image-build-requirements.txt (wheel backend)
#   make image-install-check   runs tools/image-install.sh (the Dockerfile's install steps)
#                              into a fresh temp dir with OTELPOWER_VERSION set (as the
#                              release build sets the tag's), then `otelpower --version`
#                              (must be that version), `--help` and
#                              `otelpower check config.example.yaml` from it
#   make image-wheels-check    every requirements.lock wheel exists for linux/amd64 and
#                              linux/arm64 (cp312, glibc of bookworm): downloads ~100 MB
#   make dockerfile-lint       hadolint on both Dockerfiles (.hadolint.yaml)
#   make actionlint            actionlint v$(ACTIONLINT_VERSION) on .github/workflows/*.yaml
#   make images-lint           dockerfile-lint actionlint requirements-check
#   make images-test           images-lint image-install-check
#
# Images (docker engine with buildx, context = the repository root):
#   docker build -t otelpower .
#   docker build -f collector-config/Dockerfile -t otelcol-otelpower .
#
# Built and run here (`make test` does both; no registry needed):
#   make docker-engine         a docker engine: the running one, else Debian's dockerd started
#                              as tools/docker-engine.sh says (root)
#   make local-base-images     otelpower-local/{python,golang}:trixie from Debian's packages
#                              (tools/local-base-images.sh: mmdebstrap | docker import)
#   make images                otelpower:test and otelcol-otelpower:test from the two
#                              Dockerfiles on those bases; the build's CA bundle is a build
#                              secret (in no layer). tests/test_images_run.py runs them.
#   make deploy-check          docker-compose.yaml (`docker-compose config`, both profiles;
#                              Debian's docker-compose, apt-get when missing) and
#                              systemd/otelpower.service (`systemd-analyze verify`, any
#                              warning fails) are valid

SHELL := /bin/bash
PYTHON ?= python3
TOOLS ?= .tools
UV ?= $(TOOLS)/bin/uv
BIN ?= .venv/bin
GO ?= go

# A Python 3.12 (the image's interpreter) for image-install-check: python3.12, else PYTHON.
IMAGE_PYTHON ?= $(shell for p in python3.12 $(PYTHON); do \
	"$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1 && \
	{ command -v "$$p"; break; }; done)
REQUIREMENTS_LOCK := requirements.lock
# The version image-install-check builds with (the workflow passes the tag's instead).
IMAGE_CHECK_VERSION := 0.0.0+image.install.check
# The same command as `make requirements` (the header of the file records it).
UV_EXPORT := $(UV) export --frozen --no-dev --no-emit-project --extra all --format requirements-txt
ACTIONLINT_VERSION := 1.7.12
ACTIONLINT := $(TOOLS)/bin/actionlint
ACTIONLINT_STAMP := $(TOOLS)/bin/.actionlint-v$(ACTIONLINT_VERSION)
DOCKERFILES := Dockerfile collector-config/Dockerfile

.PHONY: requirements requirements-check image-build-requirements image-install-check \
	image-wheels-check dockerfile-lint actionlint images-lint images-test docker-engine \
	local-base-images images deploy-check

##@ Container images and deployment files (mk/images.mk)

# Debian's client: its BuildKit is built in (a newer client may lack the buildx plugin).
# Both are expanded where used, after docker-engine may have installed docker.io.
DOCKER ?= $(shell test -x /usr/bin/docker && echo /usr/bin/docker || echo docker)
RUN ?= .run
LOCAL_BASE := otelpower-local
IMAGE_TAG := test
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
comma := ,
# --network host: the engine runs without a bridge; the CA bundle reaches pip and go as a
# build secret plus the variable that points them at it.
DOCKER_BUILD = DOCKER_BUILDKIT=1 $(DOCKER) build --network host --progress plain \
	$(if $(wildcard $(CA_BUNDLE)),--secret id=ca$(comma)src=$(CA_BUNDLE))

requirements: $(UV) ## requirements.lock (runtime deps with hashes) from uv.lock
	$(UV_EXPORT) --quiet -o $(REQUIREMENTS_LOCK)

# Comment lines aside (the header names the output file), the file must be what uv exports.
requirements-check: $(UV) ## fail when requirements.lock is out of date with uv.lock
	@diff -u <(grep -v '^#' $(REQUIREMENTS_LOCK)) <($(UV_EXPORT) --no-header | grep -v '^#') \
	  >/dev/null || { \
	  echo "error: $(REQUIREMENTS_LOCK) is out of date with uv.lock; run: make requirements"; \
	  diff -u <(grep -v '^#' $(REQUIREMENTS_LOCK)) <($(UV_EXPORT) --no-header | grep -v '^#') \
	    | head -40; exit 1; }
	@echo "$(REQUIREMENTS_LOCK): up to date with uv.lock"

image-build-requirements: $(UV) ## re-pin tools/image-build-requirements.txt (the wheel backend)
	$(UV) pip compile --quiet --generate-hashes --python-version 3.12 \
	  tools/image-build-requirements.in -o tools/image-build-requirements.txt

image-install-check: ## the Dockerfile's install steps into a temp dir, then otelpower check (needs: Python 3.12)
	@test -n "$(IMAGE_PYTHON)" || { echo "error: Python 3.12 not found (set IMAGE_PYTHON=...)"; exit 1; }
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  echo "tools/image-install.sh $$tmp/venv  (PYTHON=$(IMAGE_PYTHON))" && \
	  PYTHON=$(IMAGE_PYTHON) OTELPOWER_VERSION=$(IMAGE_CHECK_VERSION) \
	    tools/image-install.sh "$$tmp/venv" > "$$tmp/install.log" 2>&1 \
	    || { cat "$$tmp/install.log"; exit 1; } && \
	  version=$$(PYTHONDONTWRITEBYTECODE=1 "$$tmp/venv/bin/otelpower" --version) && \
	  test "$$version" = "otelpower $(IMAGE_CHECK_VERSION)" || { \
	    echo "error: otelpower --version says '$$version', not $(IMAGE_CHECK_VERSION)"; exit 1; } && \
	  if "$$tmp/venv/bin/python" -c 'import pytest' 2>/dev/null; then \
	    echo "error: a dev dependency (pytest) is in the image's venv"; exit 1; fi && \
	  PYTHONDONTWRITEBYTECODE=1 "$$tmp/venv/bin/otelpower" --help > /dev/null && \
	  PYTHONDONTWRITEBYTECODE=1 "$$tmp/venv/bin/otelpower" check config.example.yaml && \
	  echo "image-install-check: OK ($$("$$tmp/venv/bin/python" -m pip list --format=freeze | wc -l) packages)"

# The arm64 image cannot be tried here: pip downloads (hashes checked, wheels only) what the
# builder stage installs, for both platforms (manylinux up to bookworm's glibc 2.36).
image-wheels-check: ## every requirements.lock wheel exists for amd64 and arm64 (downloads ~100 MB)
	@test -n "$(IMAGE_PYTHON)" || { echo "error: Python 3.12 not found (set IMAGE_PYTHON=...)"; exit 1; }
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  for arch in x86_64 aarch64; do \
	    platforms="--platform manylinux2014_$$arch"; \
	    for v in $$(seq 17 36); do platforms+=" --platform manylinux_2_$${v}_$$arch"; done; \
	    $(IMAGE_PYTHON) -m pip download --quiet --no-cache-dir --disable-pip-version-check \
	      --only-binary=:all: --require-hashes --python-version 3.12 --implementation cp \
	      --abi cp312 $$platforms -r $(REQUIREMENTS_LOCK) -d "$$tmp/$$arch" || exit 1; \
	    echo "image-wheels-check: $$arch: $$(ls "$$tmp/$$arch" | wc -l) wheels"; \
	  done

dockerfile-lint: $(BIN)/otelpower ## hadolint on both Dockerfiles
	$(BIN)/hadolint $(DOCKERFILES)

$(ACTIONLINT_STAMP):
	@command -v $(GO) >/dev/null || { echo "error: Go not found (actionlint is built with go install)"; exit 1; }
	@mkdir -p $(TOOLS)/bin
	GOBIN=$(abspath $(TOOLS)/bin) $(GO) install github.com/rhysd/actionlint/cmd/actionlint@v$(ACTIONLINT_VERSION)
	@rm -f $(TOOLS)/bin/.actionlint-v*
	@touch $@

actionlint: $(ACTIONLINT_STAMP) ## actionlint on .github/workflows (needs: Go)
	$(ACTIONLINT) .github/workflows/*.yaml

images-lint: dockerfile-lint actionlint requirements-check ## dockerfile-lint, actionlint, requirements-check (needs: Go)

images-test: images-lint image-install-check ## images-lint, image-install-check (needs: Go)

docker-engine: ## a docker engine: the running one, else Debian's dockerd started (needs: root)
	@DOCKER=$(DOCKER) RUN=$(RUN) tools/docker-engine.sh

local-base-images: docker-engine ## otelpower-local/{python,golang}:trixie from Debian's packages (needs: root, docker)
	@DOCKER=$(DOCKER) PREFIX=$(LOCAL_BASE) tools/local-base-images.sh

images: local-base-images ## otelpower:test and otelcol-otelpower:test built here (needs: root, docker)
	@mkdir -p $(RUN)
	$(DOCKER_BUILD) $(if $(wildcard $(CA_BUNDLE)),--build-arg PIP_CERT=/run/secrets/ca) \
	  --build-arg PYTHON_IMAGE=$(LOCAL_BASE)/python:trixie -t otelpower:$(IMAGE_TAG) . \
	  > $(RUN)/image-otelpower.log 2>&1 || { tail -40 $(RUN)/image-otelpower.log; exit 1; }
	@echo "images: otelpower:$(IMAGE_TAG) built (log: $(RUN)/image-otelpower.log)"
	$(DOCKER_BUILD) $(if $(wildcard $(CA_BUNDLE)),--build-arg SSL_CERT_FILE=/run/secrets/ca) \
	  --build-arg GO_IMAGE=$(LOCAL_BASE)/golang:trixie \
	  --build-arg RUNTIME_IMAGE=$(LOCAL_BASE)/python:trixie \
	  -f collector-config/Dockerfile -t otelcol-otelpower:$(IMAGE_TAG) . \
	  > $(RUN)/image-collector.log 2>&1 || { tail -40 $(RUN)/image-collector.log; exit 1; }
	@echo "images: otelcol-otelpower:$(IMAGE_TAG) built (log: $(RUN)/image-collector.log)"

DOCKER_COMPOSE ?= /usr/bin/docker-compose

$(DOCKER_COMPOSE):
	$(call debian-binary,docker-compose,$(DOCKER_COMPOSE))

# The unit names /opt/otelpower/bin/otelpower, which systemd-analyze wants to exist: the
# copy checked names this checkout's venv instead.
deploy-check: $(DOCKER_COMPOSE) $(BIN)/otelpower ## docker-compose.yaml and systemd/otelpower.service are valid (needs: root once, apt-get)
	@$(DOCKER_COMPOSE) -f docker-compose.yaml config -q
	@test "$$($(DOCKER_COMPOSE) -f docker-compose.yaml --profile pipeline config --services | sort | xargs)" \
	  = "otelcol otelpower victoriametrics" || { echo "error: docker-compose.yaml: services"; exit 1; }
	@echo "deploy-check: docker-compose.yaml OK"
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  sed "s#/opt/otelpower/bin/otelpower#$(abspath $(BIN))/otelpower#g" systemd/otelpower.service \
	    > "$$tmp/otelpower.service" && \
	  out=$$(systemd-analyze verify "$$tmp/otelpower.service" 2>&1) && test -z "$$out" \
	  || { echo "error: systemd/otelpower.service:"; echo "$$out"; exit 1; }
	@echo "deploy-check: systemd/otelpower.service OK"
