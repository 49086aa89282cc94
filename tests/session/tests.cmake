# Session store suites (paths relative to tests/), as tests/credential/ has
# the credential store's. The ctest names are what tests/run.sh selects by
# (session_conformance and json_file also run under ThreadSanitizer).
set(KOTTE_SESSION_TESTS ${CMAKE_CURRENT_LIST_DIR})
function(kotte_session_test name)
  kotte_test(${name} ${ARGN})
  target_include_directories(${name} PRIVATE ${KOTTE_SESSION_TESTS})
endfunction()

kotte_session_test(test_session_conformance session/test_session_conformance.c
                   session/session_fixture.c backend/backend_helpers.c)
kotte_session_test(test_session_touch session/test_session_touch.c
                   session/session_fixture.c backend/backend_helpers.c)
kotte_session_test(test_session_json_file session/test_session_json_file.c
                   backend/json_file_helpers.c)
# the journal libkotte 0.1 wrote (fixtures/make_sessions_v1.c)
target_compile_definitions(test_session_json_file PRIVATE
  KOTTE_TEST_FIXTURES="${KOTTE_SESSION_TESTS}/fixtures")
kotte_session_test(test_session_secrets session/test_session_secrets.c backend/json_file_helpers.c)
kotte_session_test(crash_session_json_file session/crash_session_json_file.c backend/crash_harness.c)

add_test(NAME session_conformance COMMAND test_session_conformance)
add_test(NAME session_touch COMMAND test_session_touch)
add_test(NAME json_file COMMAND test_session_json_file)
add_test(NAME session_secrets COMMAND test_session_secrets)
# SIGKILL at random moments while writing (ASan run only)
add_test(NAME json_file_crash COMMAND crash_session_json_file 200)
# No suite may hang CI: each gets a bound well above its normal run time.
set_tests_properties(session_conformance session_touch json_file session_secrets
  PROPERTIES TIMEOUT 300)
set_tests_properties(json_file_crash PROPERTIES TIMEOUT 600)
# With KOTTE_TEST_PG_CONNINFO set these also run on PostgreSQL: one at a
# time with the other suites that share that database.
set_tests_properties(session_conformance session_touch PROPERTIES RESOURCE_LOCK kotte_postgresql)
