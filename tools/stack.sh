#!/usr/bin/env bash
# The whole pipeline on this machine, in the background:
#   emulated plugs -> otelpower run -> OTLP -> otelcol-otelpower -> VictoriaMetrics
#                                                              \-> Prometheus endpoint :8889
#
#   tools/stack.sh up      start everything, return once VictoriaMetrics has data
#   tools/stack.sh down    stop everything started by `up` (safe when nothing runs)
#   tools/stack.sh status  what runs
#
# Usually through make: `make stack`, `make stack-down`. Everything listens on 127.0.0.1.
# State in $RUN/stack: *.pid (one per process), *.log, plugs.yaml (written by the emulator),
# otelpower.yaml (that config with a 5 s poll), vm/ (VictoriaMetrics data), wal/ (the
# collector's remote-write WAL).
#
# Ports (environment, default): STACK_VM_PORT 8428, STACK_OTLP_GRPC_PORT 4317,
# STACK_OTLP_HTTP_PORT 4318, STACK_PROM_PORT 8889, STACK_HEALTH_PORT 13133,
# STACK_OTELCOL_METRICS_PORT 8888, STACK_OTELPOWER_PORT 9464.
#
# Matter: with the Matter test bed installed (`make setup`), the emulator also runs a virtual
# Matter plug that mirrors one emulated plug, commissioned into a local python-matter-server,
# and otelpower reads both paths (--protocol all). STACK_MATTER=0 turns that off.
set -euo pipefail

cd "$(dirname "$0")/.."
RUN=${RUN:-.run}
BIN=${BIN:-.venv/bin}
COLLECTOR=${COLLECTOR:-build/otelcol-otelpower}
COLLECTOR_CONFIG=${COLLECTOR_CONFIG:-collector-config/config.yaml}
VICTORIA_METRICS=${VICTORIA_METRICS:-/usr/bin/victoria-metrics}
STACK_DIR=$RUN/stack
MATTER=${STACK_MATTER:-auto}
if [[ $MATTER == auto ]]; then
	MATTER=0
	if [[ -x .tools/matter-server/bin/matter-server && -d otelpower/sim/matter_plug/node_modules/@matter/main ]]; then
		MATTER=1
	fi
fi

VM_PORT=${STACK_VM_PORT:-8428}
OTLP_GRPC_PORT=${STACK_OTLP_GRPC_PORT:-4317}
OTLP_HTTP_PORT=${STACK_OTLP_HTTP_PORT:-4318}
PROM_PORT=${STACK_PROM_PORT:-8889}
HEALTH_PORT=${STACK_HEALTH_PORT:-13133}
OTELCOL_METRICS_PORT=${STACK_OTELCOL_METRICS_PORT:-8888}
OTELPOWER_PORT=${STACK_OTELPOWER_PORT:-9464}
POLL_INTERVAL=${STACK_POLL_INTERVAL:-5}
EXPORT_INTERVAL_MS=${STACK_EXPORT_INTERVAL_MS:-5000}
DATA_TIMEOUT=${STACK_DATA_TIMEOUT:-90}

log() { printf 'stack: %s\n' "$*" >&2; }

# start NAME CMD...: run in the background (own session, so a Ctrl-C in the calling terminal
# does not reach it), output to NAME.log, PID to NAME.pid, start order to .order.
start() {
	local name=$1
	shift
	setsid "$@" >"$STACK_DIR/$name.log" 2>&1 </dev/null &
	echo $! >"$STACK_DIR/$name.pid"
	echo "$name" >>"$STACK_DIR/.order"
}

alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for WHAT SECONDS NAME CMD...: poll CMD every 0.5 s; fail (showing NAME.log) when NAME
# exits or after SECONDS.
wait_for() {
	local what=$1 seconds=$2 name=$3
	shift 3
	local deadline=$((SECONDS + seconds))
	until "$@" >/dev/null 2>&1; do
		if ! alive "$STACK_DIR/$name.pid"; then
			log "$name exited while waiting for $what; its log:"
			tail -n 30 "$STACK_DIR/$name.log" >&2 || true
			return 1
		fi
		if ((SECONDS >= deadline)); then
			log "no $what after ${seconds}s; $name's log:"
			tail -n 30 "$STACK_DIR/$name.log" >&2 || true
			return 1
		fi
		sleep 0.5
	done
}

# Fresh samples only: .run/stack/vm keeps the data of earlier runs.
has_series() {
	curl -fsS "http://127.0.0.1:$VM_PORT/internal/force_flush" >/dev/null || true
	curl -fsS "http://127.0.0.1:$VM_PORT/api/v1/query" \
		--data-urlencode "query=timestamp(tplink_native_power_watts) > $STARTED_AT" |
		grep -q '"result":\[{'
}

stop_pid() {
	local file=$1 pid
	pid=$(cat "$file" 2>/dev/null || true)
	rm -f "$file"
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	log "$(basename "$file" .pid) (pid $pid) ignored SIGTERM for 10s; killing it"
	kill -KILL "$pid" 2>/dev/null || true
}

down() {
	[[ -d $STACK_DIR ]] || {
		log "nothing runs"
		return 0
	}
	local names=()
	[[ -f $STACK_DIR/.order ]] && mapfile -t names < <(tac "$STACK_DIR/.order")
	local name
	for name in "${names[@]}"; do
		[[ -f $STACK_DIR/$name.pid ]] && log "stopping $name" && stop_pid "$STACK_DIR/$name.pid"
	done
	local f
	for f in "$STACK_DIR"/*.pid; do # PID files not listed in .order
		[[ -e $f ]] && log "stopping $(basename "$f" .pid)" && stop_pid "$f"
	done
	rm -f "$STACK_DIR/.order"
	log "stopped (logs and data stay in $STACK_DIR)"
}

status() {
	local f found=0
	for f in "$STACK_DIR"/*.pid; do
		[[ -e $f ]] || continue
		found=1
		if alive "$f"; then
			echo "$(basename "$f" .pid): running (pid $(cat "$f"))"
		else
			echo "$(basename "$f" .pid): not running"
		fi
	done
	((found)) || echo "nothing runs"
}

up() {
	local missing=()
	[[ -x $BIN/otelpower ]] || missing+=("$BIN/otelpower (make setup)")
	[[ -x $COLLECTOR ]] || missing+=("$COLLECTOR (make collector)")
	[[ -x $VICTORIA_METRICS ]] || missing+=("$VICTORIA_METRICS (make victoria-metrics)")
	if ((${#missing[@]})); then
		log "missing: ${missing[*]}"
		return 1
	fi
	if compgen -G "$STACK_DIR/*.pid" >/dev/null; then
		log "a stack is (or was) running: stopping it first"
		down
	fi
	local port
	for port in "$VM_PORT" "$OTLP_GRPC_PORT" "$OTLP_HTTP_PORT" "$PROM_PORT" "$HEALTH_PORT" \
		"$OTELCOL_METRICS_PORT" "$OTELPOWER_PORT"; do
		if port_busy "$port"; then
			log "port $port on 127.0.0.1 is in use (a system victoria-metrics service? set STACK_*_PORT)"
			return 1
		fi
	done
	mkdir -p "$STACK_DIR"
	rm -f "$STACK_DIR/.order" "$STACK_DIR/plugs.yaml" "$STACK_DIR/otelpower.env"
	trap 'log "start failed; stopping what started"; down' ERR

	log "VictoriaMetrics on 127.0.0.1:$VM_PORT (data in $STACK_DIR/vm)"
	start victoria-metrics "$VICTORIA_METRICS" \
		-httpListenAddr="127.0.0.1:$VM_PORT" \
		-storageDataPath="$STACK_DIR/vm" \
		-retentionPeriod=30d \
		-search.latencyOffset=2s \
		-loggerLevel=WARN
	wait_for "VictoriaMetrics health" 30 victoria-metrics \
		curl -fsS "http://127.0.0.1:$VM_PORT/health"

	log "collector (OTLP 127.0.0.1:$OTLP_GRPC_PORT)"
	start otelcol env \
		OTLP_GRPC_ENDPOINT="127.0.0.1:$OTLP_GRPC_PORT" \
		OTLP_HTTP_ENDPOINT="127.0.0.1:$OTLP_HTTP_PORT" \
		VM_REMOTE_WRITE_URL="http://127.0.0.1:$VM_PORT/api/v1/write" \
		PRW_WAL_DIR="$STACK_DIR/wal" \
		PRW_RETRY_MAX_INTERVAL=5s \
		PROM_EXPORTER_ENDPOINT="127.0.0.1:$PROM_PORT" \
		HEALTH_ENDPOINT="127.0.0.1:$HEALTH_PORT" \
		OTELCOL_METRICS_HOST=127.0.0.1 \
		OTELCOL_METRICS_PORT="$OTELCOL_METRICS_PORT" \
		"$COLLECTOR" --config "$COLLECTOR_CONFIG"
	wait_for "collector health" 30 otelcol curl -fsS "http://127.0.0.1:$HEALTH_PORT/"

	log "emulated plugs"
	local sim_args=() protocol=native
	if [[ $MATTER == 1 ]]; then
		sim_args=(--matter) protocol=all
		log "with a virtual Matter plug and a local Matter server"
	fi
	start sim "$BIN/otelpower" sim "${sim_args[@]}" --config-out "$STACK_DIR/plugs.yaml"
	wait_for "emulator config" 60 sim test -s "$STACK_DIR/plugs.yaml"
	sleep 0.2 # the table is printed right after the config is written
	"$BIN/python" - "$STACK_DIR/plugs.yaml" "$STACK_DIR/otelpower.yaml" \
		"$POLL_INTERVAL" "$OTELPOWER_PORT" <<-'EOF'
		import sys

		import yaml

		src, dst, interval, port = sys.argv[1:]
		with open(src) as f:
		    config = yaml.safe_load(f)
		config.setdefault("poll", {})["interval"] = float(interval)
		config["prometheus"] = {"host": "127.0.0.1", "port": int(port)}
		with open(dst, "w") as f:
		    yaml.safe_dump(config, f, sort_keys=False)
	EOF

	log "otelpower run --protocol $protocol (metrics on 127.0.0.1:$OTELPOWER_PORT)"
	start otelpower env \
		OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_GRPC_PORT" \
		OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
		OTEL_METRIC_EXPORT_INTERVAL="$EXPORT_INTERVAL_MS" \
		"$BIN/otelpower" run "$STACK_DIR/otelpower.yaml" --protocol "$protocol" \
		--prometheus-port "$OTELPOWER_PORT"

	log "waiting for tplink_native_power_watts in VictoriaMetrics (at most ${DATA_TIMEOUT}s)"
	local t0=$SECONDS
	STARTED_AT=$(date +%s)
	wait_for "series in VictoriaMetrics" "$DATA_TIMEOUT" otelpower has_series
	trap - ERR
	log "data is flowing ($((SECONDS - t0))s after otelpower started)"
	cat "$STACK_DIR/sim.log"
	cat <<-EOF

		VictoriaMetrics UI      http://localhost:$VM_PORT/vmui
		VictoriaMetrics query   http://localhost:$VM_PORT/api/v1/query?query=tplink_native_power_watts
		collector /metrics      http://localhost:$PROM_PORT/metrics
		collector health        http://localhost:$HEALTH_PORT/
		collector own metrics   http://localhost:$OTELCOL_METRICS_PORT/metrics
		otelpower /metrics      http://localhost:$OTELPOWER_PORT/metrics
		logs and PIDs           $STACK_DIR/*.log, $STACK_DIR/*.pid
		stop                    make stack-down
	EOF
}

case ${1:-} in
up) up ;;
down) down ;;
status) status ;;
*)
	echo "usage: $0 up|down|status" >&2
	exit 2
	;;
esac
