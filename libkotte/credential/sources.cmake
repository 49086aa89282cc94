list(APPEND KOTTE_SOURCES
  libkotte/credential/backend_json_file.c
  libkotte/credential/backend_memory.c
  libkotte/credential/backend_postgresql.c
  libkotte/credential/cred.c
  libkotte/credential/cred_journal.c
  libkotte/credential/cred_table.c
  libkotte/credential/credential_rewrap.c
  libkotte/credential/credential_store.c
  libkotte/credential/credential_sync.c
  libkotte/credential/keyring.c)
