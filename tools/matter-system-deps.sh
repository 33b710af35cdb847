#!/usr/bin/env bash
# System pieces of the Matter test bed (run by `make matter-deps`, so by `make demo` and
# `make test`; quick and silent when all is there):
#   - Node.js >= 20.19 (or >= 22.13) with npm: matter.js, the virtual Matter plug
#   - libnl-route-3-200: the CHIP SDK inside python-matter-server links against it
#   - a writable /data: the CHIP SDK keeps its chip_*.ini files there. The path is compiled
#     into the SDK (home-assistant-chip-core): python-matter-server's --storage-path moves only
#     its own files, and the SDK fails to start when it cannot write /data.
# When something is missing, this first says what it will install and why it needs root; as
# root it then installs the Debian package and creates /data; otherwise it prints the commands
# to run (Node.js is never installed here: Debian before trixie ships one too old).
# The product alone needs none of this: `make install`.
set -euo pipefail

as_root() { [ "$(id -u)" = 0 ]; }
have_apt() { command -v apt-get >/dev/null 2>&1; }

node_problem=""
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	node_problem="not found"
elif ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a===22&&b>=13)||(a===20&&b>=19)||a===21?0:1)'; then
	node_problem="$(node --version) is too old for matter.js 0.17"
fi
need_libnl=0
/sbin/ldconfig -p 2>/dev/null | grep -q 'libnl-route-3\.so\.200' || need_libnl=1
need_data=0
{ [ -d /data ] && [ -w /data ]; } || need_data=1

if [ -z "$node_problem" ] && [ "$need_libnl" = 0 ] && [ "$need_data" = 0 ]; then
	exit 0
fi

# --- what is missing, and why ---------------------------------------------------------------
echo "The Matter test bed (the virtual Matter plug of make demo; make test) needs, beyond .venv:"
if [ -n "$node_problem" ]; then
	echo "  - Node.js >= 20.19 (or >= 22.13) with npm, to run the matter.js virtual plug: $node_problem"
fi
if [ "$need_libnl" = 1 ]; then
	echo "  - libnl-route-3-200 (Debian package), which python-matter-server's CHIP SDK links against"
fi
if [ "$need_data" = 1 ]; then
	echo "  - a writable /data, where the CHIP SDK keeps chip_*.ini (a path compiled into it)"
fi
if as_root; then
	echo "Running as root: installing what a package or a directory provides now."
else
	echo "Installing those needs root, and this runs as $(id -un): run the commands below, then make again."
fi
echo "(Only the product, no test bed, no root: make install)"

missing=0
if [ -n "$node_problem" ]; then
	echo "error: Node.js >= 20.19 with npm is required: Debian trixie's nodejs and npm packages," \
		"NodeSource's nodejs, or nvm; then re-run make" >&2
	missing=1
fi
if [ "$need_libnl" = 1 ]; then
	if as_root && have_apt; then
		echo "installing libnl-route-3-200 (apt-get)"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -qq libnl-route-3-200 >/dev/null 2>&1 ||
			{ apt-get update -qq && apt-get install -y -qq libnl-route-3-200 >/dev/null; }
	else
		echo "error: libnl-route-3-200 is missing; run: sudo apt-get install libnl-route-3-200" >&2
		missing=1
	fi
fi
if [ "$need_data" = 1 ]; then
	if as_root; then
		echo "creating /data (mode 0755)"
		install -d -m 0755 /data
	else
		# owned by this user, not world-writable
		# an existing /data may be a real data mount: never recursive, nothing under it changes
		if [ -e /data ]; then fix="sudo chown $(id -un) /data (not -R: only the directory itself)"; else fix="sudo install -d -o $(id -un) -m 0755 /data"; fi
		echo "error: the CHIP SDK needs a writable /data; run: $fix" >&2
		missing=1
	fi
fi

exit "$missing"
