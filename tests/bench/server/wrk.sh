#!/usr/bin/env bash
# wrk against GET /api/v1/session/status with a valid session cookie: the
# cost of one authenticated request (cookie parse, session get with its
# idle-expiry slide, JSON answer) on each session backend.
#
#   bash tests/bench/server/wrk.sh [memory json_file postgresql ...]
#
# Builds a Release kotte-server in build-release (as examples/run.sh does)
# unless KOTTE_SERVER_BIN names one. For postgresql it starts a throw-away
# PostgreSQL 15 (tests/pg/pg.sh, fsync on) unless DB_HOST is set; then
# BENCH_USER/BENCH_PASSWORD (admin/bench-password) must be able to log in. WRK_THREADS (1), WRK_CONNECTIONS (16)
# and WRK_DURATION (10s) tune the load; the machine has 2 shared cores, so
# wrk and the server share them. postgresql needs PG_CONNINFO-style DB_*
# variables of a running server (tests/pg/pg.sh starts one).
#
# Kotte's rate limit (60 requests a minute per address) would refuse the
# load within a second, so it is off unless the caller turns it on, e.g. to
# measure its cost with limits no run reaches:
#   RATE_LIMIT_ENABLED=true RATE_LIMIT_PER_MINUTE=1000000000 \
#   RATE_LIMIT_PER_USER=1000000000 bash tests/bench/server/wrk.sh memory
# Any answer but 200 (a 429 among them) fails the run.
set -eu
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
backends=${*:-memory json_file}
threads=${WRK_THREADS:-1} conns=${WRK_CONNECTIONS:-16} duration=${WRK_DURATION:-10s}
bin=${KOTTE_SERVER_BIN:-}
if [ -z "$bin" ]; then
  cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DKOTTE_BUILD_TESTS=OFF \
    -DKOTTE_BUILD_BENCH=OFF >/dev/null
  cmake --build build-release -j2 --target kotte-server >/dev/null
  bin=$root/build-release/examples/kotte-server/kotte-server
fi
command -v wrk >/dev/null || { echo "wrk is not installed (Debian: apt-get install wrk)"; exit 1; }
user=${BENCH_USER:-admin} password=${BENCH_PASSWORD:-bench-password}
export RATE_LIMIT_ENABLED=${RATE_LIMIT_ENABLED:-false}
pg_started=
cleanup() { [ -n "$pg_started" ] && bash tests/pg/pg.sh stop "$KOTTE_TEST_PG_DIR" >/dev/null 2>&1 || true; }
trap cleanup EXIT
case " $backends " in
  *" postgresql "*)
    if [ -z "${DB_HOST:-}" ]; then
      eval "$(bash tests/pg/pg.sh start --durable)"
      pg_started=1
      export DB_HOST=$KOTTE_TEST_PG_DIR DB_PORT=$KOTTE_TEST_PG_PORT DB_NAME=kotte DB_USER=kotte_app
    fi
    export SESSION_SECRET_KEY=${SESSION_SECRET_KEY:-wrk-benchmark-session-secret}
    ;;
esac

for backend in $backends; do
  dir=$(mktemp -d /var/tmp/kotte-wrk.XXXXXX)
  (cd "$dir" && KOTTE_SERVER_HOST=127.0.0.1 KOTTE_SERVER_PORT=0 SESSION_STORAGE_TYPE=$backend \
     SESSION_STORAGE_PATH=$dir/sessions.journal KOTTE_USERS_FILE=$dir/users \
     ADMIN_PASSWORD=$password LOG_LEVEL=WARNING \
     exec "$bin" >"$dir/server.log" 2>&1) &
  pid=$!
  # LOG_LEVEL=WARNING keeps the access log out of the measurement; the
  # "listening" line (with the kernel-chosen port) is always logged.
  port=
  for _ in $(seq 100); do
    port=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$dir/server.log" 2>/dev/null | head -1)
    [ -n "$port" ] && break
    sleep 0.1
  done
  if [ -z "$port" ]; then echo "kotte-server ($backend) did not start:"; cat "$dir/server.log"; kill "$pid" 2>/dev/null; exit 1; fi
  url=http://127.0.0.1:$port
  cookie=$(curl -s -c - -H 'Content-Type: application/json' \
    -d "{\"username\":\"$user\",\"password\":\"$password\"}" "$url/api/v1/auth/login" |
    awk '$6 == "kotte_session" {print $7}')
  [ -n "$cookie" ] || { echo "login failed"; kill "$pid"; exit 1; }
  status=$(curl -s -o /dev/null -w '%{http_code}' -b "kotte_session=$cookie" "$url/api/v1/session/status")
  [ "$status" = 200 ] || { echo "session/status answered $status"; kill "$pid"; exit 1; }
  echo "=== backend: $backend (RATE_LIMIT_ENABLED=$RATE_LIMIT_ENABLED${RATE_LIMIT_PER_MINUTE:+ RATE_LIMIT_PER_MINUTE=$RATE_LIMIT_PER_MINUTE}${RATE_LIMIT_PER_USER:+ RATE_LIMIT_PER_USER=$RATE_LIMIT_PER_USER})"
  echo "\$ wrk -t$threads -c$conns -d$duration --latency -H 'Cookie: kotte_session=<signed cookie>' $url/api/v1/session/status"
  out=$(wrk -t"$threads" -c"$conns" -d"$duration" --latency -H "Cookie: kotte_session=$cookie" \
    "$url/api/v1/session/status") || { echo "wrk failed"; kill -TERM "$pid"; exit 1; }
  echo "$out" | sed -n '/Thread Stats/,$p'
  case "$out" in *"Non-2xx"*) echo "answers other than 200: not a valid run"; kill -TERM "$pid"; exit 1;; esac
  kill -TERM "$pid"
  wait "$pid" || { echo "kotte-server exited $?"; exit 1; }
  rm -rf "$dir"
done
