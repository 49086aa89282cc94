# PostgreSQL suites (paths relative to tests/). They need a server: with
# KOTTE_TEST_PG_CONNINFO unset they print a notice and exit 77 (skipped);
# tests/suites.d/20-postgresql.sh starts one and runs them. They share one
# database, so they never run at the same time (RESOURCE_LOCK).
kotte_test(test_pg_pool pg/test_pg_pool.c)
target_include_directories(test_pg_pool PRIVATE ${CMAKE_SOURCE_DIR}/tests/pg)

add_test(NAME pg_pool COMMAND test_pg_pool)
set_tests_properties(pg_pool PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 RESOURCE_LOCK kotte_postgresql)

kotte_test(test_pg_migrate pg/test_pg_migrate.c)
target_include_directories(test_pg_migrate PRIVATE ${CMAKE_SOURCE_DIR}/tests/pg)
target_compile_definitions(test_pg_migrate PRIVATE KOTTE_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
add_test(NAME pg_migrate COMMAND test_pg_migrate)
set_tests_properties(pg_migrate PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 RESOURCE_LOCK kotte_postgresql)

kotte_test(test_pg_sessions pg/test_pg_sessions.c)
target_include_directories(test_pg_sessions PRIVATE ${CMAKE_SOURCE_DIR}/tests/pg)
add_test(NAME pg_sessions COMMAND test_pg_sessions)
set_tests_properties(pg_sessions PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77 RESOURCE_LOCK kotte_postgresql)

# Starts servers of its own (restart, failover); the overload case uses the shared one.
kotte_test(test_pg_faults pg/test_pg_faults.c)
target_include_directories(test_pg_faults PRIVATE ${CMAKE_SOURCE_DIR}/tests/pg)
target_compile_definitions(test_pg_faults PRIVATE KOTTE_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
add_test(NAME pg_faults COMMAND test_pg_faults)
set_tests_properties(pg_faults PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77 RESOURCE_LOCK kotte_postgresql)

# The LISTEN facility; the restart and failover cases start servers of their own.
kotte_test(test_pg_listen pg/test_pg_listen.c)
target_include_directories(test_pg_listen PRIVATE ${CMAKE_SOURCE_DIR}/tests/pg)
target_compile_definitions(test_pg_listen PRIVATE KOTTE_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
add_test(NAME pg_listen COMMAND test_pg_listen)
set_tests_properties(pg_listen PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 RESOURCE_LOCK kotte_postgresql)

# For tests/bench/bench_pg.sh: the backend's SQL, for pgbench and asyncpg.
add_executable(pg_dump_sql pg/pg_dump_sql.c)
target_link_libraries(pg_dump_sql PRIVATE kotte_static PkgConfig::KOTTE_DEP_SODIUM PkgConfig::KOTTE_DEP_PQ)
target_include_directories(pg_dump_sql PRIVATE ${CMAKE_SOURCE_DIR}/libkotte)

# Two kotte-migrate processes at once on a fresh database (as two new pods'
# init containers in k8s/ run them): both exit 0, one schema.
if(TARGET kotte-migrate)
  add_test(NAME pg_migrate_at_once
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/pg/migrate_at_once.sh $<TARGET_FILE:kotte-migrate>)
  set_tests_properties(pg_migrate_at_once PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
    RESOURCE_LOCK kotte_postgresql)
endif()
