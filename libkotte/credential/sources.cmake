list(APPEND KOTTE_SOURCES
  libkotte/credential/backend_json_file.c
  libkotte/credential/backend_memory.c
  libkotte/credential/backend_postgresql.c
  libkotte/credential/credential_journal.c
  libkotte/credential/credential_object.c
  libkotte/credential/credential_rewrap.c
  libkotte/credential/credential_store.c
  libkotte/credential/credential_sync.c
  libkotte/credential/credential_table.c)
