list(APPEND KOTTE_SOURCES
  libkotte/keyring/id_keys.c
  libkotte/keyring/keyring.c)
