/* The PostgreSQL session backend's read cache (see pg_session_cache.h for
 * the rules that keep it true). A hash table by row key; when full, the
 * oldest entry goes (insertion order: a session read often is re-read
 * from the database at least once per touch interval anyway). */
#include <stdio.h>
#include <string.h>

#include "session/pg_session_cache.h"

static void entry_free(kotte__pg_cache *c, kotte__pg_cache_entry *e) {
  HASH_DEL(c->by_key, e);
  c->n--;
  kotte__free(e->user_id);
  kotte__free(e->data);
  kotte__free(e);
}

static void flush(kotte__pg_cache *c) {
  kotte__pg_cache_entry *e, *tmp;
  HASH_ITER(hh, c->by_key, e, tmp) entry_free(c, e);
  c->seq++;
  c->stats.flushes++;
}

static void on_notify(const char *channel, const char *payload, int pid, void *ud) {
  (void)channel;
  (void)pid;
  kotte__pg_cache *c = ud;
  c->stats.invalidations++;
  kotte__pg_cache_forget(c, payload);
}

static void on_state(int up, const char *reason, void *ud) {
  kotte__pg_cache *c = ud;
  /* Down: notifications may be lost from now on, so nothing kept can be
   * trusted. Up: a fresh start; reads already under way must not fill. */
  if (!up)
    kotte__log(KOTTE_LOG_WARN, "postgresql session cache: bypassed until the listener is back "
                               "(%s)", reason);
  else if (c->stats.ups > 0)
    kotte__log(KOTTE_LOG_INFO, "postgresql session cache: listener back, cache in use again");
  if (up) c->stats.ups++;
  c->live = up;
  flush(c);
}

void kotte__pg_cache_init(kotte__pg_cache *c, kotte_pg_pool *pool, size_t max) {
  memset(c, 0, sizeof *c);
  c->pool = pool;
  c->max = max;
  c->stats.version = KOTTE_SESSION_PG_CACHE_STATS_VERSION;
}

int kotte__pg_cache_start(kotte__pg_cache *c) {
  if (c->listener) return 0;
  static const char *const channels[] = { KOTTE__PG_SESSION_CHANNEL };
  kotte_pg_listener_options lo = KOTTE_PG_LISTENER_OPTIONS_INIT;
  lo.channels = channels;
  lo.n_channels = 1;
  lo.on_notify = on_notify;
  lo.on_state = on_state;
  lo.userdata = c;
  return kotte_pg_listener_new(&c->listener, c->pool, &lo);
}

int kotte__pg_cache_get(kotte__pg_cache *c, const char *key, kotte_time now, kotte_time touch,
                        kotte_session_record *rec) {
  if (!c->live || !kotte_pg_listener_is_current(c->listener)) {
    c->stats.bypassed++;
    return 1;
  }
  kotte__pg_cache_entry *e;
  HASH_FIND_STR(c->by_key, key, e);
  if (e == NULL) {
    c->stats.misses++;
    return 1;
  }
  if (now > e->expires_at || kotte_session_touch_due(touch, e->last_activity, e->idle_timeout, now)) {
    entry_free(c, e); /* dead, or its slide is due: the database decides */
    c->stats.misses++;
    return 1;
  }
  memset(rec, 0, sizeof *rec);
  rec->user_id = e->user_id;
  rec->data = e->data;
  rec->data_len = e->data_len;
  rec->created_at = e->created_at;
  rec->last_activity = e->last_activity;
  rec->expires_at = e->expires_at;
  rec->max_expires_at = e->max_expires_at;
  rec->idle_timeout = e->idle_timeout;
  c->stats.hits++;
  return 0;
}

void kotte__pg_cache_fill(kotte__pg_cache *c, const char *key, const kotte_session_record *rec,
                          uint64_t seq) {
  if (!c->live || seq != c->seq || c->max == 0) return;
  kotte__pg_cache_entry *e;
  HASH_FIND_STR(c->by_key, key, e);
  if (e) entry_free(c, e);
  if (c->n >= c->max) entry_free(c, c->by_key); /* the oldest */
  e = kotte__calloc(1, sizeof *e);
  if (e == NULL) return;
  snprintf(e->key, sizeof e->key, "%s", key);
  e->user_id = kotte__strdup(rec->user_id);
  e->data = kotte__strndup(rec->data, rec->data_len);
  if (e->user_id == NULL || e->data == NULL) {
    kotte__free(e->user_id);
    kotte__free(e->data);
    kotte__free(e);
    return;
  }
  e->data_len = rec->data_len;
  e->created_at = rec->created_at;
  e->last_activity = rec->last_activity;
  e->expires_at = rec->expires_at;
  e->max_expires_at = rec->max_expires_at;
  e->idle_timeout = rec->idle_timeout;
  kotte__uthash_oom = 0;
  HASH_ADD_STR(c->by_key, key, e);
  if (kotte__uthash_oom) {
    kotte__free(e->user_id);
    kotte__free(e->data);
    kotte__free(e);
    return;
  }
  c->n++;
  c->stats.fills++;
}

void kotte__pg_cache_forget(kotte__pg_cache *c, const char *key) {
  c->seq++;
  kotte__pg_cache_entry *e;
  HASH_FIND_STR(c->by_key, key, e);
  if (e) entry_free(c, e);
}

void kotte__pg_cache_forget_user(kotte__pg_cache *c, const char *user_id) {
  c->seq++;
  kotte__pg_cache_entry *e, *tmp;
  HASH_ITER(hh, c->by_key, e, tmp)
  if (strcmp(e->user_id, user_id) == 0) entry_free(c, e);
}

void kotte__pg_cache_free(kotte__pg_cache *c) {
  kotte_pg_listener_free(c->listener);
  c->listener = NULL;
  c->live = 0;
  flush(c);
}
