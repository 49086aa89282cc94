/* Private: credential objects, ids, times and validation. */
#ifndef KOTTE_CREDENTIAL_INTERNAL_H
#define KOTTE_CREDENTIAL_INTERNAL_H

#include <stdatomic.h>

#include "core/internal.h"
#include "keyring/keyring_internal.h"
#include "kotte/pg.h"
#include "kotte/sys/credential_backend.h"

/* The pool of a postgresql backend from this library, else NULL. */
kotte_pg_pool *kotte__cred_backend_pg_pool(const kotte_cred_backend *be);

/* ---- objects ------------------------------------------------------------ */

#define KOTTE__ISO_LEN 64

struct kotte_cred {
  char id[KOTTE_CRED_ID_LEN + 1];
  char key_id[KOTTE_KEY_ID_LEN + 1];
  char *user_id, *name, *host, *database, *sslmode;
  int port;
  char *username, *password; /* kotte_secret_free() memory, or NULL */
  kotte_time created_at, updated_at;
  char created_iso[KOTTE__ISO_LEN], updated_iso[KOTTE__ISO_LEN];
};

struct kotte_cred_list {
  size_t n;
  kotte_cred **items;
};

typedef struct kotte__key_usage {
  char id[KOTTE_KEY_ID_LEN + 1];
  uint64_t records;
  int current, in_ring;
} kotte__key_usage;

struct kotte_cred_report {
  uint64_t rewrapped, failed, stale;
  size_t n;
  kotte__key_usage *keys;
};

/* A metadata-only copy of a backend record (no secrets), or NULL (ENOMEM). */
kotte_cred *kotte__cred_from_record(const kotte_cred_record *rec);

/* A list of metadata copies. 0 or KOTTE_ENOMEM. */
int kotte__cred_list_from_records(const kotte_cred_record *recs, size_t n,
                                  kotte_cred_list **out);

/* ---- ids, times, validation --------------------------------------------- */

/* A fresh random (version 4) UUID, lowercase. */
void kotte__uuid_v4(char out[KOTTE_CRED_ID_LEN + 1]);

/* Canonical lowercase form of a UUID given in either case; -1 if @p s is
 * not exactly 8-4-4-4-12 hex digits. */
int kotte__uuid_canonical(const char *s, char out[KOTTE_CRED_ID_LEN + 1]);

/* @p t as Python's datetime.isoformat() of an aware UTC datetime. */
void kotte__time_iso(kotte_time t, char out[KOTTE__ISO_LEN]);

/* Checks the fields of @p in named by @p fields; the detail names the bad
 * field (never its value). 0, KOTTE_EINVAL or KOTTE_EVERSION. */
int kotte__cred_input_check(const kotte_cred_input *in, unsigned int fields);

/* "prefer" for NULL, else @p sslmode. */
const char *kotte__cred_sslmode(const char *sslmode);

/* ---- store -------------------------------------------------------------- */

/* The store's runtime (NULL for a store from kotte_cred_store_new()). */
kotte_runtime *kotte__cred_store_runtime(kotte_cred_store *store);

/* Replaces the store's key ring (tests: a rotation without reopening a
 * memory backend). Loop thread only. */
void kotte__cred_store_set_keyring(kotte_cred_store *store, kotte_keyring *kr);

/* The store's key ring (tests). */
kotte_keyring *kotte__cred_store_keyring(kotte_cred_store *store);

#endif
