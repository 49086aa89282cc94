# Core, runtime and session store suites (paths relative to tests/).
kotte_test(test_core unit/test_core.c)
kotte_test(test_runtime unit/test_runtime.c)
kotte_test(test_session_conformance unit/test_session_conformance.c unit/session_fixture.c)
kotte_test(test_session_touch unit/test_session_touch.c unit/session_fixture.c)
kotte_test(test_json_file unit/test_json_file.c)
# the journal libkotte 0.1 wrote (fixtures/make_sessions_v1.c)
target_compile_definitions(test_json_file PRIVATE
  KOTTE_TEST_FIXTURES="${CMAKE_CURRENT_LIST_DIR}/fixtures")
kotte_test(test_session_secrets unit/test_session_secrets.c)
kotte_test(crash_json_file unit/crash_json_file.c)

add_test(NAME core COMMAND test_core)
add_test(NAME runtime COMMAND test_runtime)
add_test(NAME session_conformance COMMAND test_session_conformance)
add_test(NAME session_touch COMMAND test_session_touch)
add_test(NAME json_file COMMAND test_json_file)
add_test(NAME session_secrets COMMAND test_session_secrets)
add_test(NAME json_file_crash COMMAND crash_json_file 200)
# No suite may hang CI: each gets a bound well above its normal run time.
set_tests_properties(core runtime session_conformance session_touch json_file session_secrets
  PROPERTIES TIMEOUT 300)
set_tests_properties(json_file_crash PROPERTIES TIMEOUT 600)
# With KOTTE_TEST_PG_CONNINFO set these also run on PostgreSQL: one at a
# time with the other suites that share that database.
set_tests_properties(runtime session_conformance session_touch PROPERTIES RESOURCE_LOCK kotte_postgresql)
