/* Private: the query registry's backend interface and helpers. Not installed.
 *
 * The registry (query_registry.c) always keeps the queries of its own
 * process in a table of its own: they are the truth for this replica (the
 * cancel handler, the re-registration after a reconnect), and without a
 * backend they are the memory backend. A backend is the shared part: the
 * rows every replica sees and the messages between replicas. It is private
 * for now (one implementation, backend_postgresql.c): a public
 * kotte/sys/ vtable would have to specify the messaging too, and nobody
 * needs a second one yet.
 *
 * Contract of every method that takes a callback, as the session
 * backends': called on the loop thread; returns 0 and calls back exactly
 * once (possibly before returning: the registry defers it), or returns a
 * negative code and never calls back. A NULL callback means "fire and
 * forget": the backend keeps itself alive until the call ends. */
#ifndef KOTTE_QUERY_INTERNAL_H
#define KOTTE_QUERY_INTERNAL_H

#include "core/internal.h"
#include "kotte/query.h"

/* One row of kotte_queries, with what a replica needs to reach its owner. */
typedef struct kotte__query_row {
  const char *request_id;
  const char *user_id;
  const char *replica_id;
  const char *channel;   /* the owner's NOTIFY channel, "" when it has no replica row */
  int backend_pid;
  kotte_time started_at;
  int alive;       /* the owner's listener connection exists (pg_stat_activity) */
  int has_replica; /* the owner published a replica row (it is past its start) */
} kotte__query_row;

typedef void (*kotte__query_status_fn)(int status, void *ctx);
typedef void (*kotte__query_row_fn)(int status, const kotte__query_row *row, void *ctx);
typedef void (*kotte__query_rows_fn)(int status, const kotte__query_row *rows, size_t n,
                                     void *ctx);
typedef void (*kotte__query_count_fn)(int status, uint64_t count, void *ctx);

/* What a backend tells its registry, on the loop thread, from a libuv
 * callback of its own (never inside a registry call). */
typedef struct kotte__query_inbox {
  /* Another replica (or this one) asks to cancel @p request_id for
   * @p user_id; answer with backend->reply(reply_to, token, status). */
  void (*request)(void *owner, const char *request_id, const char *user_id, const char *token,
                  const char *reply_to);
  /* The link came back after a loss: register every local query again. */
  void (*republish)(void *owner);
  void *owner;
} kotte__query_inbox;

typedef struct kotte__query_backend kotte__query_backend;
struct kotte__query_backend {
  const char *name;
  /* Upserts @p row (its replica is this one). */
  int (*put)(kotte__query_backend *be, const kotte__query_row *row, kotte__query_status_fn cb,
             void *ctx);
  int (*set_pid)(kotte__query_backend *be, const char *request_id, int pid,
                 kotte__query_status_fn cb, void *ctx);
  /* Deletes the row of @p request_id if @p replica_id runs it. */
  int (*remove)(kotte__query_backend *be, const char *request_id, const char *replica_id,
                kotte__query_status_fn cb, void *ctx);
  /* KOTTE_ENOTFOUND when there is no row. */
  int (*get)(kotte__query_backend *be, const char *request_id, kotte__query_row_fn cb,
             void *ctx);
  int (*list_user)(kotte__query_backend *be, const char *user_id, kotte__query_rows_fn cb,
                   void *ctx);
  /* Deletes rows started before @p stale_before and rows of gone replicas. */
  int (*purge)(kotte__query_backend *be, kotte_time stale_before, kotte__query_count_fn cb,
               void *ctx);
  /* Asks the replica listening on @p channel to cancel; calls back with its
   * answer, or KOTTE_ETIMEDOUT after @p timeout_ms. */
  int (*ask)(kotte__query_backend *be, const char *channel, const char *request_id,
             const char *user_id, unsigned int timeout_ms, kotte__query_status_fn cb, void *ctx);
  /* Answers a request of the inbox; @p cb hears whether it was sent. */
  int (*reply)(kotte__query_backend *be, const char *reply_to, const char *token, int status,
               kotte__query_status_fn cb, void *ctx);
  /* Deletes this replica's rows (the registry is being freed). */
  int (*remove_all)(kotte__query_backend *be, kotte__query_status_fn cb, void *ctx);
  /* 1 when other replicas can reach this one now. */
  int (*ready)(const kotte__query_backend *be);
  /* Releases the backend; no registry call is in flight. */
  void (*free)(kotte__query_backend *be);
};

/* The postgresql backend of replica @p replica_id on @p pool. Loop thread. */
int kotte__query_backend_postgresql_new(kotte__query_backend **out, kotte_pg_pool *pool,
                                        const char *replica_id,
                                        const kotte__query_inbox *inbox);

/* The NOTIFY channel of a replica: "kotte_q_" and its id. */
#define KOTTE__QUERY_CHANNEL_PREFIX "kotte_q_"

/* For the blocking facade. */
kotte_runtime *kotte__query_registry_runtime(kotte_query_registry *reg);
unsigned int kotte__query_registry_cancel_timeout(const kotte_query_registry *reg);

/* A new info from @p row (NULL when out of memory). */
kotte_query_info *kotte__query_info_new(const kotte__query_row *row, int local);

#endif
