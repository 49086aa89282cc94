list(APPEND KOTTE_SOURCES
  libkotte/core/alloc.c
  libkotte/core/defer.c
  libkotte/core/error.c
  libkotte/core/journal_file.c
  libkotte/core/journal_queue.c
  libkotte/core/json.c
  libkotte/core/log.c
  libkotte/core/store.c
  libkotte/core/token.c
  libkotte/core/utf8.c)
