#!/usr/bin/env bash
# PostgreSQL session benchmark, all on one throw-away server in one run:
#
#   - libkotte: session get and update through the store, the PostgreSQL
#     backend and kotte_pg_pool (bench_pg_sessions), 1, 8 and 32 in flight,
#     without and with pipelining;
#   - pgbench -M prepared running the backend's very SQL (printed by
#     pg_dump_sql) with as many clients, on one thread (-j 1) like
#     libkotte's loop and asyncpg's event loop;
#   - asyncpg (Debian's python3-asyncpg) running the same statements;
#   - at 8 and 32 in flight also both C clients on two threads: libkotte
#     with two loops (a pool and store each) beside pgbench -j 2.
#
# Prints ops/s for each and the ratios. Usage:
#   bash tests/bench/bench_pg.sh [SECONDS] [ROUNDS]
# (defaults 3 and 3: every client runs SECONDS per round, ROUNDS rounds
# per case, the clients' order rotating from round to round; the table
# shows each client's median round, so one noisy round on a shared machine
# does not decide a ratio; about 7 minutes in all). Builds a Release tree
# in build-pg/rel. The server runs with fsync off (as the test suites do),
# so the figures measure CPU and round trips, not the disk.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
secs=${1:-3}
rounds=${2:-3}
bash tests/deps.sh test >/dev/null

build=build-pg/rel
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DKOTTE_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j2 --target bench_pg_sessions pg_dump_sql >/dev/null

eval "$(bash tests/pg/pg.sh start)"
work=$(mktemp -d /tmp/kotte-bench-XXXXXX)
trap 'bash tests/pg/pg.sh stop "$KOTTE_TEST_PG_DIR"; rm -rf "$work"' EXIT
ci=$KOTTE_TEST_PG_CONNINFO
psql_app() { psql "$ci" -X -q -v ON_ERROR_STOP=1 "$@"; }

"$build/tests/pg_dump_sql" >"$work/sql"
sed -n 1p "$work/sql" >"$work/get.sql"
sed -n 2p "$work/sql" >"$work/update.sql"

# Rows for pgbench and asyncpg, keyed '1'..'10000' (they cannot compute the
# keyed hash the backend uses for its own rows).
psql_app -c "INSERT INTO kotte_sessions (session_id, user_id, data, created_at, last_activity,
  expires_at, max_expires_at, idle_timeout_seconds)
  SELECT g::text, 'pgbench', '{\"csrf_token\":\"x\",\"graph_context\":null}', now(), now(),
         now() + interval '1 day', now() + interval '1 day', 1800
  FROM generate_series(1, 10000) g"
now=$(psql_app -At -c "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00\"')")

dsn="postgresql://kotte_app@/kotte?host=$KOTTE_TEST_PG_DIR&port=$KOTTE_TEST_PG_PORT"
for op in get update; do
  # $1 -> :id, $2 -> :now, $3 -> :patch, $4 -> :max (pgbench's variables)
  { echo '\set id random(1, 10000)'
    sed -e 's/\$1/:id/g; s/\$2/:now/g; s/\$3/:patch/g; s/\$4/:max/g' "$work/$op.sql"; } >"$work/pgbench-$op.sql"
done
# One case at a time, its clients back to back, so that they meet the
# server in the same state (table, autovacuum, the rest of the machine);
# each round starts with a different client.
# The sliding get of every client here is the UPDATE (pg_dump_sql's first
# line): the store writes each slide (touch interval 0), as pgbench does.
# tests/bench/session_cache.sh measures gets inside the touch interval.
export KOTTE_BENCH_TOUCH_S=0
run_client() { # op conc client
  local op=$1 c=$2 who=$3 j
  case $who in
    pool|pipeline|pool2)
      KOTTE_BENCH_ONLY="$op:$c:${who%2}" KOTTE_BENCH_IDS="$work/ids" \
      KOTTE_BENCH_THREADS=$([ "$who" = pool2 ] && echo 2 || echo 1) \
        "$build/tests/bench/bench_pg_sessions" "$ci" "$secs" 10000 | grep RESULT ;;
    pgbench|pgbench2)
      j=$([ "$who" = pgbench2 ] && echo 2 || echo 1)
      tps=$(pgbench -n -M prepared -c "$c" -j "$j" -T "$secs" -D "now=$now" -D 'patch={"k": 1}' \
              -D max=65536 -f "$work/pgbench-$op.sql" "$ci" 2>&1 |
            sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p')
      echo "RESULT op=$op conc=$c mode=$who ops_s=${tps%.*}" ;;
    asyncpg)
      /usr/bin/python3 tests/bench/bench_pg_asyncpg.py "$dsn" "$secs" "$work/get.sql" \
        "$work/update.sql" "$op" "$c" ;;
  esac
}
# the sessions bench_pg_sessions reads and updates, created once
KOTTE_BENCH_ONLY=none KOTTE_BENCH_IDS="$work/ids" \
  "$build/tests/bench/bench_pg_sessions" "$ci" 1 10000 >/dev/null
for op in get update; do
  for c in 1 8 32; do
    clients="pool pipeline pgbench asyncpg pool2 pgbench2"
    [ "$c" = 1 ] && clients="pool pgbench asyncpg"
    set -- $clients
    for ((round = 0; round < rounds; round++)); do
      for ((k = 0; k < $#; k++)); do
        idx=$(( (k + round) % $# + 1 ))
        run_client "$op" "$c" "${!idx}" | tee -a "$work/results.txt" >&2
      done
    done
  done
done

/usr/bin/python3 - "$work" <<'PY'
import re, sys, os
work = sys.argv[1]
import statistics
runs = {}
for line in open(os.path.join(work, "results.txt")):
    m = re.match(r"RESULT op=(\w+) conc=(\d+) mode=(\w+) ops_s=(\d+)", line)
    if m:
        runs.setdefault((m[1], int(m[2]), m[3]), []).append(int(m[4]))
r = {k: int(statistics.median(v)) for k, v in runs.items()}
print()
print("median of", max(len(v) for v in runs.values()), "rounds per client; every round:")
for k in sorted(runs):
    print(f"  {k[0]} {k[1]} {k[2]}: " + ", ".join(f"{x:,}" for x in runs[k]))
print()
print("one client thread each (libkotte's loop, pgbench -j 1, asyncpg's event loop):")
print()
print("| op | in flight | libkotte pool | libkotte pipelined | pgbench -M prepared | asyncpg | pool / pgbench | pipelined / pgbench | pool / asyncpg | best / asyncpg |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"
for op in ("get", "update"):
    for c in (1, 8, 32):
        pool = r.get((op, c, "pool"), 0)
        pipe = r.get((op, c, "pipeline"), 0)
        pgb = r.get((op, c, "pgbench"), 0)
        apg = r.get((op, c, "asyncpg"), 0)
        best = max(pool, pipe)
        print(f"| {op} | {c} | {pool:,} | {pipe:,}" if pipe else f"| {op} | {c} | {pool:,} | -", end="")
        print(f" | {pgb:,} | {apg:,} | {ratio(pool, pgb)} | {ratio(pipe, pgb)} | {ratio(pool, apg)} | {ratio(best, apg)} |")
print()
print("two client threads (libkotte: two loops, a pool and store each; pgbench -j 2):")
print()
print("| op | in flight | libkotte pool, 2 loops | pgbench -M prepared -j 2 | pool / pgbench |")
print("| --- | ---: | ---: | ---: | ---: |")
for op in ("get", "update"):
    for c in (8, 32):
        pool = r.get((op, c, "pool2"), 0)
        pgb = r.get((op, c, "pgbench2"), 0)
        print(f"| {op} | {c} | {pool:,} | {pgb:,} | {ratio(pool, pgb)} |")
PY
