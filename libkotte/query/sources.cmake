list(APPEND KOTTE_SOURCES
  libkotte/query/backend_postgresql.c
  libkotte/query/query_registry.c
  libkotte/query/query_sync.c)
