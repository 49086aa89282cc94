# PostgreSQL: starts a throw-away PostgreSQL 15 (tests/pg/pg.sh: temp folder,
# unix socket + 127.0.0.1, as the postgres user), runs every suite that
# needs one — the pool, the session conformance group "postgresql", four
# threads sharing a store through the blocking facade, the fault and
# failover tests, the credential conformance and tamper groups
# "postgresql", the query registry across two processes — under ASan+UBSan, and all but the tamper group under TSan
# too, and stops the server. Sourced by tests/run.sh (uses `suite`).
kotte_pg_env=$(bash tests/pg/pg.sh start 2>&1)
if [ $? -eq 0 ]; then
  eval "$kotte_pg_env"
  suite "PostgreSQL suites (ASan+UBSan)" \
    ctest --test-dir build-asan --output-on-failure -R '^(pg_.*|runtime|session_conformance|session_touch|credential_conformance|credential_tamper)$'
  suite "kotte-migrate on the bootstrapped database" \
    ./build-asan/examples/kotte-migrate/kotte-migrate "$KOTTE_TEST_PG_OWNER_CONNINFO"
  suite "PostgreSQL suites (TSan)" \
    ctest --test-dir build-tsan --output-on-failure -R '^(pg_pool|pg_migrate|pg_sessions|pg_faults|pg_listen|pg_session_cache|pg_query_cancel|runtime|session_conformance|session_touch|credential_conformance)$'
  bash tests/pg/pg.sh stop "$KOTTE_TEST_PG_DIR"
  unset KOTTE_TEST_PG_DIR KOTTE_TEST_PG_PORT KOTTE_TEST_PG_BIN KOTTE_TEST_PG_CONNINFO \
    KOTTE_TEST_PG_OWNER_CONNINFO KOTTE_TEST_PG_SUPER_CONNINFO
else
  echo "$kotte_pg_env"
  suite "PostgreSQL server start" false
fi
unset kotte_pg_env
