#!/usr/bin/env bash
# System pieces of the Matter test bed (run by `make matter-deps`; quick when all is there):
#   - Node.js >= 20.19 with npm (matter.js, the virtual plugs)
#   - libnl-route-3-200 (the CHIP SDK inside python-matter-server links against it)
#   - a writable /data (the CHIP SDK keeps its chip_*.ini files there)
# As root, missing Debian packages and /data are installed; otherwise this says what to run.
set -euo pipefail

missing=0
as_root() { [ "$(id -u)" = 0 ]; }

# --- Node.js -------------------------------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "error: Node.js >= 20.19 with npm is required for the virtual Matter plugs" >&2
	echo "       (e.g. the nodejs package of NodeSource, or nvm); then re-run make" >&2
	missing=1
elif ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a===22&&b>=13)||(a===20&&b>=19)||a===21?0:1)'; then
	echo "error: Node.js $(node --version) is too old for matter.js 0.17 (needs >= 20.19 or >= 22.13)" >&2
	missing=1
fi

# --- libnl-route-3-200 ---------------------------------------------------------------------
if ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libnl-route-3\.so\.200'; then
	if as_root && command -v apt-get >/dev/null 2>&1; then
		echo "installing libnl-route-3-200 (needed by the CHIP SDK)"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -qq libnl-route-3-200 >/dev/null 2>&1 ||
			{ apt-get update -qq && apt-get install -y -qq libnl-route-3-200 >/dev/null; }
	else
		echo "error: libnl-route-3-200 is missing; run: sudo apt-get install libnl-route-3-200" >&2
		missing=1
	fi
fi

# --- /data ---------------------------------------------------------------------------------
if [ ! -d /data ] || [ ! -w /data ]; then
	if as_root; then
		install -d -m 0755 /data
	else
		echo "error: the CHIP SDK needs a writable /data; run: sudo install -d -m 0777 /data" >&2
		missing=1
	fi
fi

exit "$missing"
