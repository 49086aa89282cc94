#!/usr/bin/env bash
# The main job: installs the build dependencies, builds libkotte and starts
# kotte-server on the embedded default backend (sessions and users as files
# under ./data), listening on KOTTE_SERVER_HOST:KOTTE_SERVER_PORT
# (0.0.0.0:8000). Stop it with Ctrl-C or SIGTERM. On first start it creates
# ./data/users with the user admin (password: $ADMIN_PASSWORD, or "admin").
set -eu
cd "$(dirname "$0")/.."
bash tests/deps.sh build
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DKOTTE_BUILD_TESTS=OFF -DKOTTE_BUILD_BENCH=OFF >/dev/null
cmake --build build-release -j"$(nproc)" >/dev/null
export SESSION_STORAGE_TYPE="${SESSION_STORAGE_TYPE:-json_file}"
export SESSION_STORAGE_PATH="${SESSION_STORAGE_PATH:-./data/sessions.journal}"
export KOTTE_USERS_FILE="${KOTTE_USERS_FILE:-./data/users}"
port="${KOTTE_SERVER_PORT:-8000}"
for a in "$@"; do [ "${prev:-}" = --port ] && port=$a; prev=$a; done
echo "kotte-server: starting on port $port (sessions: $SESSION_STORAGE_TYPE under ./data); log in with" >&2
echo "  curl -c /tmp/kotte.jar -H 'Content-Type: application/json' -d '{\"username\":\"admin\",\"password\":\"admin\"}' http://127.0.0.1:$port/api/v1/auth/login" >&2
exec ./build-release/examples/kotte-server/kotte-server "$@"
