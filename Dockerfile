# otelpower image: one image for `otelpower run CONFIG --protocol native|matter|all`.
#
#   docker build -t otelpower .            (context = the repository root; .dockerignore)
#   make images                            (here: base images from Debian's packages, see
#                                           tools/local-base-images.sh, and a run test)
#   docker run --rm --read-only --network host -e KASA_USERNAME -e KASA_PASSWORD otelpower run
#     (zero-config: every plug discovery finds; host networking, as discovery needs the LAN)
#   docker run --rm --read-only --network host -v "$PWD/config:/config:ro" \
#     -e KASA_USERNAME -e KASA_PASSWORD otelpower run /config/config.yaml --protocol native
#     (a directory, not the file: a missing file must not become a directory Docker creates)
#   docker run --rm otelpower check /etc/otelpower/config.example.yaml
#
# Runs as uid/gid 10001 and writes nothing at run time (bytecode is compiled at install time),
# so it works with a read-only root filesystem (Kubernetes readOnlyRootFilesystem: true).
# Probes: GET /healthz (liveness) and GET /readyz (readiness) on the Prometheus port 9464.
#
# Base image: official python, exact version and Debian release, pinned by the digest of its
# multi-platform index (amd64 + arm64). The image could not be pulled where this file was
# written: the digest is the one public projects record for python:3.12.15-slim-bookworm, and
# CI (docker buildx in .github/workflows/images.yaml) resolves it and fails if it does not
# exist. Bump tag and digest together, e.g. from
# `docker buildx imagetools inspect python:3.12.N-slim-bookworm` (3.12.16 is out).
ARG PYTHON_IMAGE=python:3.12.15-slim-bookworm@sha256:54c85f3c47607a77f32adec749d3c81d1348bf25833671f512b26a9b6d778cb3

# --- builder: the venv, built by the same script `make image-install-check` runs ------------
FROM ${PYTHON_IMAGE} AS builder
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY tools/image-install.sh tools/image-build-requirements.txt tools/
COPY otelpower/ otelpower/
# Runtime deps from requirements.lock (--require-hashes, wheels only: no compiler needed),
# then the otelpower wheel built here, --no-deps. The venv must keep this path in the final
# stage (its scripts' shebangs point at it). Behind a TLS-inspecting proxy, hand pip the
# proxy's CA without baking it into a layer: `--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt
# --build-arg PIP_CERT=/run/secrets/ca` (what `make images` does).
ARG PIP_CERT
# The version otelpower reports (`otelpower --version`): the context has no .git, so the
# release workflow passes the tag's (v1.2.3 -> 1.2.3); without it, 0.0.0+unknown.
ARG OTELPOWER_VERSION
RUN --mount=type=secret,id=ca tools/image-install.sh /opt/otelpower

# --- final: python + the venv; no compiler, no build backend, no uv ------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/otelpower/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 otelpower \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin otelpower
COPY --from=builder /opt/otelpower /opt/otelpower
COPY config.example.yaml /etc/otelpower/config.example.yaml
USER 10001:10001
EXPOSE 9464
# Liveness of the default Prometheus endpoint with the standard library only (Kubernetes uses
# its own probes); set OTELPOWER_HEALTHCHECK_URL when prometheus.host/port differ.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('OTELPOWER_HEALTHCHECK_URL', 'http://127.0.0.1:9464/healthz'), timeout=4)"]
ENTRYPOINT ["otelpower"]
CMD ["--help"]
