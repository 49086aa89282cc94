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

/* ---- behaviour both stores' journals must show -------------------------- */

/* A store as the shared json_file tests see it: records of an owner that
 * hold one number (a session's {"v":N}, a connection's password "pw-N"). */
typedef struct jf_ops {
  const char *file; /* the journal's name, e.g. "sessions.journal" */
  /* opens a store on e->path (a kotte_*_store on e->rt): 0 or the error */
  int (*open)(jf_env *e, void **st);
  void (*close)(void *st);
  /* writes a new record of @p owner holding @p v: 0 or the error; its id
   * (up to 47 characters) into @p id */
  int (*put)(void *st, const char *owner, int v, char *id);
  /* the number record @p id holds (0), or the error (KOTTE_ENOTFOUND) */
  int (*value)(void *st, const char *owner, const char *id, int *v);
  int (*change)(void *st, const char *owner, const char *id, int v);
  int (*remove)(void *st, const char *owner, const char *id);
  int (*check)(void *st); /* kotte_*_store_check_sync() */
  /* optional: after damage_while_open()'s writes, what else the store's
   * indexes must still know (the credential store's unique names) */
  void (*still_indexed)(void *st);
} jf_ops;

/* Records written (one changed, one deleted), then the journal is damaged
 * (test_files.h's damage_file(): DAMAGE_EMPTY, _HALF or _REMOVE) behind
 * the open store's back: every operation goes on as if nothing happened,
 * an ERROR names the damage (and no talk of unacknowledged writes), and
 * after a reopen everything acknowledged is there, in a file of mode 0600. */
void jf_test_damage_while_open(jf_env *e, const jf_ops *ops, int how);

/* Readiness: a healthy store's check answers 0 and does not grow the
 * journal; while the journal cannot be written (chattr +i; skipped where
 * that is not possible) writes and checks fail with KOTTE_EIO and nothing
 * grows; once writable the check alone makes it ready again (one nop
 * record, once), and everything reads back after a reopen. */
void jf_test_unwritable_journal(jf_env *e, const jf_ops *ops);

/* A journal in a folder that does not exist: KOTTE_EIO, the detail naming
 * the folder. */
void jf_test_unwritable_location(jf_env *e, const jf_ops *ops);

#endif
