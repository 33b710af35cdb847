#!/usr/bin/env bash
# The install steps of the otelpower container image, in one place: the builder stage of the
# Dockerfile runs this, and `make image-install-check` (mk/images.mk) runs the very same steps
# on the host into a temporary directory and starts the result.
#
#   tools/image-install.sh PREFIX        (PYTHON=/path/to/python3.12 picks the interpreter)
#
# 1. a venv at PREFIX;
# 2. the runtime dependencies from requirements.lock (exported from uv.lock by
#    `make requirements`): exact versions, every file checked against its hash, wheels only
#    (nothing is compiled, so no compiler is needed anywhere);
# 3. otelpower itself, as a wheel built here without build isolation from the hashed build
#    backend in tools/image-build-requirements.txt (in a throwaway venv), installed --no-deps.
#    Its version: OTELPOWER_VERSION when set (the image build passes the git tag's, as the
#    build context has no .git), else the checkout's own from git (hatch-vcs), else 0.0.0+unknown.
# PREFIX ends up with the runtime dependencies and otelpower only: no build backend, no dev
# tools. pip compiles the .pyc files at install time, so nothing is written at run time.
set -euo pipefail

prefix=${1:?usage: tools/image-install.sh PREFIX}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

"$python" -c 'import sys; sys.exit(sys.version_info < (3, 12))' ||
	{ echo "error: $python is older than Python 3.12" >&2; exit 1; }
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' ||
	echo "warning: $python is not Python 3.12, the image's interpreter" >&2

"$python" -m venv "$prefix"
"$prefix/bin/python" -m pip install --no-cache-dir --require-hashes --only-binary=:all: \
	-r "$root/requirements.lock"

"$python" -m venv "$work/build-env"
"$work/build-env/bin/python" -m pip install --no-cache-dir --require-hashes --only-binary=:all: \
	-r "$root/tools/image-build-requirements.txt"
if [[ -n ${OTELPOWER_VERSION:-} ]]; then
	export SETUPTOOLS_SCM_PRETEND_VERSION=$OTELPOWER_VERSION  # hatch-vcs: only this build
fi
"$work/build-env/bin/python" -m pip wheel --no-cache-dir --no-deps --no-build-isolation \
	--wheel-dir "$work/dist" "$root"

"$prefix/bin/python" -m pip install --no-cache-dir --no-deps "$work"/dist/otelpower-*.whl
"$prefix/bin/python" -m pip check
