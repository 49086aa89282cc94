/*
 * libkotte — the session store.
 *
 * A kotte_session_store wraps one backend (memory, json_file, postgresql or
 * your own, see kotte/sys/session_backend.h) and owns the semantics, so all
 * backends behave alike:
 *
 *  - ids are 256-bit CSPRNG tokens, base64url, 43 characters;
 *  - every session has an idle expiry that each get/update/touch slides
 *    (default 1800 s) and an absolute maximum age that nothing extends
 *    (default 3600 s); a session is alive while now <= its expiry;
 *  - session data is a JSON object (text), at most max_data_size bytes;
 *  - update merges top-level keys atomically inside the backend;
 *  - an update or touch of a deleted or expired session fails with
 *    KOTTE_ENOTFOUND and never brings it back ("logout wins").
 *
 * Two ways to call it:
 *
 *  - asynchronous, on a libuv loop the caller runs: every call that
 *    returns 0 ends in exactly one callback, on the loop thread, never
 *    before the call has returned; a call that returns non-zero never calls
 *    back. Concurrent operations have no ordering guarantee between them.
 *  - blocking (*_sync), for a store opened on a kotte_runtime: callable from
 *    any thread except the runtime's loop thread, with a per-call timeout in
 *    milliseconds (negative: the runtime's default). On KOTTE_ETIMEDOUT the
 *    operation may still complete later in the backend.
 */
#ifndef KOTTE_SESSION_H
#define KOTTE_SESSION_H

#include <uv.h>

#include "kotte/core.h"
#include "kotte/keyring.h"
#include "kotte/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kotte_session_store kotte_session_store;
typedef struct kotte_session_backend kotte_session_backend;

/** One session, owned by whoever received it; release with kotte_session_free(). */
typedef struct kotte_session kotte_session;

/** A list of sessions, owned by the receiver; release with kotte_session_list_free(). */
typedef struct kotte_session_list kotte_session_list;

/** Length of a session id (a kotte token), without the NUL. */
#define KOTTE_SESSION_ID_LEN KOTTE_TOKEN_LEN

#define KOTTE_SESSION_OPTIONS_VERSION 3

/** touch_interval_s: 1 % of each session's own idle timeout (the default). */
#define KOTTE_SESSION_TOUCH_DEFAULT (-1)

/**
 * Store options. Initialise with KOTTE_SESSION_OPTIONS_INIT; fields are only
 * ever appended. Version 1 ended after clock_ctx; version 2 adds keyring;
 * version 3 adds touch_interval_s (options of an older version get its
 * default).
 */
typedef struct kotte_session_options {
  unsigned int version;
  /** Idle timeout in seconds that get/update/touch slide (Kotte: 1800). */
  int64_t idle_timeout_s;
  /** Absolute maximum age in seconds from creation (Kotte: 3600). */
  int64_t max_age_s;
  /** Largest serialised session data in bytes (default 65536). */
  size_t max_data_size;
  /** Sessions purged per backend round by kotte_session_purge_expired() (default 500). */
  unsigned int purge_batch;
  /** Clock for expiry decisions; NULL = kotte_clock_now(). */
  kotte_clock_fn clock;
  void *clock_ctx;
  /**
   * Seals marked secrets inside session data (v2). A value written as
   * {"$secret": VALUE} anywhere in the data of create, set or update is
   * stored as {"$sealed": "<base64url blob>"} (VALUE's JSON, sealed with
   * kotte_keyring_seal() under the label "kotte.session.secret.v1"), and
   * comes back from every read as {"$secret": VALUE} again, so a caller's
   * read-modify-write never stores it in clear. NULL: data with a marker is
   * refused with KOTTE_EKEY. The store keeps its own reference to the ring.
   * Reading a blob sealed by a key the ring lacks fails with KOTTE_EKEY;
   * a tampered blob with KOTTE_EINTEGRITY. The size limit applies to the
   * sealed data.
   */
  kotte_keyring *keyring;
  /**
   * The touch interval (v3), in seconds: a get or touch writes the slid idle
   * expiry back only when the session's stored last activity is at least
   * this old; a read inside the interval writes nothing (on PostgreSQL it is
   * one SELECT) and answers the stored times. 0: every read writes, as
   * before version 3. KOTTE_SESSION_TOUCH_DEFAULT (-1, the default): 1 % of
   * the session's own idle timeout (18 s for Kotte's 1800 s), so that short
   * timeouts stay nearly exact. update, set and regenerate always write.
   *
   * The bound this gives: the stored last activity lags the last read by
   * less than one interval, so a session may expire up to one interval
   * early (on any replica, this one included), never late; and it never
   * outlives its absolute expiry. Backends of version 1 or 2 (without
   * get_touch) write on every read whatever the interval. Must be -1 or
   * between 0 and the idle timeout.
   */
  int64_t touch_interval_s;
} kotte_session_options;

#define KOTTE_SESSION_OPTIONS_INIT                                           \
  { KOTTE_SESSION_OPTIONS_VERSION, 1800, 3600, 65536, 500, NULL, NULL, NULL, \
    KOTTE_SESSION_TOUCH_DEFAULT }

/* ------------------------------------------------------------------ */
/* Sessions                                                            */
/* ------------------------------------------------------------------ */

/** The session id (43 characters). Never NULL. */
KOTTE_EXTERN const char *kotte_session_id(const kotte_session *s);
/** The owning user's id. Never NULL. */
KOTTE_EXTERN const char *kotte_session_user_id(const kotte_session *s);
/** The data: a NUL-terminated, compact JSON object. Never NULL. */
KOTTE_EXTERN const char *kotte_session_data(const kotte_session *s);
/** Creation time (µs since the epoch, UTC). */
KOTTE_EXTERN kotte_time kotte_session_created_at(const kotte_session *s);
/** Time of the last sliding access. */
KOTTE_EXTERN kotte_time kotte_session_last_activity(const kotte_session *s);
/** When the session expires unless used again: min(last_activity + idle, max_expires_at). */
KOTTE_EXTERN kotte_time kotte_session_expires_at(const kotte_session *s);
/** The absolute expiry (created_at + max age), never extended. */
KOTTE_EXTERN kotte_time kotte_session_max_expires_at(const kotte_session *s);
/** Frees @p s. NULL is a no-op. Any thread. */
KOTTE_EXTERN void kotte_session_free(kotte_session *s);

/** Number of sessions in @p list (0 for NULL). */
KOTTE_EXTERN size_t kotte_session_list_count(const kotte_session_list *list);
/** The i-th session, owned by the list; NULL when out of range. */
KOTTE_EXTERN const kotte_session *kotte_session_list_get(const kotte_session_list *list, size_t i);
/** Frees the list and its sessions. NULL is a no-op. */
KOTTE_EXTERN void kotte_session_list_free(kotte_session_list *list);

/* ------------------------------------------------------------------ */
/* Built-in backends                                                   */
/* ------------------------------------------------------------------ */

/**
 * An in-process backend: a hash table, O(1) get and update, thread-safe.
 * Nothing survives the process. *out is owned by the caller until a store
 * takes it. Returns 0 or KOTTE_ENOMEM. Any thread.
 */
KOTTE_EXTERN int kotte_session_backend_memory_new(kotte_session_backend **out);

/**
 * A file backend: an append-only journal at @p path with compaction.
 *
 *  - every acknowledged create/set/update/delete/regenerate was written and
 *    fdatasync'd before its callback ran, so it survives kill -9;
 *  - a crash at any moment leaves a journal that loads: an incomplete last
 *    record (a write that was never acknowledged) is dropped;
 *  - several processes may share one path: each operation holds an
 *    advisory lock on "<path>.lock" and first reads what others appended;
 *  - files are created with mode 0600;
 *  - the file never holds a usable token, as the postgresql backend's
 *    table does not: records are keyed by a keyed BLAKE2b hash of the id,
 *    and the id is stored only sealed (XChaCha20-Poly1305), so that
 *    list_user can return ids. Both keys are derived from @p secret (e.g.
 *    SESSION_SECRET_KEY, at least 16 bytes), exactly as the postgresql
 *    backend derives them; the same secret must be used every time the
 *    file is opened (with another one, every session reads as unknown).
 *    A journal written by libkotte 0.1 (clear ids, format version 1) is
 *    rewritten without them when it is opened;
 *  - a corrupt or foreign file fails with KOTTE_ECORRUPT (and the path in
 *    kotte_error_detail()) and is never overwritten or emptied;
 *  - a journal cut below what this process had read from it, or removed,
 *    while the store is open was damaged by someone else (libkotte never
 *    shrinks it in place beyond an incomplete last record nobody read):
 *    this is logged as an ERROR naming the path and the sizes, and the
 *    file is rewritten (fsync'd, renamed) from the records this process
 *    holds, all of them acknowledged, before the operation goes on. With
 *    several processes on one file, the first to notice restores what it
 *    has read; what only another one had read since is lost. Stop every
 *    process before replacing or restoring the file;
 *  - an existing empty file is a new store (logged as a warning): nothing
 *    is in it to lose;
 *  - the cost of one write does not depend on the number of sessions;
 *    the journal is compacted (rewritten to a temporary file, fsync'd and
 *    renamed) when it holds more than twice the live records.
 *
 * Work runs on @p loop's thread pool, one batch at a time, in submission
 * order. Slides of the idle expiry are appended without fsync: a crash may
 * lose the last slides, which only makes sessions expire sooner.
 *
 * Loads the journal now (on the calling thread). Returns 0, KOTTE_EINVAL,
 * KOTTE_EKEY (secret shorter than 16 bytes), KOTTE_ENOMEM, KOTTE_EIO,
 * KOTTE_ELOCK or KOTTE_ECORRUPT.
 */
KOTTE_EXTERN int kotte_session_backend_json_file_new(kotte_session_backend **out,
                                                     uv_loop_t *loop, const char *path,
                                                     const unsigned char *secret,
                                                     size_t secret_len);

typedef struct kotte_pg_pool kotte_pg_pool; /* kotte/pg.h */

/**
 * A PostgreSQL backend on table kotte_sessions (sql/migrations/), through
 * @p pool (kotte/pg.h), which it borrows: free the store first, then the
 * pool. Several replicas share the sessions.
 *
 *  - every operation is atomic in the database (nothing is read and
 *    written back by the client): two replicas never lose each other's
 *    update, and logout always wins;
 *  - the table never holds a usable token (the row key is a keyed hash of
 *    it). The keys are derived from @p secret (e.g. SESSION_SECRET_KEY, at
 *    least 16 bytes; every replica must use the same) and live in
 *    sodium_malloc memory;
 *  - it needs the schema of sql/migrations/ up to 0005 (0005 adds the
 *    NOTIFY triggers the cache of kotte_session_backend_postgresql_new_v2()
 *    relies on; this one has no cache). On an older schema, statements fail
 *    with KOTTE_EDB and a detail naming SQLSTATE 42703 and the need to
 *    migrate;
 *  - data comes back as compact JSON in jsonb's key order (shorter keys
 *    first), which may differ from the order it was stored in;
 *  - a get or touch inside the touch interval (kotte_session_options) is
 *    one SELECT and writes nothing; the slide, once due, is one UPDATE more;
 *  - gathered reads: on a pool with pipeline_depth > 1, the gets and
 *    touches of one loop turn go as one SELECT ... WHERE session_id =
 *    ANY($1) per connection without such a read out (at most 64 ids each),
 *    sent when the turn ends, with the turn's other queries. Each read
 *    answers as if alone (its own expiry check, reap of a dead row, slide
 *    when due); a failed statement answers each of its reads with the
 *    error. On a pool without pipelining every read is its own SELECT;
 *
 * The table, the statements and why slides are HOT updates:
 * docs/postgresql-schema.md.
 *
 * Any thread (statements are registered with the pool on first use, on the
 * loop thread). Returns 0, KOTTE_EINVAL, KOTTE_EKEY (secret too short),
 * KOTTE_ENOMEM or KOTTE_EINTERNAL.
 */
KOTTE_EXTERN int kotte_session_backend_postgresql_new(kotte_session_backend **out,
                                                      kotte_pg_pool *pool,
                                                      const unsigned char *secret,
                                                      size_t secret_len);

#define KOTTE_SESSION_PG_OPTIONS_VERSION 1

/**
 * Options of kotte_session_backend_postgresql_new_v2(). Initialise with
 * KOTTE_SESSION_PG_OPTIONS_INIT; fields are only ever appended.
 */
typedef struct kotte_session_pg_options {
  unsigned int version;
  /**
   * 1: keep a per-process cache of session records, so that a get or touch
   * inside the touch interval is answered without a round trip (default 0).
   *
   * It is kept true across replicas by LISTEN/NOTIFY: the schema (sql/
   * migrations/0005) NOTIFYs channel "kotte_sessions" with the row key in
   * the same transaction as every delete (logout, delete_user, purge),
   * update, set and regenerate, so a change on another replica reaches
   * this cache when that replica's commit does. The backend holds one
   * more connection of its own for this (kotte_pg_listener, kotte/pg.h).
   * While that connection is down, or has not yet confirmed its LISTEN,
   * the cache is emptied and bypassed (every read goes to the database);
   * a cached record is answered only when everything the connection
   * received was applied. Expiry and the touch interval are checked on
   * every cached read. What it cannot see: a notification still on its
   * way (a delete committed on another replica is visible here once its
   * NOTIFY arrives, typically within milliseconds), and a silent network
   * break before the listener's ping notices it (ping_interval_ms +
   * ping_timeout_ms, 4 s by default). Leave it off where a logout must be
   * visible on every replica the instant it commits.
   */
  int cache;
  /** Most records the cache holds; the oldest goes first (default 100000, ~0.5 KiB each). */
  size_t cache_max_entries;
} kotte_session_pg_options;

#define KOTTE_SESSION_PG_OPTIONS_INIT { KOTTE_SESSION_PG_OPTIONS_VERSION, 0, 100000 }

/**
 * kotte_session_backend_postgresql_new() with options (NULL: defaults).
 * Also returns KOTTE_EVERSION for options of an unknown version.
 */
KOTTE_EXTERN int kotte_session_backend_postgresql_new_v2(kotte_session_backend **out,
                                                         kotte_pg_pool *pool,
                                                         const unsigned char *secret,
                                                         size_t secret_len,
                                                         const kotte_session_pg_options *opts);

#define KOTTE_SESSION_PG_CACHE_STATS_VERSION 1

/** Counters of a postgresql backend's cache. Fields are only ever appended. */
typedef struct kotte_session_pg_cache_stats {
  unsigned int version; /**< set to KOTTE_SESSION_PG_CACHE_STATS_VERSION before the call */
  int live;             /**< 1 while the cache may answer (its listener is up) */
  uint64_t hits;        /**< reads answered from the cache */
  uint64_t misses;      /**< reads the cache sent to the database (absent, dead or slide due) */
  uint64_t bypassed;    /**< reads sent to the database because the cache could not be trusted */
  uint64_t fills;       /**< records taken in */
  uint64_t invalidations; /**< notifications received */
  uint64_t flushes;     /**< times it was emptied (listener up or down) */
  uint64_t ups;         /**< times its listener came up */
} kotte_session_pg_cache_stats;

/**
 * Fills @p out from a postgresql backend made with the cache (also after a
 * store took it, while the store lives). Loop thread. 0, KOTTE_EINVAL (not
 * such a backend), KOTTE_EVERSION.
 */
KOTTE_EXTERN int kotte_session_backend_postgresql_cache_stats(const kotte_session_backend *be,
                                                              kotte_session_pg_cache_stats *out);

/** Frees a backend that no store took. NULL is a no-op. */
KOTTE_EXTERN void kotte_session_backend_free(kotte_session_backend *backend);

/* ------------------------------------------------------------------ */
/* Store lifecycle                                                     */
/* ------------------------------------------------------------------ */

/**
 * Creates a store on @p loop. Call on the loop's thread (or before the
 * loop runs). On success the store owns @p backend (also on its way out);
 * on failure the caller still owns it. @p opts may be NULL for defaults.
 * Returns 0, KOTTE_EINVAL, KOTTE_EVERSION (options or backend version) or
 * KOTTE_ENOMEM. Free with kotte_session_store_free().
 */
KOTTE_EXTERN int kotte_session_store_new(kotte_session_store **out, uv_loop_t *loop,
                                         kotte_session_backend *backend,
                                         const kotte_session_options *opts);

/**
 * Like kotte_session_store_new() on @p rt's loop, and enables the *_sync
 * calls. Any thread but the loop thread.
 */
KOTTE_EXTERN int kotte_session_store_open(kotte_session_store **out, kotte_runtime *rt,
                                          kotte_session_backend *backend,
                                          const kotte_session_options *opts);

/**
 * Frees the store. Operations still in flight end with KOTTE_ECANCELED in
 * their callbacks; memory is released after the last of them and after
 * libuv's close callbacks. For a store from kotte_session_store_new(): call
 * on the loop thread (also from inside a callback) and keep running the
 * loop. For one from kotte_session_store_open(): call from any thread but
 * the loop thread; it returns once everything is released. NULL is a no-op.
 */
KOTTE_EXTERN void kotte_session_store_free(kotte_session_store *store);

/** The backend's name ("memory", "json_file", ...). Never NULL. */
KOTTE_EXTERN const char *kotte_session_store_backend_name(const kotte_session_store *store);

/* ------------------------------------------------------------------ */
/* Asynchronous API (loop thread only)                                 */
/* ------------------------------------------------------------------ */

/** Receives a session (owned by the callee, NULL unless status is 0). */
typedef void (*kotte_session_cb)(int status, kotte_session *session, void *userdata);
/** Receives only a status. */
typedef void (*kotte_session_status_cb)(int status, void *userdata);
/** Receives a count (of deleted or purged sessions). */
typedef void (*kotte_session_count_cb)(int status, uint64_t count, void *userdata);
/** Receives a list (owned by the callee, NULL unless status is 0). */
typedef void (*kotte_session_list_cb)(int status, kotte_session_list *list, void *userdata);

/**
 * Creates a session for @p user_id (non-empty, at most 255 bytes) with
 * @p data_json (a JSON object; NULL means {}). The id is fresh from the
 * CSPRNG. Errors: KOTTE_EINVAL, KOTTE_EBADJSON, KOTTE_ETOOBIG, backend errors.
 */
KOTTE_EXTERN int kotte_session_create(kotte_session_store *store, const char *user_id,
                                      const char *data_json, kotte_session_cb cb, void *userdata);

/**
 * Returns the session and slides its idle expiry (written back once per
 * touch interval, see kotte_session_options.touch_interval_s: inside the
 * interval the session comes back with its stored last activity and
 * expiry). KOTTE_ENOTFOUND when it
 * is unknown, deleted or expired; KOTTE_EBADID for an id of the wrong shape.
 */
KOTTE_EXTERN int kotte_session_get(kotte_session_store *store, const char *id,
                                   kotte_session_cb cb, void *userdata);

/**
 * Merges the top-level keys of @p patch_json (a JSON object) into the
 * session's data, atomically in the backend, slides the idle expiry and
 * returns the merged session. A key whose value is JSON null is stored as
 * null (not removed), as Python's dict.update does. KOTTE_ETOOBIG if the
 * merged data would exceed the limit (the session is then unchanged).
 */
KOTTE_EXTERN int kotte_session_update(kotte_session_store *store, const char *id,
                                      const char *patch_json, kotte_session_cb cb,
                                      void *userdata);

/**
 * Creates or replaces the session @p id (which must have the token shape)
 * with @p data_json, owned by @p user_id, with an idle timeout of
 * @p ttl_s seconds (0: the store's idle timeout). A replaced session keeps
 * its creation time and absolute expiry; a new one gets a fresh maximum
 * age. The caller chooses the id: never pass one a client supplied
 * (session fixation).
 */
KOTTE_EXTERN int kotte_session_set(kotte_session_store *store, const char *id,
                                   const char *user_id, const char *data_json, int64_t ttl_s,
                                   kotte_session_cb cb, void *userdata);

/** Deletes the session. KOTTE_ENOTFOUND if there was none. */
KOTTE_EXTERN int kotte_session_delete(kotte_session_store *store, const char *id,
                                      kotte_session_status_cb cb, void *userdata);

/**
 * Slides the idle expiry without returning the data (written back once per
 * touch interval, as for kotte_session_get()). KOTTE_ENOTFOUND if dead.
 */
KOTTE_EXTERN int kotte_session_touch(kotte_session_store *store, const char *id,
                                     kotte_session_status_cb cb, void *userdata);

/**
 * Moves a live session to a fresh id (same data, same creation time and
 * absolute expiry) atomically; the old id is dead afterwards. Use it at
 * privilege changes, such as login. Returns the session under its new id.
 */
KOTTE_EXTERN int kotte_session_regenerate(kotte_session_store *store, const char *id,
                                          kotte_session_cb cb, void *userdata);

/** Lists the live sessions of @p user_id (no sliding), oldest first. */
KOTTE_EXTERN int kotte_session_list_user(kotte_session_store *store, const char *user_id,
                                         kotte_session_list_cb cb, void *userdata);

/** Deletes every session of @p user_id; the callback gets how many. */
KOTTE_EXTERN int kotte_session_delete_user(kotte_session_store *store, const char *user_id,
                                           kotte_session_count_cb cb, void *userdata);

/**
 * Deletes expired sessions in batches of purge_batch, one backend round
 * per loop turn so that other operations interleave; the callback gets
 * the total.
 */
KOTTE_EXTERN int kotte_session_purge_expired(kotte_session_store *store,
                                             kotte_session_count_cb cb, void *userdata);

/**
 * Readiness: calls back with 0 if the store's backend can serve reads and
 * writes now, else the error that stops it (for a readiness probe, which
 * then reports the store not ready). Cheap enough to call every few
 * seconds; it changes no session. json_file: the journal can be locked and
 * read, and the last write to it succeeded; after a failed write (disk
 * full, a read-only or immutable file) the check itself appends one record
 * {"op":"nop"} (padded past 4 KiB, so that it needs new disk space) with
 * fdatasync until that succeeds again, so it
 * reports the journal writable again without waiting for a user's write,
 * and never grows the journal while writes succeed (KOTTE_EIO until then).
 * Backends without their own check (memory, postgresql, version-1
 * backends): a get of an id that does not exist, answered without error.
 */
KOTTE_EXTERN int kotte_session_store_check(kotte_session_store *store, kotte_session_status_cb cb,
                                           void *userdata);

/* ------------------------------------------------------------------ */
/* Blocking API (stores from kotte_session_store_open(); any thread but */
/* the loop thread). Return 0 or a negative code; *out is set on 0.    */
/* ------------------------------------------------------------------ */

KOTTE_EXTERN int kotte_session_create_sync(kotte_session_store *store, const char *user_id,
                                           const char *data_json, kotte_session **out,
                                           int timeout_ms);
KOTTE_EXTERN int kotte_session_get_sync(kotte_session_store *store, const char *id,
                                        kotte_session **out, int timeout_ms);
KOTTE_EXTERN int kotte_session_update_sync(kotte_session_store *store, const char *id,
                                           const char *patch_json, kotte_session **out,
                                           int timeout_ms);
KOTTE_EXTERN int kotte_session_set_sync(kotte_session_store *store, const char *id,
                                        const char *user_id, const char *data_json,
                                        int64_t ttl_s, kotte_session **out, int timeout_ms);
KOTTE_EXTERN int kotte_session_delete_sync(kotte_session_store *store, const char *id,
                                           int timeout_ms);
KOTTE_EXTERN int kotte_session_touch_sync(kotte_session_store *store, const char *id,
                                          int timeout_ms);
KOTTE_EXTERN int kotte_session_regenerate_sync(kotte_session_store *store, const char *id,
                                               kotte_session **out, int timeout_ms);
KOTTE_EXTERN int kotte_session_list_user_sync(kotte_session_store *store, const char *user_id,
                                              kotte_session_list **out, int timeout_ms);
KOTTE_EXTERN int kotte_session_delete_user_sync(kotte_session_store *store,
                                                const char *user_id, uint64_t *count,
                                                int timeout_ms);
KOTTE_EXTERN int kotte_session_purge_expired_sync(kotte_session_store *store, uint64_t *count,
                                                  int timeout_ms);
KOTTE_EXTERN int kotte_session_store_check_sync(kotte_session_store *store, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif /* KOTTE_SESSION_H */
