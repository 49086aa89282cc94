/* Private: session objects and the store's shared helpers. */
#ifndef KOTTE_SESSION_INTERNAL_H
#define KOTTE_SESSION_INTERNAL_H

#include "core/internal.h"
#include "kotte/keyring.h"
#include "kotte/pg.h"
#include "kotte/sys/session_backend.h"

struct kotte_session {
  char id[KOTTE_SESSION_ID_LEN + 1];
  char *user_id;
  char *data;
  kotte_time created_at, last_activity, expires_at, max_expires_at;
};

struct kotte_session_list {
  size_t n;
  kotte_session **items;
};

/* A deep copy of a backend record, or NULL when out of memory. */
kotte_session *kotte__session_from_record(const kotte_session_record *rec);

/* A deep copy of an array of records. 0 or KOTTE_ENOMEM. */
int kotte__session_list_from_records(const kotte_session_record *recs, size_t n,
                                     kotte_session_list **out);

/* Parses @p text (NULL: "{}") as an object, seals its {"$secret": v}
 * markers with @p kr (NULL: markers are refused with KOTTE_EKEY) and
 * prints it compact, at most @p max bytes. */
int kotte__session_prepare(kotte_keyring *kr, const char *text, size_t max, char **out,
                           size_t *out_len);

/* Opens the {"$sealed": blob} markers of @p data back into {"$secret": v}.
 * Returns 0 with *out NULL when there is none; the caller wipes *out. */
int kotte__session_reveal(kotte_keyring *kr, const char *data, size_t len, char **out,
                          size_t *out_len);

/* The pool of a postgresql backend from this library, else NULL. */
kotte_pg_pool *kotte__session_backend_pg_pool(const kotte_session_backend *be);

/* The store's runtime (NULL for a store from kotte_session_store_new()). */
kotte_runtime *kotte__session_store_runtime(kotte_session_store *store);

#endif
