# The query registry (paths relative to tests/): the memory backend in one
# process, and the postgresql backend across two processes (a fork) on the
# shared test database (skipped, exit 77, without KOTTE_TEST_PG_CONNINFO).
kotte_test(test_query_registry query/test_query_registry.c)
add_test(NAME query_registry COMMAND test_query_registry)
set_tests_properties(query_registry PROPERTIES TIMEOUT 300)

kotte_test(test_pg_query_cancel query/test_pg_query_cancel.c)
target_include_directories(test_pg_query_cancel PRIVATE ${CMAKE_SOURCE_DIR}/tests/pg)
add_test(NAME pg_query_cancel COMMAND test_pg_query_cancel)
set_tests_properties(pg_query_cancel PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
  RESOURCE_LOCK kotte_postgresql)

# The example program (examples/query-cancel), two processes.
if(TARGET kotte-query-cancel)
  add_test(NAME pg_query_cancel_example
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/example.sh $<TARGET_FILE:kotte-query-cancel>)
  set_tests_properties(pg_query_cancel_example PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77
    RESOURCE_LOCK kotte_postgresql)
endif()
