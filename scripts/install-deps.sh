#!/bin/sh
# Install the Debian packages inferd needs to build, run and test, but only
# those missing: with everything present it returns at once.
set -eu
# build: the daemon and the shim
PKGS="build-essential pkg-config libmicrohttpd-dev libcjson-dev libproc2-dev
libtorch-dev curl"
# tests: cmocka, pytest with requests, schema validation, fuzzing, memcheck,
# Prometheus (promtool and a real server) and its Python parser
PKGS="$PKGS libcmocka-dev python3-torch python3-pytest python3-requests
python3-yaml python3-jsonschema clang libclang-rt-14-dev valgrind
prometheus python3-prometheus-client"
# benchmarks: wrk, the Python baseline server's packages, jemalloc
PKGS="$PKGS wrk python3-fastapi python3-uvicorn python3-psutil libjemalloc2"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
