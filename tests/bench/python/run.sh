#!/usr/bin/env bash
# Builds the Python binding (build-py, RelWithDebInfo) and runs kotte_bench.py: the
# per-call overhead of the binding, then async get_session throughput at 8
# and 32 concurrent tasks on a throw-away PostgreSQL next to the same SQL
# through asyncpg (Debian's python3-asyncpg). Extra arguments go to
# kotte_bench.py (--seconds, --calls, --sessions); set PG_DURABLE=1 to run
# the server with fsync on (tests/pg/pg.sh --durable).
#
#   bash tests/bench/python/run.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
py=/usr/bin/python3
cmake -S . -B build-py -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKOTTE_BUILD_PYTHON=ON -DKOTTE_BUILD_TESTS=OFF \
  -DKOTTE_BUILD_BENCH=OFF -DKOTTE_BUILD_EXAMPLES=OFF -DPython3_EXECUTABLE=$py >/dev/null
cmake --build build-py -j"$(nproc)" --target kotte_python >/dev/null
args=()
[ "${PG_DURABLE:-0}" = 1 ] && args+=(--durable)
eval "$(bash tests/pg/pg.sh start "${args[@]}")"
trap 'bash tests/pg/pg.sh stop "$KOTTE_TEST_PG_DIR"' EXIT
PYTHONPATH="$root/build-py/bindings/python" "$py" tests/bench/python/kotte_bench.py "$@"
