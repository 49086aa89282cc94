/* The in-memory session index: uthash by id, plus a per-user list. */
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "session/session_table.h"

static int alive(const kotte__session_entry *e, kotte_time now) { return now <= e->expires_at; }

static kotte_time cap(kotte_time a, kotte_time b) { return a < b ? a : b; }

void kotte__session_table_init(kotte__session_table *t) { memset(t, 0, sizeof *t); }

size_t kotte__session_table_count(const kotte__session_table *t) { return HASH_COUNT(t->by_id); }

static void free_entry(kotte__session_table *t, kotte__session_entry *e) {
  kotte__session_user *u = e->user;
  HASH_DEL(t->by_id, e);
  DL_DELETE(u->sessions, e);
  if (u->sessions == NULL) {
    HASH_DEL(t->by_user, u);
    kotte__free(u->user_id);
    kotte__free(u);
  }
  kotte__free(e->data);
  kotte__free(e->sealed);
  kotte__free(e);
}

void kotte__session_table_clear(kotte__session_table *t) {
  kotte__session_entry *e, *tmp;
  HASH_ITER(hh, t->by_id, e, tmp) free_entry(t, e);
}

void kotte__session_table_record(const kotte__session_entry *e, kotte_session_record *r) {
  r->id = e->id;
  r->user_id = e->user->user_id;
  r->data = e->data;
  r->data_len = e->data_len;
  r->created_at = e->created_at;
  r->last_activity = e->last_activity;
  r->expires_at = e->expires_at;
  r->max_expires_at = e->max_expires_at;
  r->idle_timeout = e->idle_timeout;
}

static kotte__session_user *user_get(kotte__session_table *t, const char *user_id, int create) {
  kotte__session_user *u;
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

static void set_fields(kotte__session_entry *e, const kotte_session_record *r) {
  e->created_at = r->created_at;
  e->last_activity = r->last_activity;
  e->expires_at = r->expires_at;
  e->max_expires_at = r->max_expires_at;
  e->idle_timeout = r->idle_timeout;
}

int kotte__session_table_put_raw(kotte__session_table *t, const kotte_session_record *r,
                                 kotte__session_entry **out) {
  kotte__session_entry *e;
  char *data = kotte__strndup(r->data, r->data_len);
  if (data == NULL) return KOTTE_ENOMEM;
  HASH_FIND_STR(t->by_id, r->id, e);
  if (e && strcmp(e->user->user_id, r->user_id) != 0) {
    free_entry(t, e); /* owner changed: re-file under the new user */
    e = NULL;
  }
  if (e == NULL) {
    kotte__session_user *u = user_get(t, r->user_id, 1);
    e = u ? kotte__calloc(1, sizeof *e) : NULL;
    if (e == NULL) {
      if (u && u->sessions == NULL) {
        HASH_DEL(t->by_user, u);
        kotte__free(u->user_id);
        kotte__free(u);
      }
      kotte__free(data);
      return KOTTE_ENOMEM;
    }
    memcpy(e->id, r->id, KOTTE_SESSION_ID_LEN + 1);
    e->user = u;
    kotte__uthash_oom = 0;
    HASH_ADD_STR(t->by_id, id, e);
    if (kotte__uthash_oom) {
      kotte__free(e);
      kotte__free(data);
      return KOTTE_ENOMEM;
    }
    DL_APPEND(u->sessions, e);
  } else {
    kotte__free(e->data);
  }
  e->data = data;
  e->data_len = r->data_len;
  set_fields(e, r);
  if (out) *out = e;
  return 0;
}

int kotte__session_table_put(kotte__session_table *t, const kotte_session_record *r, int replace,
                             kotte_time now, kotte__session_entry **out) {
  kotte__session_entry *e;
  HASH_FIND_STR(t->by_id, r->id, e);
  if (e && !alive(e, now)) {
    free_entry(t, e);
    e = NULL;
  }
  if (e && !replace) return KOTTE_EEXISTS;
  kotte_session_record copy = *r;
  if (e) {
    copy.created_at = e->created_at;
    copy.max_expires_at = e->max_expires_at;
    copy.expires_at = cap(copy.expires_at, e->max_expires_at);
  }
  return kotte__session_table_put_raw(t, &copy, out);
}

int kotte__session_table_get(kotte__session_table *t, const char *id, kotte_time now, int slide,
                             kotte__session_entry **out, int *removed) {
  kotte__session_entry *e;
  if (removed) *removed = 0;
  HASH_FIND_STR(t->by_id, id, e);
  if (e == NULL) return KOTTE_ENOTFOUND;
  if (!alive(e, now)) {
    free_entry(t, e);
    if (removed) *removed = 1;
    return KOTTE_ENOTFOUND;
  }
  if (slide) {
    e->last_activity = now;
    e->expires_at = cap(now + e->idle_timeout, e->max_expires_at);
  }
  *out = e;
  return 0;
}

int kotte__session_table_get_touch(kotte__session_table *t, const char *id, kotte_time now,
                                   kotte_time touch, kotte__session_entry **out, int *removed,
                                   int *slid) {
  *slid = 0;
  int rc = kotte__session_table_get(t, id, now, 0, out, removed);
  if (rc != 0) return rc;
  kotte__session_entry *e = *out;
  if (kotte_session_touch_due(touch, e->last_activity, e->idle_timeout, now)) {
    e->last_activity = now;
    e->expires_at = cap(now + e->idle_timeout, e->max_expires_at);
    *slid = 1;
  }
  return 0;
}

int kotte__session_table_update(kotte__session_table *t, const char *id, kotte_time now,
                                const char *patch, size_t patch_len, size_t max,
                                kotte__session_entry **out) {
  kotte__session_entry *e;
  int rc = kotte__session_table_get(t, id, now, 0, &e, NULL);
  if (rc != 0) return rc;
  char *merged;
  size_t len;
  rc = kotte__json_merge(e->data, e->data_len, patch, patch_len, max, &merged, &len);
  if (rc != 0) return rc;
  kotte__free(e->data);
  e->data = merged;
  e->data_len = len;
  e->last_activity = now;
  e->expires_at = cap(now + e->idle_timeout, e->max_expires_at);
  *out = e;
  return 0;
}

kotte__session_entry *kotte__session_table_find(kotte__session_table *t, const char *id) {
  kotte__session_entry *e;
  HASH_FIND_STR(t->by_id, id, e);
  return e;
}

int kotte__session_table_remove(kotte__session_table *t, const char *id) {
  kotte__session_entry *e;
  HASH_FIND_STR(t->by_id, id, e);
  if (e == NULL) return 0;
  free_entry(t, e);
  return 1;
}

int kotte__session_table_rename(kotte__session_table *t, const char *old_id, const char *new_id,
                                kotte_time now, kotte__session_entry **out) {
  kotte__session_entry *e, *taken;
  int rc = kotte__session_table_get(t, old_id, now, 1, &e, NULL);
  if (rc != 0) return rc;
  HASH_FIND_STR(t->by_id, new_id, taken);
  if (taken) return KOTTE_EEXISTS;
  /* Re-key in place: delete from the id hash, change the key, re-add.
   * HASH_ADD after HASH_DEL of the same element needs no allocation
   * unless the table grows, which cannot happen at the same count. */
  HASH_DEL(t->by_id, e);
  memcpy(e->id, new_id, KOTTE_SESSION_ID_LEN + 1);
  kotte__uthash_oom = 0;
  HASH_ADD_STR(t->by_id, id, e);
  if (kotte__uthash_oom) return KOTTE_ENOMEM;
  *out = e;
  return 0;
}

void kotte__session_table_touch_raw(kotte__session_table *t, const char *id, kotte_time last,
                                    kotte_time expires) {
  kotte__session_entry *e;
  HASH_FIND_STR(t->by_id, id, e);
  if (e) {
    e->last_activity = last;
    e->expires_at = expires;
  }
}

static int by_created(const void *a, const void *b) {
  const kotte_session_record *x = a, *y = b;
  if (x->created_at != y->created_at) return x->created_at < y->created_at ? -1 : 1;
  return strcmp(x->id, y->id);
}

int kotte__session_table_list_user(kotte__session_table *t, const char *user_id, kotte_time now,
                                   kotte_session_record **recs, size_t *n) {
  *recs = NULL;
  *n = 0;
  kotte__session_user *u = user_get(t, user_id, 0);
  if (u == NULL) return 0;
  size_t count = 0;
  kotte__session_entry *e;
  DL_COUNT(u->sessions, e, count);
  kotte_session_record *r = kotte__calloc(count, sizeof *r);
  if (r == NULL) return KOTTE_ENOMEM;
  size_t i = 0;
  DL_FOREACH(u->sessions, e) {
    if (alive(e, now)) kotte__session_table_record(e, &r[i++]);
  }
  qsort(r, i, sizeof *r, by_created);
  *recs = r;
  *n = i;
  return 0;
}

uint64_t kotte__session_table_remove_user(kotte__session_table *t, const char *user_id) {
  kotte__session_user *u = user_get(t, user_id, 0);
  if (u == NULL) return 0;
  uint64_t n = 0;
  kotte__session_entry *e, *tmp;
  /* free_entry frees `u` with its last session, so stop on that one. */
  DL_FOREACH_SAFE(u->sessions, e, tmp) {
    int last = (tmp == NULL);
    free_entry(t, e);
    n++;
    if (last) break;
  }
  return n;
}

uint64_t kotte__session_table_purge(kotte__session_table *t, kotte_time now, unsigned int limit,
                                    kotte__session_visit_fn visit, void *ctx) {
  uint64_t n = 0;
  kotte__session_entry *e, *tmp;
  HASH_ITER(hh, t->by_id, e, tmp) {
    if (n >= limit) break;
    if (alive(e, now)) continue;
    if (visit) visit(e, ctx);
    free_entry(t, e);
    n++;
  }
  return n;
}

void kotte__session_table_foreach(kotte__session_table *t, kotte__session_visit_fn visit,
                                  void *ctx) {
  kotte__session_entry *e, *tmp;
  HASH_ITER(hh, t->by_id, e, tmp) visit(e, ctx);
}
