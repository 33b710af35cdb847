# The Python package a release publishes (issue 33); .github/workflows/release.yaml runs these
# on a v* tag. Included by the main Makefile; it uses PYTHON, UV, BIN and $(BIN)/otelpower.
#
#   make dist            sdist and wheel into dist/ (uv build: the wheel is built from the
#                        sdist); the version is the git tag's (hatch-vcs, pyproject.toml)
#   make package-check   tests/test_package.py and tests/test_release.py: twine check
#                        (metadata, long description), the sdist's contents, the wheel
#                        installed with [native] into a fresh venv running --version,
#                        check and read against an emulated plug; the version rules and
#                        CHANGELOG.md. Builds into a temp dir, or checks DIST=dist.
# `make test` runs the same tests (pytest runs all of tests/).

.PHONY: dist package-check

##@ Release (mk/release.mk)
dist: $(UV) ## the sdist and wheel in dist/ (version from the git tag)
	rm -rf dist
	$(UV) build --quiet --out-dir dist --python $(PYTHON)
	@ls dist

package-check: $(BIN)/otelpower ## build, twine-check, install the wheel with [native] in a fresh venv and run it
	$(if $(DIST),OTELPOWER_DIST=$(abspath $(DIST))) $(BIN)/pytest -q tests/test_package.py \
	  tests/test_release.py
