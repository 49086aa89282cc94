#!/usr/bin/env bash
# The touch interval and the session cache, measured in one run on one
# throw-away PostgreSQL 15 with fsync on (tests/pg/pg.sh --durable), each
# figure beside the reference it is compared with:
#
#   1. kotte-server, wrk on GET /api/v1/session/status with a valid cookie
#      (tests/bench/server/wrk.sh), in rounds that alternate:
#        memory backend (the reference of the cache),
#        postgresql with SESSION_TOUCH_INTERVAL=0 (every read writes: the
#          reference of the touch interval),
#        postgresql with the default touch interval, SESSION_CACHE=false,
#        postgresql with the default touch interval, SESSION_CACHE=true;
#   2. bench_pg_sessions: gets inside the touch interval (one SELECT each)
#      at 8 and 32 in flight, without and with pipelining (then the reads
#      of a loop turn are gathered into a few statements), beside pgbench -M prepared
#      -j 1 running the backend's very SELECT with as many clients, and
#      beside pgbench's own pipeline mode with 8 in flight (the ceiling of
#      pipelining on the machine);
#   3. bench_visibility: 1000 logouts on one process while another reads
#      the same sessions through its cache: p50/p99/max of the time until
#      it answers "no session", and reads served from the cache after it
#      had learned of the delete (must be 0).
#
#   bash tests/bench/session_cache.sh [SECONDS] [ROUNDS]    (defaults 5 and 3)
#
# Each figure is the median of ROUNDS rounds. Builds a Release tree in
# build-bench. Takes about 4 minutes on the 2-core machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
secs=${1:-5}
rounds=${2:-3}
command -v wrk >/dev/null || { echo "wrk is not installed (Debian: apt-get install wrk)"; exit 1; }

build=build-bench
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DKOTTE_BUILD_BENCH=ON >/dev/null
cmake --build "$build" -j2 --target kotte-server bench_pg_sessions bench_visibility pg_dump_sql >/dev/null

eval "$(bash tests/pg/pg.sh start --durable)"
work=$(mktemp -d /tmp/kotte-bench-cache-XXXXXX)
trap 'bash tests/pg/pg.sh stop "$KOTTE_TEST_PG_DIR" >/dev/null 2>&1; rm -rf "$work"' EXIT
ci=$KOTTE_TEST_PG_CONNINFO
results=$work/results.txt
: >"$results"

# ---- 1. kotte-server ---------------------------------------------------------------
export KOTTE_SERVER_BIN=$root/$build/examples/kotte-server/kotte-server
export DB_HOST=$KOTTE_TEST_PG_DIR DB_PORT=$KOTTE_TEST_PG_PORT DB_NAME=kotte DB_USER=kotte_app
export SESSION_SECRET_KEY=session-cache-benchmark-secret
export WRK_DURATION=${secs}s
server_case() { # name backend env...
  local name=$1 backend=$2 rps
  shift 2
  rps=$(env "$@" bash tests/bench/server/wrk.sh "$backend" | sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p')
  echo "RESULT server $name ${rps%.*}" | tee -a "$results" >&2
}
for ((round = 0; round < rounds; round++)); do
  server_case memory memory
  server_case touch0 postgresql SESSION_TOUCH_INTERVAL=0 SESSION_CACHE=false
  server_case touch postgresql SESSION_CACHE=false
  server_case cache postgresql SESSION_CACHE=true
done

# ---- 2. gets inside the touch interval beside pgbench's SELECT -------------------------
"$build/tests/pg_dump_sql" | sed -n 3p >"$work/select.sql"
psql "$ci" -X -q -v ON_ERROR_STOP=1 -c "INSERT INTO kotte_sessions (session_id, user_id, data,
  created_at, last_activity, expires_at, max_expires_at, idle_timeout_seconds)
  SELECT g::text, 'pgbench', '{\"csrf_token\":\"x\",\"graph_context\":null}', now(), now(),
         now() + interval '1 day', now() + interval '1 day', 1800
  FROM generate_series(1, 10000) g"
now=$(psql "$ci" -X -At -c "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00\"')")
{ echo '\set id random(1, 10000)'
  sed -e 's/\$1/:id/g; s/\$2/:now/g' "$work/select.sql"; } >"$work/pgbench-select.sql"
for depth in 2 4; do # the same SELECT, DEPTH of them in one pipeline (pgbench >= 14)
  { for ((i = 1; i <= depth; i++)); do echo "\\set id$i random(1, 10000)"; done
    echo '\startpipeline'
    for ((i = 1; i <= depth; i++)); do sed -e "s/\\\$1/:id$i/g; s/\\\$2/:now/g; s/\$/;/" "$work/select.sql"; done
    echo '\endpipeline'; } >"$work/pgbench-pipe$depth.sql"
done
# the sessions bench_pg_sessions reads, created once; its clock stops at
# the start of each run and the interval is the whole idle timeout, so
# every get is the SELECT above
export KOTTE_BENCH_IDS=$work/ids KOTTE_BENCH_TOUCH_S=1800
KOTTE_BENCH_ONLY=none "$build/tests/bench/bench_pg_sessions" "$ci" 1 10000 >/dev/null
for ((round = 0; round < rounds; round++)); do
  for c in 8 32; do
    KOTTE_BENCH_ONLY="get:$c:pool" "$build/tests/bench/bench_pg_sessions" "$ci" "$secs" 10000 |
      sed -n "s/^RESULT op=get conc=$c mode=pool ops_s=\([0-9]*\).*/RESULT pg pool$c \1/p" |
      tee -a "$results" >&2
    tps=$(pgbench -n -M prepared -c "$c" -j 1 -T "$secs" -D "now=$now" -f "$work/pgbench-select.sql" \
            "$ci" 2>&1 | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p')
    echo "RESULT pg pgbench$c ${tps%.*}" | tee -a "$results" >&2
  done
  for c in 8 32; do
    KOTTE_BENCH_ONLY="get:$c:pipeline" "$build/tests/bench/bench_pg_sessions" "$ci" "$secs" 10000 |
      sed -n "s/^RESULT op=get conc=$c mode=pipeline ops_s=\([0-9]*\).*/RESULT pg pipeline$c \1/p" |
      tee -a "$results" >&2
  done
  # pgbench's own pipeline mode with 8 in flight (2 clients x 4 and 4 x 2;
  # the better one is the reference): what pipelining buys on this machine
  # with a client that does nothing but send the SELECT
  for cd in "2 4" "4 2"; do
    set -- $cd
    tps=$(pgbench -n -M prepared -c "$1" -j 1 -T "$secs" -D "now=$now" -f "$work/pgbench-pipe$2.sql" \
            "$ci" 2>&1 | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p')
    tps=${tps%.*}
    echo "RESULT pg pgbenchpipe8x$1 $((${tps:-0} * $2))" | tee -a "$results" >&2
  done
done

# ---- 3. visibility across processes -------------------------------------------------
"$build/tests/bench/bench_visibility" "$ci" 1000 | tee "$work/visibility.txt" >&2

/usr/bin/python3 - "$results" "$work/visibility.txt" "$secs" "$rounds" <<'PY'
import re, statistics, sys
results, vis, secs, rounds = sys.argv[1:5]
runs = {}
for line in open(results):
    m = re.match(r"RESULT (\w+) (\w+) (\d+)", line)
    if m:
        runs.setdefault((m[1], m[2]), []).append(int(m[3]))
r = {k: int(statistics.median(v)) for k, v in runs.items()}
def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"
print()
print(f"median of {rounds} rounds of {secs} s; every round:")
for k in sorted(runs):
    print(f"  {k[0]} {k[1]}: " + ", ".join(f"{x:,}" for x in runs[k]))
print()
print("kotte-server, wrk -t1 -c16 GET /api/v1/session/status (req/s):")
print()
print("| memory | pg, touch every read | pg, touch interval | pg, touch interval + cache | cache / memory | touch interval / touch every read |")
print("| ---: | ---: | ---: | ---: | ---: | ---: |")
s = lambda n: r.get(("server", n), 0)
print(f"| {s('memory'):,} | {s('touch0'):,} | {s('touch'):,} | {s('cache'):,} | "
      f"{ratio(s('cache'), s('memory'))} | {ratio(s('touch'), s('touch0'))} |")
print()
print("gets inside the touch interval (one SELECT) vs pgbench -M prepared -j 1 with that SELECT (ops/s):")
print()
print("| in flight | libkotte pool | libkotte pipelined | pgbench | pool / pgbench | pipelined / pgbench |")
print("| ---: | ---: | ---: | ---: | ---: | ---: |")
for c in (8, 32):
    pool, pipe, pgb = r.get(("pg", f"pool{c}"), 0), r.get(("pg", f"pipeline{c}"), 0), r.get(("pg", f"pgbench{c}"), 0)
    print(f"| {c} | {pool:,} | {f'{pipe:,}' if pipe else '-'} | {pgb:,} | {ratio(pool, pgb)} | {ratio(pipe, pgb) if pipe else '-'} |")
print()
pp = max(r.get(("pg", "pgbenchpipe8x2"), 0), r.get(("pg", "pgbenchpipe8x4"), 0))
print("pipelined at 8 in flight vs pgbench's own pipeline mode (\\startpipeline, the better of")
print("2 clients x 4 and 4 x 2 queries per pipeline), the ceiling pipelining reaches on this machine (ops/s):")
print()
print("| libkotte pipelined | pgbench pipelined | pgbench | libkotte pipelined / pgbench pipelined | pgbench pipelined / pgbench |")
print("| ---: | ---: | ---: | ---: | ---: |")
p8, g8 = r.get(("pg", "pipeline8"), 0), r.get(("pg", "pgbench8"), 0)
print(f"| {p8:,} | {pp:,} | {g8:,} | {ratio(p8, pp)} | {ratio(pp, g8)} |")
print()
v = open(vis).read().strip()
m = dict(kv.split("=") for kv in v.split()[2:])
print("visibility of a logout across processes (time from B's acknowledged delete to A's \"no session\"):")
print()
print("| logouts | p50 | p99 | max | reads by A | of them from its cache | found after A saw it gone |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
print(f"| {m['logouts']} | {float(m['p50_ms']):.2f} ms | {float(m['p99_ms']):.2f} ms | {float(m['max_ms']):.2f} ms | "
      f"{int(m['reads']):,} | {int(m['cache_hits']):,} | {m['found_after_gone']} |")
PY
