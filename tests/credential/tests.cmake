# Credential store suites (paths relative to tests/). Tests named
# credential_* also run under ThreadSanitizer (tests/suites.d/10-credential.sh).
set(KOTTE_CRED_TESTS ${CMAKE_CURRENT_LIST_DIR})
function(kotte_cred_test name)
  kotte_test(${name} ${ARGN} credential/cred_fixture.c backend/backend_helpers.c)
  target_include_directories(${name} PRIVATE ${KOTTE_CRED_TESTS})
endfunction()

kotte_cred_test(test_cred_conformance credential/test_cred_conformance.c)
add_test(NAME credential_conformance COMMAND test_cred_conformance)
# both use the shared PostgreSQL database (group "postgresql"): never at once
set_tests_properties(credential_conformance PROPERTIES TIMEOUT 300 RESOURCE_LOCK kotte_postgresql)

kotte_cred_test(test_keyring credential/test_keyring.c)
add_test(NAME credential_keyring COMMAND test_keyring)
set_tests_properties(credential_keyring PROPERTIES TIMEOUT 300)

kotte_cred_test(test_cred_tamper credential/test_cred_tamper.c)
add_test(NAME credential_tamper COMMAND test_cred_tamper)
set_tests_properties(credential_tamper PROPERTIES TIMEOUT 300 RESOURCE_LOCK kotte_postgresql)

kotte_cred_test(test_cred_json_file credential/test_cred_json_file.c backend/json_file_helpers.c)
add_test(NAME credential_json_file COMMAND test_cred_json_file)
set_tests_properties(credential_json_file PROPERTIES TIMEOUT 300)

kotte_cred_test(test_cred_rotation credential/test_cred_rotation.c)
add_test(NAME credential_rotation COMMAND test_cred_rotation)
set_tests_properties(credential_rotation PROPERTIES TIMEOUT 600)

kotte_cred_test(test_cred_sync credential/test_cred_sync.c backend/json_file_helpers.c)
add_test(NAME credential_sync COMMAND test_cred_sync)
set_tests_properties(credential_sync PROPERTIES TIMEOUT 300)

# Import from Kotte (examples/import-connections; not built without examples
# or libcrypto). Fixtures come from make_kotte_fixture.py (python3-cryptography).
if(TARGET kotte_import)
  kotte_test(test_import credential/test_import.c)
  target_link_libraries(test_import PRIVATE kotte_import kotte_static)
  add_test(NAME import_kotte COMMAND test_import ${KOTTE_CRED_TESTS}/make_kotte_fixture.py)
  add_test(NAME import_kotte_cli COMMAND bash ${KOTTE_CRED_TESTS}/import_cli.sh
           $<TARGET_FILE:kotte-import-connections> ${KOTTE_CRED_TESTS}/make_kotte_fixture.py)
  set_tests_properties(import_kotte import_kotte_cli PROPERTIES TIMEOUT 300)
endif()

# SIGKILL at random moments while writing and rewrapping (ASan run only: the
# name does not start with credential_).
kotte_test(crash_cred_json_file credential/crash_cred_json_file.c backend/crash_harness.c)
add_test(NAME crash_credential_json_file COMMAND crash_cred_json_file 100)
set_tests_properties(crash_credential_json_file PROPERTIES TIMEOUT 600)
