/* Private: the in-memory session index shared by the memory and json_file
 * backends. Not thread-safe: callers hold their own lock. */
#ifndef KOTTE_SESSION_TABLE_H
#define KOTTE_SESSION_TABLE_H

#include "core/internal.h"
#include "kotte/sys/session_backend.h"
#include "core/uthash_config.h"

typedef struct kt_user kt_user;

typedef struct kt_entry {
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
  kt_user *user;
  struct kt_entry *prev, *next; /* the user's sessions (utlist DL) */
  UT_hash_handle hh;            /* by id */
} kt_entry;

struct kt_user {
  char *user_id;
  kt_entry *sessions;
  UT_hash_handle hh;
};

typedef struct kt_table {
  kt_entry *by_id;
  kt_user *by_user;
} kt_table;

/* Called for each entry a bulk delete removes, before it is freed. */
typedef void (*kt_visit_fn)(const kt_entry *e, void *ctx);

void kt_init(kt_table *t);
void kt_clear(kt_table *t);
size_t kt_count(const kt_table *t);

/* The entry as a backend record (pointers into the entry). */
void kt_record(const kt_entry *e, kotte_session_record *out);

/* Exact upsert of every field of @p rec: journal replay and plain writes. */
int kt_put_raw(kt_table *t, const kotte_session_record *rec, kt_entry **out);

/* The backend `put` contract (see sys/session_backend.h). */
int kt_put(kt_table *t, const kotte_session_record *rec, int replace, kotte_time now,
           kt_entry **out);

/* Live entry or KOTTE_ENOTFOUND (a dead one is removed; *removed is set). */
int kt_get(kt_table *t, const char *id, kotte_time now, int slide, kt_entry **out, int *removed);

/* Merge + slide; KOTTE_ENOTFOUND, KOTTE_ETOOBIG, KOTTE_EBADJSON, KOTTE_ENOMEM. */
int kt_update(kt_table *t, const char *id, kotte_time now, const char *patch, size_t patch_len,
              size_t max, kt_entry **out);

/* The entry under @p id, live or not, or NULL. */
kt_entry *kt_find(kt_table *t, const char *id);

/* 1 if removed, 0 if there was none. */
int kt_remove(kt_table *t, const char *id);

int kt_rename(kt_table *t, const char *old_id, const char *new_id, kotte_time now,
              kt_entry **out);

/* Sets last_activity/expires_at of @p id if present (journal replay). */
void kt_touch_raw(kt_table *t, const char *id, kotte_time last, kotte_time expires);

/* Live records of a user, sorted by created_at; *recs from kotte__malloc. */
int kt_list_user(kt_table *t, const char *user_id, kotte_time now, kotte_session_record **recs,
                 size_t *n);

uint64_t kt_remove_user(kt_table *t, const char *user_id);

/* Removes up to @p limit entries dead at @p now; visit sees each first. */
uint64_t kt_purge(kt_table *t, kotte_time now, unsigned int limit, kt_visit_fn visit, void *ctx);

/* Calls visit for every entry (compaction). */
void kt_foreach(kt_table *t, kt_visit_fn visit, void *ctx);

#endif
