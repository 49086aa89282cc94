# libFuzzer targets, built only by tests/fuzz/run.sh (clang, KOTTE_FUZZ=ON):
# fuzz_store (journal loader, JSON merge, ids) and, over kotte-server's own
# objects, fuzz_http (byte streams through the HTTP layer and router) and
# fuzz_request (cookie, CSRF header, JSON body).
if(KOTTE_FUZZ)
  add_executable(fuzz_store fuzz/fuzz_store.c)
  target_link_libraries(fuzz_store PRIVATE kotte_static PkgConfig::KOTTE_DEP_SODIUM
                        PkgConfig::KOTTE_DEP_CJSON PkgConfig::KOTTE_DEP_UV Threads::Threads)
  target_include_directories(fuzz_store PRIVATE ${CMAKE_SOURCE_DIR}/libkotte ${UTHASH_INCLUDE_DIR})
  target_link_options(fuzz_store PRIVATE -fsanitize=fuzzer)
  if(TARGET kotte_server_core)
    foreach(t fuzz_http fuzz_request)
      add_executable(${t} fuzz/${t}.c)
      target_link_libraries(${t} PRIVATE kotte_server_core)
      target_link_options(${t} PRIVATE -fsanitize=fuzzer)
    endforeach()
  endif()
endif()
