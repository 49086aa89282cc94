/* Private: the in-memory credential index shared by the memory and json_file
 * backends: by id, and per user by name (the unique constraint). Not
 * thread-safe: the callers run it from one thread at a time. */
#ifndef KOTTE_CREDENTIAL_TABLE_H
#define KOTTE_CREDENTIAL_TABLE_H

#include "credential/credential_internal.h"
#include "core/uthash_config.h"

typedef struct ct_user ct_user;

typedef struct ct_entry {
  char id[KOTTE_CRED_ID_LEN + 1];
  char key_id[KOTTE_KEY_ID_LEN + 1];
  char *name, *host, *database, *sslmode;
  int port;
  unsigned char *username, *password; /* sealed blobs */
  size_t username_len, password_len;
  kotte_time created_at, updated_at;
  ct_user *user;
  struct ct_entry *prev, *next; /* the user's records (utlist DL) */
  UT_hash_handle hh;            /* table: by id */
  UT_hash_handle hh_name;       /* user: by name */
} ct_entry;

struct ct_user {
  char *user_id;
  ct_entry *entries; /* DL list */
  ct_entry *by_name;
  UT_hash_handle hh;
};

typedef struct ct_table {
  ct_entry *by_id;
  ct_user *by_user;
} ct_table;

void ct_init(ct_table *t);
void ct_clear(ct_table *t);
size_t ct_count(const ct_table *t);

/* The entry as a backend record (pointers into the entry). */
void ct_record(const ct_entry *e, kotte_cred_record *out);

/* The backend insert: 0, KOTTE_EEXISTS (id or user+name) or KOTTE_ENOMEM. */
int ct_insert(ct_table *t, const kotte_cred_record *rec, ct_entry **out);

/* Replaces or adds the record with rec->id (journal replay). 0,
 * KOTTE_EEXISTS (the name clashes with another record) or KOTTE_ENOMEM. */
int ct_put(ct_table *t, const kotte_cred_record *rec, ct_entry **out);

/* The record @p id of @p user_id, or NULL. */
ct_entry *ct_find(ct_table *t, const char *user_id, const char *id);

/* The backend update: 0, KOTTE_ENOTFOUND, KOTTE_ECONFLICT, KOTTE_EEXISTS
 * or KOTTE_ENOMEM; all or nothing. */
int ct_update(ct_table *t, const char *user_id, const char *id, const kotte_cred_patch *p,
              ct_entry **out);

/* 1 if removed, 0 if there was none. Without @p user_id: any owner (replay). */
int ct_remove(ct_table *t, const char *user_id, const char *id);

/* Records of a user by created_at, then id; *recs from kotte__malloc. */
int ct_list_user(ct_table *t, const char *user_id, kotte_cred_record **recs, size_t *n);

/* Up to @p limit records with key_id != @p key_id and id > @p after (NULL:
 * all), by id; *recs from kotte__malloc. O(records * log limit). */
int ct_scan_stale(ct_table *t, const char *key_id, const char *after, unsigned int limit,
                  kotte_cred_record **recs, size_t *n);

/* Records per key id, by key id; *counts from kotte__malloc, key_id
 * pointers into the table. */
int ct_key_counts(ct_table *t, kotte_cred_key_count **counts, size_t *n);

/* Deep copies of @p n records (results that must outlive the table's
 * state); free with ct_records_free(). 0 or KOTTE_ENOMEM. */
int ct_records_copy(const kotte_cred_record *in, size_t n, kotte_cred_record **out);
void ct_records_free(kotte_cred_record *recs, size_t n);

/* Calls @p visit for every entry (compaction). */
void ct_foreach(ct_table *t, void (*visit)(const ct_entry *e, void *ctx), void *ctx);

#endif
