/* Test fixture: a credential store on a loop the test drives, with a clock
 * the test sets and a key ring, over a chosen backend; blocking helpers
 * that run one asynchronous operation to completion while checking the
 * delivery rule; and raw access to the backend for tamper tests. */
#ifndef KOTTE_TEST_CRED_FIXTURE_H
#define KOTTE_TEST_CRED_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <kotte.h>
#include <kotte/pg.h>
#include <kotte/sys/credential_backend.h>

#include "backend_helpers.h"

#define SEC 1000000LL

/* Two fixed test keys (never use fixed keys outside tests). */
#define KEY_A "00112233445566778899aabbccddeeff0123456789abcdef0011223344556677"
#define KEY_B "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="

typedef struct cfx {
  bh_env env; /* loop, kind, json_file path, pool (backend_helpers.h) */
  kotte_cred_store *store;
  kotte_cred_backend *be; /* owned by the store; for raw access */
  kotte_keyring *kr;      /* the fixture's reference */
  kotte_time now;
  kotte_cred_options opts;
} cfx;

enum { CFX_MEMORY = BH_MEMORY, CFX_JSON_FILE = BH_JSON_FILE, CFX_POSTGRESQL = BH_POSTGRESQL };

int cfx_setup_memory(void **state);
int cfx_setup_json_file(void **state);
/* PostgreSQL at $KOTTE_TEST_PG_CONNINFO (tests/pg/pg.sh); the table is
 * emptied before each test. cfx_postgresql_conninfo() is NULL when unset. */
int cfx_setup_postgresql(void **state);
#define cfx_postgresql_conninfo bh_postgresql_conninfo
int cfx_teardown(void **state);

/* (Re)creates the store with f->opts and f->kr (json_file: same file). */
void cfx_reopen(cfx *f);

/* A backend of the fixture's kind on its loop (json_file: same path). */
kotte_cred_backend *cfx_backend(cfx *f);

/* A key ring from strings (asserts success). */
kotte_keyring *cfx_ring(const char *current, const char *previous);

/* Swaps the store's key ring (and the fixture's reference). */
void cfx_use_ring(cfx *f, kotte_keyring *kr);

/* A full input with the given name and secrets. */
kotte_cred_input cfx_input(const char *name, const char *username, const char *password);

/* Blocking helpers (run the loop until the one callback). */
int cfx_save(cfx *f, const char *user, const kotte_cred_input *in, kotte_cred **out);
int cfx_get(cfx *f, const char *user, const char *id, kotte_cred **out);
int cfx_list(cfx *f, const char *user, kotte_cred_list **out);
int cfx_update(cfx *f, const char *user, const char *id, const kotte_cred_input *in,
               kotte_cred **out);
int cfx_delete(cfx *f, const char *user, const char *id);
int cfx_check(cfx *f);
int cfx_rewrap(cfx *f, kotte_cred_report **out);
int cfx_usage(cfx *f, kotte_cred_report **out);

/* Saves a connection and copies its id. */
void cfx_new(cfx *f, const char *user, const char *name, const char *username,
             const char *password, char id[KOTTE_CRED_ID_LEN + 1]);

/* Raw backend access (bypasses the store): a deep copy of the stored row,
 * and an unconditional patch. */
int cfx_raw_get(cfx *f, const char *user, const char *id, kotte_cred_record **out);
int cfx_raw_update(cfx *f, const char *user, const char *id, const kotte_cred_patch *p);
void cfx_raw_free(kotte_cred_record *r);

/* The records each key seals, as "id:count,id:count" (sorted by id). */
void cfx_report_keys(const kotte_cred_report *r, char *out, size_t cap);

#endif
