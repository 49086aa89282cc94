# Core and runtime suites (paths relative to tests/). The session store's
# suites are in tests/session/, the credential store's in tests/credential/;
# test_files.h and test_log.h here serve them all.
kotte_test(test_core unit/test_core.c)
kotte_test(test_runtime unit/test_runtime.c)

add_test(NAME core COMMAND test_core)
add_test(NAME runtime COMMAND test_runtime)
# No suite may hang CI: each gets a bound well above its normal run time.
set_tests_properties(core runtime PROPERTIES TIMEOUT 300)
# With KOTTE_TEST_PG_CONNINFO set this also runs on PostgreSQL: one at a
# time with the other suites that share that database.
set_tests_properties(runtime PROPERTIES RESOURCE_LOCK kotte_postgresql)
