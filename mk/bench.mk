# Benchmarks (issue 7): every figure in one run, printed as a table and JSON lines.
#
#   make bench                  all figures (~20 min: the memory run alone is 10 min)
#   make bench BENCH_ARGS=...   e.g. BENCH_ARGS="--minutes 2 --skip-pipeline" for a quick look
#
# bench/README.md explains each figure; the README's performance section quotes a run.

BENCH_ARGS ?=

.PHONY: bench
bench: setup collector victoria-metrics
	@mkdir -p $(RUN)
	set -o pipefail; $(BIN)/python bench/run.py $(BENCH_ARGS) | tee $(RUN)/bench.txt
