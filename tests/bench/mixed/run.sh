#!/usr/bin/env bash
# kotte-server against Kotte's Python backend on the routes the mixed
# overlays send to kotte-server (compare.py), one run, a Markdown table of
# requests per second, latency and the ratio. The figures in k8s/README.md
# ("The mixed overlays") come from it.
#
#   KOTTE_SUITE_DIR=/tmp/kotte-suite-x bash tests/bench/mixed/run.sh [--rounds 3 --duration 5s --connections 16]
#
# Builds a Release kotte-server in build-release unless KOTTE_SERVER_BIN
# names one, and the SWIG module in build-py unless KOTTE_BUILD_PY names a
# build that has it. Kotte's real backend needs KOTTE_SUITE_DIR (a
# kotte-suite.sh cache); without it the Python side is the stand-in of
# Kotte's app, and the table says so.
set -eu
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
command -v wrk >/dev/null || { echo "wrk is not installed (Debian: apt-get install wrk)"; exit 1; }
bin=${KOTTE_SERVER_BIN:-}
if [ -z "$bin" ]; then
  cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DKOTTE_BUILD_TESTS=OFF \
    -DKOTTE_BUILD_BENCH=OFF >/dev/null
  cmake --build build-release -j2 --target kotte-server >/dev/null
  bin=$root/build-release/examples/kotte-server/kotte-server
fi
build_py=${KOTTE_BUILD_PY:-$root/build-py}
if ! ls "$build_py"/bindings/python/libkotte/*.so >/dev/null 2>&1; then
  cmake -S . -B "$build_py" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKOTTE_BUILD_PYTHON=ON \
    -DKOTTE_BUILD_TESTS=OFF -DKOTTE_BUILD_BENCH=OFF -DKOTTE_BUILD_EXAMPLES=OFF \
    -DPython3_EXECUTABLE=/usr/bin/python3 >/dev/null
  cmake --build "$build_py" -j2 --target kotte_python >/dev/null
fi
work=$(mktemp -d /var/tmp/kotte-bench-mixed-XXXXXX)
chmod 755 "$work"
. tests/fault/stop_started.sh
cleanup() { stop_started "$work"; rm -rf "$work"; }
trap cleanup EXIT
/usr/bin/python3 tests/bench/mixed/compare.py --workdir "$work" --server-bin "$bin" \
  --build-py "$build_py" "$@"
