# libFuzzer target, built only by tests/fuzz/run.sh (clang, KOTTE_FUZZ=ON).
if(KOTTE_FUZZ)
  add_executable(fuzz_store fuzz/fuzz_store.c)
  target_link_libraries(fuzz_store PRIVATE kotte_static PkgConfig::KOTTE_DEP_SODIUM
                        PkgConfig::KOTTE_DEP_CJSON PkgConfig::KOTTE_DEP_UV Threads::Threads)
  target_include_directories(fuzz_store PRIVATE ${CMAKE_SOURCE_DIR}/libkotte ${UTHASH_INCLUDE_DIR})
  target_link_options(fuzz_store PRIVATE -fsanitize=fuzzer)
endif()
