list(APPEND KOTTE_SOURCES
  libkotte/runtime/runtime.c
  libkotte/runtime/sync_call.c)
