# kotte-server: the README's curl walk-through and a short wrk load (then
# SIGTERM, exit 0 required) against the ASan+UBSan binary, then the
# PostgreSQL suite (sessions in kotte_sessions, users in kotte_users, two
# servers on one database, the database going away) on a throw-away
# PostgreSQL 15 of its own. The other server suites (end to end, robustness,
# shutdown, rate limits) run with the C suites (ctest, label "server").
# Sourced by tests/run.sh (uses `suite`).
if [ -x build-asan/examples/kotte-server/kotte-server ]; then
  suite "kotte-server README curl login (ASan+UBSan)" \
    bash tests/server/readme_curl.sh build-asan/examples/kotte-server/kotte-server
  # the benchmark driver, short, on the sanitized binary: 64 keep-alive
  # connections, then SIGTERM; the driver fails unless the server exits 0
  # and every answer is a 200. The rate limiter runs, with limits raised
  # out of reach (Kotte's 60 a minute would refuse the load).
  suite "kotte-server under wrk load (ASan+UBSan)" \
    env KOTTE_SERVER_BIN="$PWD/build-asan/examples/kotte-server/kotte-server" WRK_DURATION=3s \
    WRK_CONNECTIONS=64 RATE_LIMIT_ENABLED=true RATE_LIMIT_PER_MINUTE=1000000000 \
    RATE_LIMIT_PER_USER=1000000000 bash tests/bench/server/wrk.sh memory json_file
  kotte_server_pg_env=$(bash tests/pg/pg.sh start 2>&1)
  if [ $? -eq 0 ]; then
    eval "$kotte_server_pg_env"
    suite "kotte-server on PostgreSQL (ASan+UBSan)" \
      ctest --test-dir build-asan --output-on-failure -R '^server_(pg|schema|at_rest_pg)$'
    bash tests/pg/pg.sh stop "$KOTTE_TEST_PG_DIR"
    unset KOTTE_TEST_PG_DIR KOTTE_TEST_PG_PORT KOTTE_TEST_PG_BIN KOTTE_TEST_PG_CONNINFO \
      KOTTE_TEST_PG_OWNER_CONNINFO KOTTE_TEST_PG_SUPER_CONNINFO
  else
    echo "$kotte_server_pg_env"
    suite "kotte-server PostgreSQL start" false
  fi
  unset kotte_server_pg_env
else
  suite "kotte-server built (build-asan)" false
fi
# The rate-limit suite (its ASan run is among the C suites, label "server")
# also against the ThreadSanitizer build, as the other server suites are.
if [ -x build-tsan/examples/kotte-server/kotte-server ]; then
  suite "kotte-server rate limits (TSan)" \
    ctest --test-dir build-tsan --output-on-failure -R '^server_ratelimit(_table)?$'
fi
