#!/usr/bin/env bash
# The stack-level fault run (tests/fault/fault_run.py does the work): two
# kotte-server and two Python (uvicorn, the drop-in) replicas on a PostgreSQL
# 15 primary with a streaming standby, behind nginx, under load; SIGKILL a
# replica, SIGTERM another, restart PostgreSQL, fail over to the standby;
# prints a table per fault and exits non-zero on any lost session, saved
# connection, returning logout, or failed request outside a fault window.
#
#   bash tests/fault/run.sh            # short: 1 round, 3 clients per group (the suite's)
#   bash tests/fault/run.sh --long     # 4 rounds (every replica killed and drained once), 6 clients
#   bash tests/fault/run.sh [--long] [fault_run.py options, e.g. --rounds 2 --proxy mixed]
#
# Binaries: KOTTE_SERVER_BIN (default build-asan/examples/kotte-server/kotte-server)
# and KOTTE_BUILD_PY (default build-py, the CMake build with the SWIG module);
# tests/run.sh builds both. Needs nginx, python3-uvicorn, python3-fastapi,
# postgresql-15 (tests/deps.d). Runs as root (PostgreSQL as `postgres`) or as
# a user. Everything it starts is stopped by pid at the end, also when the
# driver dies; logs stay in the printed work dir when the run fails (or with
# KOTTE_FAULT_KEEP=1).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
server_bin=${KOTTE_SERVER_BIN:-$root/build-asan/examples/kotte-server/kotte-server}
build_py=${KOTTE_BUILD_PY:-$root/build-py}
preset=(--rounds 1 --clients 3 --think 0.03 --pre 3 --settle 1 --witnesses 2 --budget 420)
if [ "${1:-}" = --long ]; then
  shift
  preset=(--rounds 4 --clients 6 --think 0.015 --pre 10 --settle 3 --witnesses 4 --budget 3000)
fi
[ -x "$server_bin" ] || { echo "fault run: no kotte-server at $server_bin (set KOTTE_SERVER_BIN)"; exit 1; }
ls "$build_py"/bindings/python/libkotte/_capi*.so >/dev/null 2>&1 ||
  ls "$build_py"/bindings/python/libkotte/*.so >/dev/null 2>&1 ||
  { echo "fault run: no SWIG module under $build_py (set KOTTE_BUILD_PY)"; exit 1; }
for tool in nginx /usr/bin/python3; do
  command -v "$tool" >/dev/null || { echo "fault run: $tool missing (bash tests/deps.sh)"; exit 1; }
done

work=$(mktemp -d /tmp/kotte-fault-XXXXXX)
chmod 755 "$work"
. tests/fault/stop_started.sh
cleanup() { stop_started "$work"; }
trap cleanup EXIT
echo "fault run: work dir $work"
/usr/bin/python3 tests/fault/fault_run.py --workdir "$work" --server-bin "$server_bin" \
  --build-py "$build_py" "${preset[@]}" "$@"
rc=$?
cleanup
[ "$rc" -eq 0 ] && [ -z "${KOTTE_FAULT_KEEP:-}" ] && rm -rf "$work"
exit "$rc"
