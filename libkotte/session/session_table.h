/* Private: the in-memory session index shared by the memory and json_file
 * backends. Not thread-safe: callers hold their own lock. */
#ifndef KOTTE_SESSION_TABLE_H
#define KOTTE_SESSION_TABLE_H

#include "core/internal.h"
#include "kotte/sys/session_backend.h"
#include "core/uthash_config.h"

typedef struct kotte__session_user kotte__session_user;

typedef struct kotte__session_entry {
  /* The key: the session id (memory backend) or its keyed hash (json_file,
   * see keyring/id_keys.h), both 43 characters. */
  char id[KOTTE_SESSION_ID_LEN + 1];
  /* json_file: the id sealed (KOTTE__ID_SEALED_LEN bytes, kotte__malloc),
   * set by the backend, kept by a rename, freed with the entry. NULL in
   * the memory backend. */
  unsigned char *sealed;
  char *data;
  size_t data_len;
  kotte_time created_at, last_activity, expires_at, max_expires_at, idle_timeout;
  kotte__session_user *user;
  struct kotte__session_entry *prev, *next; /* the user's sessions (utlist DL) */
  UT_hash_handle hh;            /* by id */
} kotte__session_entry;

struct kotte__session_user {
  char *user_id;
  kotte__session_entry *sessions;
  UT_hash_handle hh;
};

typedef struct kotte__session_table {
  kotte__session_entry *by_id;
  kotte__session_user *by_user;
} kotte__session_table;

/* Called for each entry a bulk delete removes, before it is freed. */
typedef void (*kotte__session_visit_fn)(const kotte__session_entry *e, void *ctx);

void kotte__session_table_init(kotte__session_table *t);
void kotte__session_table_clear(kotte__session_table *t);
size_t kotte__session_table_count(const kotte__session_table *t);

/* The entry as a backend record (pointers into the entry). */
void kotte__session_table_record(const kotte__session_entry *e, kotte_session_record *out);

/* Exact upsert of every field of @p rec: journal replay and plain writes. */
int kotte__session_table_put_raw(kotte__session_table *t, const kotte_session_record *rec,
                                 kotte__session_entry **out);

/* The backend `put` contract (see sys/session_backend.h). */
int kotte__session_table_put(kotte__session_table *t, const kotte_session_record *rec, int replace,
                             kotte_time now, kotte__session_entry **out);

/* Live entry or KOTTE_ENOTFOUND (a dead one is removed; *removed is set). */
int kotte__session_table_get(kotte__session_table *t, const char *id, kotte_time now, int slide,
                             kotte__session_entry **out, int *removed);

/* The backend `get_touch` contract: like get, sliding only when the touch
 * interval @p touch (µs; negative: 1 % of the entry's idle timeout) has
 * passed since its last activity; *slid says whether it did. */
int kotte__session_table_get_touch(kotte__session_table *t, const char *id, kotte_time now,
                                   kotte_time touch, kotte__session_entry **out, int *removed,
                                   int *slid);

/* Merge + slide; KOTTE_ENOTFOUND, KOTTE_ETOOBIG, KOTTE_EBADJSON, KOTTE_ENOMEM. */
int kotte__session_table_update(kotte__session_table *t, const char *id, kotte_time now,
                                const char *patch, size_t patch_len, size_t max,
                                kotte__session_entry **out);

/* The entry under @p id, live or not, or NULL. */
kotte__session_entry *kotte__session_table_find(kotte__session_table *t, const char *id);

/* 1 if removed, 0 if there was none. */
int kotte__session_table_remove(kotte__session_table *t, const char *id);

int kotte__session_table_rename(kotte__session_table *t, const char *old_id, const char *new_id,
                                kotte_time now, kotte__session_entry **out);

/* Sets last_activity/expires_at of @p id if present (journal replay). */
void kotte__session_table_touch_raw(kotte__session_table *t, const char *id, kotte_time last,
                                    kotte_time expires);

/* Live records of a user, sorted by created_at; *recs from kotte__malloc. */
int kotte__session_table_list_user(kotte__session_table *t, const char *user_id, kotte_time now,
                                   kotte_session_record **recs, size_t *n);

uint64_t kotte__session_table_remove_user(kotte__session_table *t, const char *user_id);

/* Removes up to @p limit entries dead at @p now; visit sees each first. */
uint64_t kotte__session_table_purge(kotte__session_table *t, kotte_time now, unsigned int limit,
                                    kotte__session_visit_fn visit, void *ctx);

/* Calls visit for every entry (compaction). */
void kotte__session_table_foreach(kotte__session_table *t, kotte__session_visit_fn visit,
                                  void *ctx);

#endif
