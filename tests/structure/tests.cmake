# The layer picture (docs/architecture.md): which folder of libkotte/ may reach which,
# checked on the sources and on the static library's objects.
add_test(NAME layers COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/layers.sh ${CMAKE_SOURCE_DIR}
         ${CMAKE_BINARY_DIR}/CMakeFiles/kotte_static.dir/libkotte)
set_tests_properties(layers PROPERTIES TIMEOUT 60)
