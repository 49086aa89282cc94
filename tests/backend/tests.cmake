# What backend writers start from (include/kotte/sys/*_backend.h).
kotte_test(test_backend_init backend/test_backend_init.c)
add_test(NAME backend_init COMMAND test_backend_init)
set_tests_properties(backend_init PROPERTIES TIMEOUT 120)
