#!/usr/bin/env bash
# A docker engine for `make images`: the one that answers, else (as root) Debian's dockerd,
# installed with apt-get when missing and started here the way it works on these machines:
# no iptables, no bridge (containers run with --network host or none), vfs storage. Its log
# and PID go to $RUN/dockerd.log and $RUN/dockerd.pid; it keeps running for later builds.
#
#   tools/docker-engine.sh            (DOCKER=/path/to/docker picks the client)
set -euo pipefail

docker=${DOCKER:-docker}
run=${RUN:-.run}

answers() { "$docker" info >/dev/null 2>&1; }

answers && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "error: no docker engine answers ($docker info), and starting one needs root:" >&2
	echo "  dockerd --iptables=false --bridge=none --storage-driver=vfs" >&2
	exit 1
fi
if ! command -v dockerd >/dev/null; then
	echo "installing docker.io (apt-get)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
mkdir -p "$run"
echo "starting dockerd (log: $run/dockerd.log)"
nohup dockerd --iptables=false --bridge=none --storage-driver=vfs >"$run/dockerd.log" 2>&1 &
echo $! >"$run/dockerd.pid"
for _ in $(seq 240); do
	answers && exit 0
	kill -0 "$(cat "$run/dockerd.pid")" 2>/dev/null || break
	sleep 0.5
done
echo "error: dockerd did not come up; the end of $run/dockerd.log:" >&2
tail -20 "$run/dockerd.log" >&2
exit 1
