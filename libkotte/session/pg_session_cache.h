/* Private: the PostgreSQL session backend's per-process read cache, kept
 * true across replicas by LISTEN/NOTIFY (sql/migrations/0005: a trigger
 * NOTIFYs channel kotte_sessions with the row key in the transaction of
 * every delete and of every update that changes more than the slide).
 *
 * Rules, each one a reason a stale record is never answered:
 *  - it answers only while its listener is up and current
 *    (kotte_pg_listener_is_current(): nothing undelivered, nothing unread
 *    on the socket); down, it is emptied and bypassed until the listener
 *    is up again on a fresh connection;
 *  - a record read from the database enters only if nothing was
 *    invalidated between the query's sending and its result (`seq`): a
 *    NOTIFY delivered meanwhile may concern what the query saw;
 *  - this process's own writes forget the key when sent and when done;
 *  - expiry and the touch interval are checked on every hit: a dead
 *    record, or one whose slide is due, goes to the database. */
#ifndef KOTTE_PG_SESSION_CACHE_H
#define KOTTE_PG_SESSION_CACHE_H

#include "core/uthash_config.h"
#include "kotte/pg.h"
#include "kotte/sys/session_backend.h"

#define KOTTE__PG_SESSION_CHANNEL "kotte_sessions"

typedef struct kotte__pg_cache_entry {
  char key[48]; /* the row key (keyed hash of the token) */
  char *user_id;
  char *data;
  size_t data_len;
  kotte_time created_at, last_activity, expires_at, max_expires_at, idle_timeout;
  UT_hash_handle hh;
} kotte__pg_cache_entry;

typedef struct kotte__pg_cache {
  kotte_pg_pool *pool;
  kotte_pg_listener *listener; /* NULL until first use (loop thread) */
  kotte__pg_cache_entry *by_key; /* insertion order: the oldest goes first */
  size_t n, max;
  uint64_t seq; /* moves at every invalidation, down and up */
  int live;     /* the listener said up (and not down since) */
  kotte_session_pg_cache_stats stats;
} kotte__pg_cache;

void kotte__pg_cache_init(kotte__pg_cache *c, kotte_pg_pool *pool, size_t max);
/* Starts the listener on first use. Loop thread. 0 or a listener error. */
int kotte__pg_cache_start(kotte__pg_cache *c);
/* A hit: *rec points into the cache (valid until the next cache call; its
 * id is not set). 0 for a hit, 1 for a miss (ask the database). */
int kotte__pg_cache_get(kotte__pg_cache *c, const char *key, kotte_time now, kotte_time touch,
                        kotte_session_record *rec);
/* Keeps @p rec (read with the cache at @p seq) unless something was
 * invalidated since. */
void kotte__pg_cache_fill(kotte__pg_cache *c, const char *key, const kotte_session_record *rec,
                          uint64_t seq);
void kotte__pg_cache_forget(kotte__pg_cache *c, const char *key);
void kotte__pg_cache_forget_user(kotte__pg_cache *c, const char *user_id);
void kotte__pg_cache_free(kotte__pg_cache *c);

#endif
