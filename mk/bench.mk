# Benchmarks (issues 7, 19): every figure in one run, printed as a table and JSON lines.
#
#   make bench                  all figures (~85 min: the memory run alone is 60 min)
#   make bench BENCH_ARGS=...   e.g. BENCH_ARGS="--minutes 8 --outage 120 --skip-pipeline" for a quick look
#
# bench/README.md explains each figure; docs/performance.md quotes a run.

BENCH_ARGS ?=

##@ Performance (mk/bench.mk)
.PHONY: bench
bench: setup collector victoria-metrics ## every performance figure, ~85 min (needs: Node, Go, root; bench/README.md)
	@mkdir -p $(RUN)
	set -o pipefail; $(BIN)/python bench/run.py $(BENCH_ARGS) | tee $(RUN)/bench.txt

# The long soak (issue 8): the same test as in `make test`, with 2,880 poll cycles (12 hours
# of operation at the default 15 s interval, run at 0.5 s) over the same 300 plugs (in a child process).
SOAK_CYCLES ?= 2880
SOAK_PLUGS ?= 300

.PHONY: soak
soak: setup ## the long soak: 300 plugs, 2,880 poll cycles (12 h of operation compressed)
	OTELPOWER_SOAK_CYCLES=$(SOAK_CYCLES) OTELPOWER_SOAK_PLUGS=$(SOAK_PLUGS) \
	  $(BIN)/pytest -q -s tests/test_soak.py
