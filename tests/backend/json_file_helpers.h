/* What the suites that run a store over the json_file backend through a
 * kotte_runtime share (tests/session/test_session_json_file.c,
 * test_session_secrets.c, tests/credential/test_cred_json_file.c,
 * test_cred_sync.c): a runtime, a temporary folder with the journal's path
 * in it, optionally a key ring, and a teardown that also frees a store a
 * failed test left open; and the second process of the "two processes
 * write one file" tests. */
#ifndef KOTTE_TEST_JSON_FILE_HELPERS_H
#define KOTTE_TEST_JSON_FILE_HELPERS_H

#include <stdio.h>

#include <kotte.h>

typedef struct jf_env {
  kotte_runtime *rt;
  kotte_keyring *kr;        /* a key ring the suite keeps here, or NULL */
  void *st;                 /* a store a failed test left open, or NULL */
  void (*st_free)(void *st); /* frees it (the store's kotte_*_store_free) */
  char dir[64];
  char path[128];
} jf_env;

/* A new environment with the journal @p file in a new temporary folder;
 * @p st_free frees what a test leaves in ->st. Asserts on failure. */
jf_env *jf_env_new(const char *file, void (*st_free)(void *st));

/* cmocka teardown: the store left open, the runtime, the key ring, the
 * folder (made writable again if a test made the journal immutable). */
int jf_teardown(void **state);

/* Starts this test binary again as `--child PATH` (the suite's main()
 * hands that to its child), reading its stdout. */
FILE *jf_child_start(const char *path);

/* Reads @p n ids of @p len characters each that the child printed, into
 * ids[i * stride] (NUL-terminated), and waits for it to end with 0. */
void jf_child_ids(FILE *child, char *ids, size_t stride, size_t len, int n);

#endif
