#!/usr/bin/env bash
# Two migrations started at once, as two new backend pods of k8s/ run them
# in their init containers: both kotte-migrate processes exit 0, and the
# database ends with one schema (every migration recorded once, the newest
# one the version the build needs, the application role's grants applied).
# Then once more: exit 0, nothing applied. Also the drop-in's command
# (python3 -m libkotte.kotte migrate) against one of them when
# KOTTE_TEST_PYTHONPATH names a built binding.
#
#   bash tests/pg/migrate_at_once.sh path/to/kotte-migrate
# Needs tests/pg/pg.sh's server (KOTTE_TEST_PG_*); exits 77 without one.
set -u
bin=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
[ -n "${KOTTE_TEST_PG_DIR:-}" ] || { echo "KOTTE_TEST_PG_* not set: skipped"; exit 77; }
pgsh() { bash "$root/tests/pg/pg.sh" psql "$KOTTE_TEST_PG_DIR" -At "$@"; }
need=$(ls "$root/sql/migrations" | sed -n 's/^0*\([0-9][0-9]*\)_.*\.sql$/\1/p' | sort -n | tail -1)
db=kotte_at_once_$$
fail() { echo "FAIL: $*"; pgsh -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; exit 1; }
pgsh -c "CREATE DATABASE $db OWNER kotte" >/dev/null || exit 1
export DB_HOST=$KOTTE_TEST_PG_DIR DB_PORT=$KOTTE_TEST_PG_PORT DB_NAME=$db DB_USER=kotte
export KOTTE_SQL_DIR=$root/sql
out=$(mktemp -d)
"$bin" >"$out/a" 2>&1 & a=$!
"$bin" >"$out/b" 2>&1 & b=$!
wait $a; ra=$?
wait $b; rb=$?
cat "$out/a" "$out/b"
[ $ra -eq 0 ] && [ $rb -eq 0 ] || fail "exit codes $ra and $rb"
applied=$(cat "$out/a" "$out/b" | sed -n 's/.*done, \([0-9]*\) migration(s) applied.*/\1/p' | awk '{s += $1} END {print s + 0}')
[ "$applied" = "$need" ] || fail "applied $applied in all, want $need (each migration once)"
got=$(pgsh -d $db -c "SELECT count(*) || '|' || count(DISTINCT version) || '|' || max(version) FROM kotte_schema_migrations")
[ "$got" = "$need|$need|$need" ] || fail "kotte_schema_migrations: $got, want $need|$need|$need"
grants=$(pgsh -d $db -c "SELECT has_table_privilege('kotte_app', 'kotte_sessions', 'UPDATE')")
[ "$grants" = t ] || fail "kotte_app lacks its grants"
"$bin" >"$out/c" 2>&1 || fail "a third run failed: $(cat "$out/c")"
grep -q "done, 0 migration(s) applied" "$out/c" || fail "a third run applied something: $(cat "$out/c")"
if [ -n "${KOTTE_TEST_PYTHONPATH:-}" ]; then
  PYTHONPATH=$KOTTE_TEST_PYTHONPATH /usr/bin/python3 -m libkotte.kotte migrate >"$out/d" 2>&1 ||
    fail "the drop-in's migrate failed: $(cat "$out/d")"
  grep -q "0 migration(s) applied" "$out/d" || fail "the drop-in's migrate: $(cat "$out/d")"
fi
rm -rf "$out"
pgsh -c "DROP DATABASE $db WITH (FORCE)" >/dev/null
echo "ok: two migrations at once both exited 0; one schema at version $need"
