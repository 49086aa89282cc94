/* The in-memory credential index: uthash by id, and per user a hash by
 * name plus a list. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credential/credential_table.h"

void kotte__cred_table_init(kotte__cred_table *t) { memset(t, 0, sizeof *t); }

size_t kotte__cred_table_count(const kotte__cred_table *t) { return HASH_COUNT(t->by_id); }

static void entry_free(kotte__cred_entry *e) {
  kotte__free(e->name);
  kotte__free(e->host);
  kotte__free(e->database);
  kotte__free(e->sslmode);
  kotte__free(e->username);
  kotte__free(e->password);
  kotte__free(e);
}

static void unlink_entry(kotte__cred_table *t, kotte__cred_entry *e) {
  kotte__cred_user *u = e->user;
  HASH_DEL(t->by_id, e);
  HASH_DELETE(hh_name, u->by_name, e);
  DL_DELETE(u->entries, e);
  if (u->entries == NULL) {
    HASH_DEL(t->by_user, u);
    kotte__free(u->user_id);
    kotte__free(u);
  }
}

void kotte__cred_table_clear(kotte__cred_table *t) {
  kotte__cred_entry *e, *tmp;
  HASH_ITER(hh, t->by_id, e, tmp) {
    unlink_entry(t, e);
    entry_free(e);
  }
}

void kotte__cred_table_record(const kotte__cred_entry *e, kotte_cred_record *r) {
  r->id = e->id;
  r->user_id = e->user->user_id;
  r->name = e->name;
  r->host = e->host;
  r->port = e->port;
  r->database = e->database;
  r->sslmode = e->sslmode;
  r->username = e->username;
  r->username_len = e->username_len;
  r->password = e->password;
  r->password_len = e->password_len;
  r->key_id = e->key_id;
  r->created_at = e->created_at;
  r->updated_at = e->updated_at;
}

static unsigned char *blob_dup(const unsigned char *p, size_t n) {
  unsigned char *d = kotte__malloc(n);
  if (d && n) memcpy(d, p, n);
  return d;
}

/* A detached entry holding copies of @p rec, or NULL. */
static kotte__cred_entry *entry_new(const kotte_cred_record *rec) {
  kotte__cred_entry *e = kotte__calloc(1, sizeof *e);
  if (e == NULL) return NULL;
  snprintf(e->id, sizeof e->id, "%s", rec->id);
  snprintf(e->key_id, sizeof e->key_id, "%s", rec->key_id);
  e->name = kotte__strdup(rec->name);
  e->host = kotte__strdup(rec->host);
  e->database = kotte__strdup(rec->database);
  e->sslmode = kotte__strdup(rec->sslmode);
  e->username = blob_dup(rec->username, rec->username_len);
  e->password = blob_dup(rec->password, rec->password_len);
  if (!e->name || !e->host || !e->database || !e->sslmode || !e->username || !e->password) {
    entry_free(e);
    return NULL;
  }
  e->username_len = rec->username_len;
  e->password_len = rec->password_len;
  e->port = rec->port;
  e->created_at = rec->created_at;
  e->updated_at = rec->updated_at;
  return e;
}

static kotte__cred_user *user_get(kotte__cred_table *t, const char *user_id, int create) {
  kotte__cred_user *u;
  HASH_FIND_STR(t->by_user, user_id, u);
  if (u || !create) return u;
  u = kotte__calloc(1, sizeof *u);
  if (u == NULL) return NULL;
  u->user_id = kotte__strdup(user_id);
  if (u->user_id == NULL) {
    kotte__free(u);
    return NULL;
  }
  kotte__uthash_oom = 0;
  HASH_ADD_KEYPTR(hh, t->by_user, u->user_id, strlen(u->user_id), u);
  if (kotte__uthash_oom) {
    kotte__free(u->user_id);
    kotte__free(u);
    return NULL;
  }
  return u;
}

static void user_drop_if_empty(kotte__cred_table *t, kotte__cred_user *u) {
  if (u->entries) return;
  HASH_DEL(t->by_user, u);
  kotte__free(u->user_id);
  kotte__free(u);
}

static kotte__cred_entry *by_name(kotte__cred_user *u, const char *name) {
  kotte__cred_entry *e;
  HASH_FIND(hh_name, u->by_name, name, strlen(name), e);
  return e;
}

/* Links a detached entry under user @p u. 0 or KOTTE_ENOMEM (then unlinked). */
static int link_entry(kotte__cred_table *t, kotte__cred_user *u, kotte__cred_entry *e) {
  e->user = u;
  kotte__uthash_oom = 0;
  HASH_ADD(hh, t->by_id, id, strlen(e->id), e);
  if (kotte__uthash_oom) return KOTTE_ENOMEM;
  HASH_ADD_KEYPTR(hh_name, u->by_name, e->name, strlen(e->name), e);
  if (kotte__uthash_oom) {
    HASH_DEL(t->by_id, e);
    return KOTTE_ENOMEM;
  }
  DL_APPEND(u->entries, e);
  return 0;
}

int kotte__cred_table_insert(kotte__cred_table *t, const kotte_cred_record *rec,
                             kotte__cred_entry **out) {
  kotte__cred_entry *e;
  HASH_FIND_STR(t->by_id, rec->id, e);
  if (e) return KOTTE_EEXISTS;
  kotte__cred_user *u = user_get(t, rec->user_id, 1);
  if (u == NULL) return KOTTE_ENOMEM;
  if (by_name(u, rec->name)) {
    user_drop_if_empty(t, u);
    return KOTTE_EEXISTS;
  }
  e = entry_new(rec);
  int rc = e ? link_entry(t, u, e) : KOTTE_ENOMEM;
  if (rc != 0) {
    if (e) entry_free(e);
    user_drop_if_empty(t, u);
    return rc;
  }
  if (out) *out = e;
  return 0;
}

int kotte__cred_table_put(kotte__cred_table *t, const kotte_cred_record *rec,
                          kotte__cred_entry **out) {
  kotte__cred_table_remove(t, NULL, rec->id);
  return kotte__cred_table_insert(t, rec, out);
}

kotte__cred_entry *kotte__cred_table_find(kotte__cred_table *t, const char *user_id,
                                          const char *id) {
  kotte__cred_entry *e;
  HASH_FIND_STR(t->by_id, id, e);
  if (e == NULL || strcmp(e->user->user_id, user_id) != 0) return NULL;
  return e;
}

static int blob_eq(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen) {
  return alen == blen && memcmp(a, b, alen) == 0;
}

int kotte__cred_table_update(kotte__cred_table *t, const char *user_id, const char *id,
                             const kotte_cred_patch *p, kotte__cred_entry **out) {
  int cas = p->expect_key_id || p->expect_username || p->expect_password;
  kotte__cred_entry *e = kotte__cred_table_find(t, user_id, id);
  if (e == NULL) return cas ? KOTTE_ECONFLICT : KOTTE_ENOTFOUND;
  if ((p->expect_key_id && strcmp(e->key_id, p->expect_key_id) != 0) ||
      (p->expect_username &&
       !blob_eq(e->username, e->username_len, p->expect_username, p->expect_username_len)) ||
      (p->expect_password &&
       !blob_eq(e->password, e->password_len, p->expect_password, p->expect_password_len)))
    return KOTTE_ECONFLICT;
  kotte__cred_user *u = e->user;
  if ((p->set & KOTTE_CRED_SET_NAME) && strcmp(p->name, e->name) != 0 && by_name(u, p->name))
    return KOTTE_EEXISTS;
  /* Allocate everything first, then swap: all or nothing. */
  char *name = NULL, *host = NULL, *database = NULL, *sslmode = NULL;
  unsigned char *username = NULL, *password = NULL;
  int oom = 0;
#define DUP(bit, dst, expr)                                                  \
  if (p->set & (bit)) oom |= ((dst) = (expr)) == NULL;
  DUP(KOTTE_CRED_SET_NAME, name, kotte__strdup(p->name))
  DUP(KOTTE_CRED_SET_HOST, host, kotte__strdup(p->host))
  DUP(KOTTE_CRED_SET_DATABASE, database, kotte__strdup(p->database))
  DUP(KOTTE_CRED_SET_SSLMODE, sslmode, kotte__strdup(p->sslmode))
  DUP(KOTTE_CRED_SET_USERNAME, username, blob_dup(p->username, p->username_len))
  DUP(KOTTE_CRED_SET_PASSWORD, password, blob_dup(p->password, p->password_len))
#undef DUP
  if (oom) {
    kotte__free(name);
    kotte__free(host);
    kotte__free(database);
    kotte__free(sslmode);
    kotte__free(username);
    kotte__free(password);
    return KOTTE_ENOMEM;
  }
  if (name) {
    /* Re-key the name index: delete, swap, add. The add can only fail if
     * this was the user's one record and the index must be re-created; the
     * name is then free anyway, so the entry stays reachable by id and the
     * next journal load rebuilds the index. */
    HASH_DELETE(hh_name, u->by_name, e);
    kotte__free(e->name);
    e->name = name;
    kotte__uthash_oom = 0;
    HASH_ADD_KEYPTR(hh_name, u->by_name, e->name, strlen(e->name), e);
  }
#define SWAP(field, val)                                                     \
  if (val) {                                                                 \
    kotte__free(e->field);                                                   \
    e->field = (val);                                                        \
  }
  SWAP(host, host)
  SWAP(database, database)
  SWAP(sslmode, sslmode)
  SWAP(username, username)
  SWAP(password, password)
#undef SWAP
  if (username) e->username_len = p->username_len;
  if (password) e->password_len = p->password_len;
  if (p->set & KOTTE_CRED_SET_PORT) e->port = p->port;
  if (p->set & KOTTE_CRED_SET_KEY_ID) snprintf(e->key_id, sizeof e->key_id, "%s", p->key_id);
  if (p->set & KOTTE_CRED_SET_UPDATED_AT) e->updated_at = p->updated_at;
  if (out) *out = e;
  return 0;
}

int kotte__cred_table_remove(kotte__cred_table *t, const char *user_id, const char *id) {
  kotte__cred_entry *e;
  HASH_FIND_STR(t->by_id, id, e);
  if (e == NULL || (user_id && strcmp(e->user->user_id, user_id) != 0)) return 0;
  unlink_entry(t, e);
  entry_free(e);
  return 1;
}

static int by_created(const void *a, const void *b) {
  const kotte_cred_record *x = a, *y = b;
  if (x->created_at != y->created_at) return x->created_at < y->created_at ? -1 : 1;
  return strcmp(x->id, y->id);
}

int kotte__cred_table_list_user(kotte__cred_table *t, const char *user_id, kotte_cred_record **recs,
                                size_t *n) {
  *recs = NULL;
  *n = 0;
  kotte__cred_user *u = user_get(t, user_id, 0);
  size_t count = 0;
  kotte__cred_entry *e;
  if (u) DL_COUNT(u->entries, e, count);
  kotte_cred_record *r = kotte__calloc(count ? count : 1, sizeof *r);
  if (r == NULL) return KOTTE_ENOMEM;
  size_t i = 0;
  if (u) DL_FOREACH(u->entries, e) kotte__cred_table_record(e, &r[i++]);
  qsort(r, i, sizeof *r, by_created);
  *recs = r;
  *n = i;
  return 0;
}

/* A max-heap by id of the `limit` smallest candidates seen so far. */
static void heap_sift_down(kotte__cred_entry **h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && strcmp(h[l]->id, h[m]->id) > 0) m = l;
    if (r < n && strcmp(h[r]->id, h[m]->id) > 0) m = r;
    if (m == i) return;
    kotte__cred_entry *tmp = h[i];
    h[i] = h[m];
    h[m] = tmp;
    i = m;
  }
}

static void heap_sift_up(kotte__cred_entry **h, size_t i) {
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (strcmp(h[i]->id, h[parent]->id) <= 0) return;
    kotte__cred_entry *tmp = h[i];
    h[i] = h[parent];
    h[parent] = tmp;
    i = parent;
  }
}

static int by_id(const void *a, const void *b) {
  return strcmp(((const kotte_cred_record *)a)->id, ((const kotte_cred_record *)b)->id);
}

int kotte__cred_table_scan_stale(kotte__cred_table *t, const char *key_id, const char *after,
                                 unsigned int limit, kotte_cred_record **recs, size_t *n) {
  *recs = NULL;
  *n = 0;
  kotte__cred_entry **heap = kotte__calloc(limit ? limit : 1, sizeof *heap);
  if (heap == NULL) return KOTTE_ENOMEM;
  size_t size = 0;
  kotte__cred_entry *e, *tmp;
  HASH_ITER(hh, t->by_id, e, tmp) {
    if (strcmp(e->key_id, key_id) == 0 || (after && strcmp(e->id, after) <= 0)) continue;
    if (size < limit) {
      heap[size] = e;
      heap_sift_up(heap, size++);
    } else if (limit && strcmp(e->id, heap[0]->id) < 0) {
      heap[0] = e;
      heap_sift_down(heap, size, 0);
    }
  }
  kotte_cred_record *r = kotte__calloc(size ? size : 1, sizeof *r);
  if (r == NULL) {
    kotte__free(heap);
    return KOTTE_ENOMEM;
  }
  for (size_t i = 0; i < size; i++) kotte__cred_table_record(heap[i], &r[i]);
  kotte__free(heap);
  qsort(r, size, sizeof *r, by_id);
  *recs = r;
  *n = size;
  return 0;
}

static int by_key(const void *a, const void *b) {
  return strcmp(((const kotte_cred_key_count *)a)->key_id,
                ((const kotte_cred_key_count *)b)->key_id);
}

int kotte__cred_table_key_counts(kotte__cred_table *t, kotte_cred_key_count **counts, size_t *n) {
  *counts = NULL;
  *n = 0;
  /* Few distinct keys (a handful during a rotation): a linear list. */
  size_t cap = 4, len = 0;
  kotte_cred_key_count *c = kotte__calloc(cap, sizeof *c);
  if (c == NULL) return KOTTE_ENOMEM;
  kotte__cred_entry *e, *tmp;
  HASH_ITER(hh, t->by_id, e, tmp) {
    size_t i;
    for (i = 0; i < len; i++)
      if (strcmp(c[i].key_id, e->key_id) == 0) break;
    if (i == len) {
      if (len == cap) {
        kotte_cred_key_count *g = kotte__realloc(c, 2 * cap * sizeof *c);
        if (g == NULL) {
          kotte__free(c);
          return KOTTE_ENOMEM;
        }
        c = g;
        cap *= 2;
      }
      c[len].key_id = e->key_id;
      c[len++].count = 0;
    }
    c[i].count++;
  }
  qsort(c, len, sizeof *c, by_key);
  *counts = c;
  *n = len;
  return 0;
}

void kotte__cred_table_foreach(kotte__cred_table *t,
                               void (*visit)(const kotte__cred_entry *e, void *ctx), void *ctx) {
  kotte__cred_entry *e, *tmp;
  HASH_ITER(hh, t->by_id, e, tmp) visit(e, ctx);
}

static void record_fields_free(kotte_cred_record *r) {
  kotte__free((char *)r->id);
  kotte__free((char *)r->user_id);
  kotte__free((char *)r->name);
  kotte__free((char *)r->host);
  kotte__free((char *)r->database);
  kotte__free((char *)r->sslmode);
  kotte__free((unsigned char *)r->username);
  kotte__free((unsigned char *)r->password);
  kotte__free((char *)r->key_id);
}

int kotte__cred_records_copy(const kotte_cred_record *in, size_t n, kotte_cred_record **out) {
  kotte_cred_record *r = kotte__calloc(n ? n : 1, sizeof *r);
  *out = NULL;
  if (r == NULL) return KOTTE_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    const kotte_cred_record *s = &in[i];
    kotte_cred_record *d = &r[i];
    *d = *s;
    d->id = kotte__strdup(s->id);
    d->user_id = kotte__strdup(s->user_id);
    d->name = kotte__strdup(s->name);
    d->host = kotte__strdup(s->host);
    d->database = kotte__strdup(s->database);
    d->sslmode = kotte__strdup(s->sslmode);
    d->key_id = kotte__strdup(s->key_id);
    d->username = s->username ? blob_dup(s->username, s->username_len) : NULL;
    d->password = s->password ? blob_dup(s->password, s->password_len) : NULL;
    if (!d->id || !d->user_id || !d->name || !d->host || !d->database || !d->sslmode ||
        !d->key_id || (s->username && !d->username) || (s->password && !d->password)) {
      kotte__cred_records_free(r, i + 1);
      return KOTTE_ENOMEM;
    }
  }
  *out = r;
  return 0;
}

void kotte__cred_records_free(kotte_cred_record *r, size_t n) {
  if (r == NULL) return;
  for (size_t i = 0; i < n; i++) record_fields_free(&r[i]);
  kotte__free(r);
}
