/* Private: the in-memory credential index shared by the memory and json_file
 * backends: by id, and per user by name (the unique constraint). Not
 * thread-safe: the callers run it from one thread at a time. */
#ifndef KOTTE_CREDENTIAL_TABLE_H
#define KOTTE_CREDENTIAL_TABLE_H

#include "credential/credential_internal.h"
#include "core/uthash_config.h"

typedef struct kotte__cred_user kotte__cred_user;

typedef struct kotte__cred_entry {
  char id[KOTTE_CRED_ID_LEN + 1];
  char key_id[KOTTE_KEY_ID_LEN + 1];
  char *name, *host, *database, *sslmode;
  int port;
  unsigned char *username, *password; /* sealed blobs */
  size_t username_len, password_len;
  kotte_time created_at, updated_at;
  kotte__cred_user *user;
  struct kotte__cred_entry *prev, *next; /* the user's records (utlist DL) */
  UT_hash_handle hh;            /* table: by id */
  UT_hash_handle hh_name;       /* user: by name */
} kotte__cred_entry;

struct kotte__cred_user {
  char *user_id;
  kotte__cred_entry *entries; /* DL list */
  kotte__cred_entry *by_name;
  UT_hash_handle hh;
};

typedef struct kotte__cred_table {
  kotte__cred_entry *by_id;
  kotte__cred_user *by_user;
} kotte__cred_table;

void kotte__cred_table_init(kotte__cred_table *t);
void kotte__cred_table_clear(kotte__cred_table *t);
size_t kotte__cred_table_count(const kotte__cred_table *t);

/* The entry as a backend record (pointers into the entry). */
void kotte__cred_table_record(const kotte__cred_entry *e, kotte_cred_record *out);

/* The backend insert: 0, KOTTE_EEXISTS (id or user+name) or KOTTE_ENOMEM. */
int kotte__cred_table_insert(kotte__cred_table *t, const kotte_cred_record *rec,
                             kotte__cred_entry **out);

/* Replaces or adds the record with rec->id (journal replay). 0,
 * KOTTE_EEXISTS (the name clashes with another record) or KOTTE_ENOMEM. */
int kotte__cred_table_put(kotte__cred_table *t, const kotte_cred_record *rec,
                          kotte__cred_entry **out);

/* The record @p id of @p user_id, or NULL. */
kotte__cred_entry *kotte__cred_table_find(kotte__cred_table *t, const char *user_id,
                                          const char *id);

/* The backend update: 0, KOTTE_ENOTFOUND, KOTTE_ECONFLICT, KOTTE_EEXISTS
 * or KOTTE_ENOMEM; all or nothing. */
int kotte__cred_table_update(kotte__cred_table *t, const char *user_id, const char *id,
                             const kotte_cred_patch *p, kotte__cred_entry **out);

/* 1 if removed, 0 if there was none. Without @p user_id: any owner (replay). */
int kotte__cred_table_remove(kotte__cred_table *t, const char *user_id, const char *id);

/* Records of a user by created_at, then id; *recs from kotte__malloc. */
int kotte__cred_table_list_user(kotte__cred_table *t, const char *user_id, kotte_cred_record **recs,
                                size_t *n);

/* Up to @p limit records with key_id != @p key_id and id > @p after (NULL:
 * all), by id; *recs from kotte__malloc. O(records * log limit). */
int kotte__cred_table_scan_stale(kotte__cred_table *t, const char *key_id, const char *after,
                                 unsigned int limit, kotte_cred_record **recs, size_t *n);

/* Records per key id, by key id; *counts from kotte__malloc, key_id
 * pointers into the table. */
int kotte__cred_table_key_counts(kotte__cred_table *t, kotte_cred_key_count **counts, size_t *n);

/* Deep copies of @p n records (results that must outlive the table's
 * state); free with kotte__cred_records_free(). 0 or KOTTE_ENOMEM. */
int kotte__cred_records_copy(const kotte_cred_record *in, size_t n, kotte_cred_record **out);
void kotte__cred_records_free(kotte_cred_record *recs, size_t n);

/* Calls @p visit for every entry (compaction). */
void kotte__cred_table_foreach(kotte__cred_table *t,
                               void (*visit)(const kotte__cred_entry *e, void *ctx), void *ctx);

#endif
