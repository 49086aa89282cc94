list(APPEND KOTTE_SOURCES
  libkotte/keyring/aead.c
  libkotte/keyring/id_keys.c
  libkotte/keyring/keyring.c)
