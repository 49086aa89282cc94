# kotte-server end to end: the real binary (in build-asan: ASan+UBSan),
# driven by a real HTTP client (Python 3's http.client and raw sockets).
# Each script starts its own servers on kernel-chosen ports in temporary
# directories and stops them with SIGTERM, requiring exit 0 and a clean
# stderr (no sanitizer report, no leak).
if(TARGET kotte-server)
  find_program(KOTTE_PYTHON3 python3 REQUIRED)
  # Parts of the server on their own (CMocka): the client address
  # (FORWARDED_ALLOW_IPS, X-Forwarded-For) and the rate-limit table, with a
  # clock the test moves.
  set(_ks ${CMAKE_SOURCE_DIR}/examples/kotte-server)
  add_executable(test_server_client_ip ${CMAKE_CURRENT_LIST_DIR}/test_client_ip.c
                 ${_ks}/client_ip.c)
  target_include_directories(test_server_client_ip PRIVATE ${_ks})
  target_link_libraries(test_server_client_ip PRIVATE PkgConfig::CMOCKA)
  add_test(NAME server_client_ip COMMAND test_server_client_ip)
  add_executable(test_server_ratelimit ${CMAKE_CURRENT_LIST_DIR}/test_ratelimit.c
                 ${_ks}/ratelimit.c ${_ks}/client_ip.c)
  target_include_directories(test_server_ratelimit PRIVATE ${_ks} ${UTHASH_INCLUDE_DIR})
  target_link_libraries(test_server_ratelimit PRIVATE PkgConfig::CMOCKA PkgConfig::KOTTE_DEP_SODIUM)
  add_test(NAME server_ratelimit_table COMMAND test_server_ratelimit)
  set_tests_properties(server_client_ip server_ratelimit_table PROPERTIES TIMEOUT 120
    LABELS server)
  foreach(script e2e robustness shutdown ratelimit)
    add_test(NAME server_${script}
             COMMAND ${KOTTE_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/${script}.py
                     $<TARGET_FILE:kotte-server>)
  endforeach()
  # No suite may hang CI: the scripts have their own watchdog below this.
  set_tests_properties(server_e2e server_robustness server_shutdown server_ratelimit PROPERTIES
    TIMEOUT 300 LABELS server
    ENVIRONMENT "KOTTE_TEST_BUDGET=240")
  # The session cookie against Debian's Starlette and itsdangerous, which
  # only Debian's own interpreter has (python3 on PATH may be another one).
  find_program(KOTTE_DEBIAN_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
  if(KOTTE_DEBIAN_PYTHON3)
    add_test(NAME server_cookie
             COMMAND ${KOTTE_DEBIAN_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/cookie.py
                     $<TARGET_FILE:kotte-server>)
    set_tests_properties(server_cookie PROPERTIES TIMEOUT 300 LABELS server
      ENVIRONMENT "KOTTE_TEST_BUDGET=240")
  endif()
  # On PostgreSQL: needs tests/pg/pg.sh's server (KOTTE_TEST_PG_*), else
  # exits 77 (skipped); tests/suites.d/30-server.sh starts one for it.
  add_test(NAME server_pg
           COMMAND ${KOTTE_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/pg.py $<TARGET_FILE:kotte-server>)
  set_tests_properties(server_pg PROPERTIES TIMEOUT 300 LABELS server SKIP_RETURN_CODE 77
    RESOURCE_LOCK kotte_postgresql ENVIRONMENT "KOTTE_TEST_BUDGET=240")
  # The schema at start-up and in /ready (fresh databases on the same server).
  if(TARGET kotte-migrate)
    add_test(NAME server_schema
             COMMAND ${KOTTE_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/schema.py $<TARGET_FILE:kotte-server>)
    set_tests_properties(server_schema PROPERTIES TIMEOUT 300 LABELS server SKIP_RETURN_CODE 77
      RESOURCE_LOCK kotte_postgresql
      ENVIRONMENT "KOTTE_TEST_BUDGET=240;KOTTE_MIGRATE_BIN=$<TARGET_FILE:kotte-migrate>")
  endif()
  # Data at rest: no live cookie value or CSRF token in any file of the data
  # directory (json_file) or in a pg_dump (postgresql; skipped without
  # tests/pg/pg.sh's server, run by tests/suites.d/30-server.sh).
  add_test(NAME server_at_rest
           COMMAND ${KOTTE_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/at_rest.py $<TARGET_FILE:kotte-server>)
  add_test(NAME server_at_rest_pg
           COMMAND ${KOTTE_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/at_rest.py $<TARGET_FILE:kotte-server>
                   postgresql)
  set_tests_properties(server_at_rest server_at_rest_pg PROPERTIES TIMEOUT 300 LABELS server
    ENVIRONMENT "KOTTE_TEST_BUDGET=240")
  set_tests_properties(server_at_rest_pg PROPERTIES SKIP_RETURN_CODE 77
    RESOURCE_LOCK kotte_postgresql)
endif()
