/* Private: session objects and the store's shared helpers. */
#ifndef KOTTE_SESSION_INTERNAL_H
#define KOTTE_SESSION_INTERNAL_H

#include "core/internal.h"
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

/* The store's runtime (NULL for a store from kotte_session_store_new()). */
kotte_runtime *kotte__session_store_runtime(kotte_session_store *store);

#endif
