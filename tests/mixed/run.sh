#!/usr/bin/env bash
# The mixed backend on one machine (tests/mixed/mixed_run.py does the work):
# nginx configured from the Ingresses of k8s/overlays/dev-mixed (rendered
# with kubectl kustomize) in front of one kotte-server and two Python
# replicas of the drop-in, on a PostgreSQL 15 of its own. Login, connect,
# graph routes, saved connections and logout through it; every answer from
# the server its path is routed to. Prints "mixed run (MODE): N passed, M failed".
#
#   bash tests/mixed/run.sh                   # stand-in of Kotte's app unless Kotte's is at hand
#   KOTTE_SUITE_DIR=/tmp/kotte-suite-x bash tests/mixed/run.sh --require-kotte
#
# The Python replicas run Kotte's real backend when KOTTE_SUITE_DIR names a
# kotte-suite.sh cache and Apache AGE is installed for PostgreSQL 15; the
# stand-in otherwise (as on CI), or a failure with --require-kotte.
# Binaries: KOTTE_SERVER_BIN (default build-asan/examples/kotte-server/kotte-server)
# and KOTTE_BUILD_PY (default build-py, the CMake build with the SWIG module).
# Needs nginx, python3-yaml, python3-uvicorn (tests/deps.d) and kubectl
# (tests/k8s/run.sh installs Debian's when there is none). Stops
# what it started by pid; keeps the work dir when the run fails.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
server_bin=${KOTTE_SERVER_BIN:-$root/build-asan/examples/kotte-server/kotte-server}
build_py=${KOTTE_BUILD_PY:-$root/build-py}
[ -x "$server_bin" ] || { echo "mixed run: no kotte-server at $server_bin (set KOTTE_SERVER_BIN)"; exit 1; }
ls "$build_py"/bindings/python/libkotte/*.so >/dev/null 2>&1 ||
  { echo "mixed run: no SWIG module under $build_py (set KOTTE_BUILD_PY)"; exit 1; }
for tool in nginx /usr/bin/python3; do
  command -v "$tool" >/dev/null || { echo "mixed run: $tool missing (bash tests/deps.sh)"; exit 1; }
done
command -v kubectl >/dev/null || { echo "mixed run: kubectl missing (bash tests/k8s/run.sh installs it)"; exit 1; }

work=$(mktemp -d /tmp/kotte-mixed-XXXXXX)
chmod 755 "$work"
. tests/fault/stop_started.sh
cleanup() { stop_started "$work"; }
trap cleanup EXIT
echo "mixed run: work dir $work"
/usr/bin/python3 tests/mixed/mixed_run.py --workdir "$work" --server-bin "$server_bin" \
  --build-py "$build_py" "$@"
rc=$?
cleanup
[ "$rc" -eq 0 ] && rm -rf "$work"
exit "$rc"
