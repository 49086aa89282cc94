list(APPEND KOTTE_SOURCES
  libkotte/session/backend_json_file.c
  libkotte/session/backend_memory.c
  libkotte/session/backend_postgresql.c
  libkotte/session/backend_postgresql_cache.c
  libkotte/session/session_journal.c
  libkotte/session/session_object.c
  libkotte/session/session_secrets.c
  libkotte/session/session_store.c
  libkotte/session/session_sync.c
  libkotte/session/session_table.c)
