/*
 * libkotte — the query registry: Kotte's running graph queries, and their
 * cancellation from any replica.
 *
 * Kotte runs a user's Cypher query on a live database connection held by
 * the process that received the request. To cancel it, a user posts
 * `POST /api/v1/queries/{request_id}/cancel`; behind a load balancer that
 * request reaches another replica about half of the time. The registry
 * makes that work:
 *
 *  - every replica opens one registry; it registers the queries it starts
 *    (request id, user id, the backend pid of the connection running it)
 *    and unregisters them when they end;
 *  - kotte_query_cancel() on any replica finds the query, refuses another
 *    user's (KOTTE_EFORBIDDEN: Kotte's 403), and has the query cancelled
 *    by the replica that runs it, which alone holds its connection: the
 *    registry calls that replica's cancel handler (options.on_cancel),
 *    which cancels with its live connection (PQcancel, or
 *    pg_cancel_backend() of the backend pid) and reports the outcome
 *    with kotte_query_cancel_done(). The requester gets that outcome.
 *
 * Two backends:
 *
 *  - memory (no pool): the registry's own table, in this process only, as
 *    Kotte keeps it by default. Cancel works for queries of this process.
 *  - postgresql (a pool): table kotte_queries (sql/migrations/0006), shared
 *    by every replica, and PostgreSQL's LISTEN/NOTIFY on the pool's
 *    listener (kotte_pg_listener) to reach the replica that runs a query.
 *    A replica asked to cancel a query of another replica NOTIFYs that
 *    replica's channel with a reply token and waits up to cancel_timeout_ms
 *    (default 2 s) for the answer NOTIFY on its own channel.
 *
 * What is stored per query (and why nothing else):
 *   request_id  Kotte's id of the request (the key the cancel route gets);
 *   user_id     the owner: the ownership check runs on the replica that
 *               receives the cancel, before anything is sent;
 *   replica_id  which registry runs it (a random 256-bit token per
 *               registry, fresh at every start: never reused, so a
 *               restarted pod never claims its predecessor's rows);
 *   backend_pid the PostgreSQL pid of the connection that runs it (0 until
 *               set), for the owner's pg_cancel_backend() and for operators;
 *   started_at  for Kotte's one-hour stale limit.
 * No query text: nothing on another replica reads it (Kotte uses it only
 * in the owning process, for logging), and a Cypher text can hold user
 * data. The owning process keeps whatever it wants in its own memory (the
 * Python drop-in keeps Kotte's query_text and db_conn there).
 *
 * Liveness without heartbeats: a replica is alive while the connection of
 * its listener is, as PostgreSQL itself sees it (table
 * kotte_query_replicas holds the listener's backend pid and backend_start;
 * pg_stat_activity tells whether that backend still exists, and the pair
 * cannot be matched by a later backend that reuses the pid). A replica
 * killed with SIGKILL loses its connections at once, so its queries read
 * as gone immediately: a cancel answers KOTTE_ENOTFOUND (and deletes the
 * row), kotte_query_purge() deletes them all. Needs every replica to use
 * the same database role (or pg_read_all_stats), since pg_stat_activity
 * hides backend_start of other roles' sessions. When a replica's listener
 * reconnects (a failover, a network break), it publishes its pid again
 * and re-registers every query it still runs, so a purge made by another
 * replica meanwhile loses nothing for good. Queries older than
 * stale_after_s (default 3600, Kotte's limit) are purged whatever their
 * owner's state.
 *
 * Threads and delivery: as the stores (core/store.h): every asynchronous
 * operation ends in exactly one callback on the loop thread, never before
 * the starting call returned; the *_sync calls work on a registry from
 * kotte_query_registry_open() from any thread but the loop thread.
 */
#ifndef KOTTE_QUERY_H
#define KOTTE_QUERY_H

#include <uv.h>

#include "kotte/core.h"
#include "kotte/pg.h"
#include "kotte/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kotte_query_registry kotte_query_registry;

/** A cancel request handed to the owner's handler; see kotte_query_cancel_done(). */
typedef struct kotte_query_cancel_req kotte_query_cancel_req;

/** Longest request id and user id, in bytes. */
#define KOTTE_QUERY_MAX_ID 255

/**
 * The owner's cancel handler: cancel the query @p request_id of
 * @p user_id that runs on @p backend_pid (0 if it was never set: find it
 * from the query's connection), then call kotte_query_cancel_done()
 * exactly once with the outcome: 0 cancelled, KOTTE_ENOTFOUND (the query
 * is no longer running), or another negative code (the attempt failed).
 * Runs on the loop thread, for a cancel asked in this process or by
 * another replica. It must not block: start the cancel and report later.
 */
typedef void (*kotte_query_cancel_fn)(kotte_query_cancel_req *req, const char *request_id,
                                      const char *user_id, int backend_pid, void *userdata);

#define KOTTE_QUERY_OPTIONS_VERSION 1

/** Registry options. Initialise with KOTTE_QUERY_OPTIONS_INIT; fields are only ever appended. */
typedef struct kotte_query_options {
  unsigned int version;
  /** Cancels a query of this registry (NULL: kotte_query_cancel() of one answers KOTTE_ENOTSUP). */
  kotte_query_cancel_fn on_cancel;
  void *cancel_userdata;
  /** Longest wait for another replica's answer (ms, default 2000). */
  unsigned int cancel_timeout_ms;
  /** A query registered longer ago than this is purged (s, default 3600, Kotte's limit). */
  int64_t stale_after_s;
  /** Clock for started_at and the stale limit (NULL: the system clock). */
  kotte_clock_fn clock;
  void *clock_ctx;
} kotte_query_options;

#define KOTTE_QUERY_OPTIONS_INIT { KOTTE_QUERY_OPTIONS_VERSION, NULL, NULL, 2000, 3600, NULL, NULL }

/** A registered query. Free with kotte_query_info_free(). */
typedef struct kotte_query_info {
  char *request_id;
  char *user_id;
  char *replica_id;      /**< the registry that runs it */
  int backend_pid;       /**< 0: not set */
  kotte_time started_at; /**< µs since the epoch */
  int local;             /**< 1 when this registry runs it */
} kotte_query_info;

/** Queries of one user, oldest first. Free with kotte_query_list_free(). */
typedef struct kotte_query_list {
  size_t count;
  kotte_query_info **items;
} kotte_query_list;

KOTTE_EXTERN void kotte_query_info_free(kotte_query_info *info);
KOTTE_EXTERN void kotte_query_list_free(kotte_query_list *list);

/**
 * Creates a registry on @p loop: memory when @p pool is NULL, else
 * postgresql on @p pool (which must outlive it; its listener starts
 * connecting at once). Loop thread (or before the loop runs). Returns 0,
 * KOTTE_EINVAL, KOTTE_EVERSION or KOTTE_ENOMEM. Free with
 * kotte_query_registry_free().
 */
KOTTE_EXTERN int kotte_query_registry_new(kotte_query_registry **out, uv_loop_t *loop,
                                          kotte_pg_pool *pool, const kotte_query_options *opts);

/**
 * Like kotte_query_registry_new() on @p rt's loop (@p pool, if any, opened
 * on the same runtime), and enables the *_sync calls. With a pool it first
 * checks the schema (KOTTE_ESCHEMA, as the stores). Any thread but the
 * loop thread.
 */
KOTTE_EXTERN int kotte_query_registry_open(kotte_query_registry **out, kotte_runtime *rt,
                                           kotte_pg_pool *pool, const kotte_query_options *opts);

/**
 * Frees the registry: operations in flight end with KOTTE_ECANCELED, the
 * listener stops, and (postgresql) this replica's rows are deleted and
 * answers to other replicas still due are sent before the release (a
 * failure leaves rows that read as gone, see above). Same thread rules as
 * kotte_session_store_free(): from another thread (a runtime's registry)
 * it returns once all of that is done; on the loop it returns at once and
 * the rest runs on later turns, on the pool, so free the pool after them.
 * NULL is a no-op.
 */
KOTTE_EXTERN void kotte_query_registry_free(kotte_query_registry *reg);

/** "memory" or "postgresql". Never NULL. */
KOTTE_EXTERN const char *kotte_query_registry_backend_name(const kotte_query_registry *reg);

/** This registry's replica id (43 characters). Never NULL. Any thread. */
KOTTE_EXTERN const char *kotte_query_registry_replica_id(const kotte_query_registry *reg);

/**
 * 1 when the registry can reach other replicas now (memory: always; postgresql:
 * its listener is up and this replica's row is published), else 0. Loop
 * thread; for a registry from kotte_query_registry_open() any thread.
 */
KOTTE_EXTERN int kotte_query_registry_ready(kotte_query_registry *reg);

/* ------------------------------------------------------------------ */
/* Asynchronous API (loop thread only)                                 */
/* ------------------------------------------------------------------ */

typedef void (*kotte_query_status_cb)(int status, void *userdata);
/** Receives a query (owned by the callee, NULL unless status is 0). */
typedef void (*kotte_query_info_cb)(int status, kotte_query_info *info, void *userdata);
/** Receives a list (owned by the callee, NULL unless status is 0). */
typedef void (*kotte_query_list_cb)(int status, kotte_query_list *list, void *userdata);
typedef void (*kotte_query_count_cb)(int status, uint64_t count, void *userdata);

/**
 * Registers a query this replica runs (Kotte's register_query): a request
 * id already registered is replaced, as Kotte's dict does. @p backend_pid
 * 0 if not known yet. Ids: 1 to 255 bytes of UTF-8. Status 0, KOTTE_EINVAL,
 * KOTTE_ENOMEM or the database's error (the query is then still known
 * here, and cancellable from this replica).
 */
KOTTE_EXTERN int kotte_query_register(kotte_query_registry *reg, const char *request_id,
                                      const char *user_id, int backend_pid,
                                      kotte_query_status_cb cb, void *userdata);

/** Sets the backend pid of a query of this replica. KOTTE_ENOTFOUND if it has none by that id. */
KOTTE_EXTERN int kotte_query_set_backend_pid(kotte_query_registry *reg, const char *request_id,
                                             int backend_pid, kotte_query_status_cb cb,
                                             void *userdata);

/** Forgets a query of this replica. KOTTE_ENOTFOUND if it has none by that id. */
KOTTE_EXTERN int kotte_query_unregister(kotte_query_registry *reg, const char *request_id,
                                        kotte_query_status_cb cb, void *userdata);

/**
 * Looks a query up on every replica. KOTTE_ENOTFOUND if it is not
 * registered, or its replica is gone (its row is then deleted).
 */
KOTTE_EXTERN int kotte_query_get(kotte_query_registry *reg, const char *request_id,
                                 kotte_query_info_cb cb, void *userdata);

/** The running queries of @p user_id on every live replica, oldest first. */
KOTTE_EXTERN int kotte_query_list_user(kotte_query_registry *reg, const char *user_id,
                                       kotte_query_list_cb cb, void *userdata);

/**
 * Cancels query @p request_id on behalf of @p user_id, wherever it runs.
 * Status:
 *   0                  cancelled (the owner's handler said so); the query
 *                      is unregistered, as Kotte does after a cancel;
 *   KOTTE_ENOTFOUND    not registered, finished, or its replica is gone;
 *   KOTTE_EFORBIDDEN   it belongs to another user (nothing is sent);
 *   KOTTE_ETIMEDOUT    its replica is alive but did not answer within
 *                      cancel_timeout_ms (then checked again: a replica
 *                      found gone by then gives KOTTE_ENOTFOUND);
 *   KOTTE_ENOTSUP      its registry has no cancel handler;
 *   other codes        the handler's, or the database's (KOTTE_EDB, ...).
 * The callback comes within cancel_timeout_ms plus a few round trips.
 */
KOTTE_EXTERN int kotte_query_cancel(kotte_query_registry *reg, const char *request_id,
                                    const char *user_id, kotte_query_status_cb cb,
                                    void *userdata);

/**
 * Deletes stale entries: queries older than stale_after_s, and
 * (postgresql) every query of a replica that is gone; reports how many.
 * Cheap; run it now and then (Kotte's cleanup_stale_queries).
 */
KOTTE_EXTERN int kotte_query_purge(kotte_query_registry *reg, kotte_query_count_cb cb,
                                   void *userdata);

/**
 * Reports the outcome of a cancel handed to options.on_cancel: 0,
 * KOTTE_ENOTFOUND or another negative code. Exactly once per request.
 * On the loop thread; for a registry from kotte_query_registry_open() any
 * thread. Returns 0, or KOTTE_EINVAL (NULL) or KOTTE_ECLOSED (the runtime
 * is stopping; the request then ends as cancelled by the registry's free).
 */
KOTTE_EXTERN int kotte_query_cancel_done(kotte_query_cancel_req *req, int status);

/* ------------------------------------------------------------------ */
/* Blocking API (registries from kotte_query_registry_open(); any      */
/* thread but the loop thread). Return 0 or a negative code.           */
/* ------------------------------------------------------------------ */

KOTTE_EXTERN int kotte_query_register_sync(kotte_query_registry *reg, const char *request_id,
                                           const char *user_id, int backend_pid, int timeout_ms);
KOTTE_EXTERN int kotte_query_set_backend_pid_sync(kotte_query_registry *reg,
                                                  const char *request_id, int backend_pid,
                                                  int timeout_ms);
KOTTE_EXTERN int kotte_query_unregister_sync(kotte_query_registry *reg, const char *request_id,
                                             int timeout_ms);
KOTTE_EXTERN int kotte_query_get_sync(kotte_query_registry *reg, const char *request_id,
                                      kotte_query_info **out, int timeout_ms);
KOTTE_EXTERN int kotte_query_list_user_sync(kotte_query_registry *reg, const char *user_id,
                                            kotte_query_list **out, int timeout_ms);
/** A negative @p timeout_ms waits cancel_timeout_ms plus the runtime's default. */
KOTTE_EXTERN int kotte_query_cancel_sync(kotte_query_registry *reg, const char *request_id,
                                         const char *user_id, int timeout_ms);
KOTTE_EXTERN int kotte_query_purge_sync(kotte_query_registry *reg, uint64_t *count,
                                        int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif /* KOTTE_QUERY_H */
