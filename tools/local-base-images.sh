#!/usr/bin/env bash
# Base images from Debian's own packages, for building and running the images where no
# container registry is reachable: mmdebstrap of Debian trixie (Python 3.13), then
# `docker import`. Real builds keep the official bases the Dockerfiles pin; `make images`
# passes these as the Dockerfiles' base build arguments instead.
#
#   $PREFIX/python:trixie   python3, python3-venv, ca-certificates, tzdata (the otelpower image,
#                           and the collector's runtime: a static binary needs only the last two)
#   $PREFIX/golang:trixie   golang-go (1.24) with GOTOOLCHAIN=auto: the collector's go.mod
#                           asks for a newer Go, which go fetches from the Go module proxy
#
# An image that exists is kept (delete it to rebuild). mmdebstrap is installed with apt-get
# when missing (as root).
#
#   tools/local-base-images.sh        (DOCKER, PREFIX=otelpower-local, MIRROR=deb.debian.org)
set -euo pipefail

docker=${DOCKER:-docker}
prefix=${PREFIX:-otelpower-local}
mirror=${MIRROR:-http://deb.debian.org/debian}
suite=trixie
path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

if ! command -v mmdebstrap >/dev/null; then
	[ "$(id -u)" = 0 ] || { echo "error: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }
	echo "installing mmdebstrap (apt-get)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi

# base TAG PACKAGES [docker import --change ...]
base() {
	local tag=$1 packages=$2
	shift 2
	if "$docker" image inspect "$tag" >/dev/null 2>&1; then
		echo "$tag: present"
		return
	fi
	echo "$tag: mmdebstrap $suite ($packages) | docker import"
	mmdebstrap --quiet --variant=minbase --include="$packages" --aptopt='Acquire::Retries "3"' \
		"$suite" - "$mirror" | "$docker" import "$@" - "$tag" >/dev/null
}

base "$prefix/python:$suite" python3,python3-venv,ca-certificates,tzdata \
	--change "ENV PATH=$path"
base "$prefix/golang:$suite" golang-go,ca-certificates \
	--change "ENV GOPATH=/go" --change "ENV GOTOOLCHAIN=auto" --change "ENV PATH=/go/bin:$path"
