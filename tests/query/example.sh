#!/usr/bin/env bash
# examples/query-cancel against the test database: one process runs and
# registers pg_sleep(30), another cancels it (forbidden for another user,
# not found for an unknown id, cancelled for the owner), and the first one's
# query ends with SQLSTATE 57014. Skipped (77) without KOTTE_TEST_PG_CONNINFO.
set -u
bin=$1
ci=${KOTTE_TEST_PG_CONNINFO:-}
[ -n "$ci" ] || { echo "skipped: KOTTE_TEST_PG_CONNINFO is not set"; exit 77; }
out=$(mktemp)
trap 'rm -f "$out"; [ -n "${run:-}" ] && kill "$run" 2>/dev/null' EXIT
"$bin" "$ci" run example-q1 alice 30 >"$out" 2>&1 &
run=$!
for _ in $(seq 100); do grep -q registered "$out" && break; sleep 0.1; done
grep -q registered "$out" || { cat "$out"; echo "FAIL: not registered"; exit 1; }
check() { # expected-substring args...
  local want=$1; shift
  local got; got=$("$bin" "$ci" cancel "$@" 2>&1)
  echo "$got"
  case $got in *"$want"*) ;; *) echo "FAIL: expected $want"; exit 1 ;; esac
}
check KOTTE_EFORBIDDEN example-q1 bob
check KOTTE_ENOTFOUND no-such-query alice
check cancelled example-q1 alice
wait "$run"; rc=$?
run=
cat "$out"
[ "$rc" -eq 0 ] && grep -q "SQLSTATE 57014" "$out" || { echo "FAIL: the query did not end canceled"; exit 1; }
echo "PASS"
