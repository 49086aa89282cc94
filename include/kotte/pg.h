/*
 * libkotte — an asynchronous PostgreSQL connection pool on a libuv loop.
 *
 * libpq in non-blocking mode, one uv_poll_t per connection (re-created when
 * PQsocket() changes, which it does while PQconnectPoll() walks a multi-host
 * conninfo). Every connection runs in libpq's pipeline mode:
 *
 *  - without pipelining (pipeline_depth 1) a connection carries one query at
 *    a time, sent as one Bind/Execute/Sync write, like any other client;
 *  - with pipelining (pipeline_depth > 1) the queries submitted in one loop
 *    turn share a connection, a round trip and a Sync, and so one implicit
 *    transaction and one commit. A query's callback runs only once its Sync
 *    came back, so an acknowledged write is committed. When one query of a
 *    batch fails, the others were rolled back with it; the pool runs them
 *    again (they never took effect) and only the failing one reports.
 *
 * Prepared statements are registered once per pool (kotte_pg_pool_prepare())
 * and prepared lazily on each connection, in the same round trip as their
 * first execution.
 *
 * Failures: a query waits at most acquire_timeout_ms for a connection
 * (KOTTE_EPOOLTIMEOUT), no more than max_waiters wait (KOTTE_ETOOMANYWAITERS),
 * and runs at most its timeout (KOTTE_ETIMEDOUT; the server is sent a real
 * cancel request). A query canceled from outside (pg_cancel_backend(), a
 * query registry's cancel: SQLSTATE 57014 while alone on its Sync) reports
 * KOTTE_EDB with that SQLSTATE in its detail and is never run again; one
 * canceled because it shared a pipeline segment with another query's
 * timeout is run again. A query refused because the server is read-only (a
 * standby after a switchover, SQLSTATE 25006) did nothing, so it is always
 * run once more on a fresh connection, which libpq's
 * target_session_attrs=read-write points at the new primary.
 *
 * Lost connections (a server restart or shutdown, a killed backend, a
 * reset): the pool notices a lost connection as soon as its socket reports
 * the end (end of file, a reset, a socket error), so the queries on it are
 * settled then, never held until their timeout. The rule for each query:
 *
 *  - one not yet handed to a connection never reached a server: it keeps
 *    waiting for a connection (KOTTE_EPOOLTIMEOUT after acquire_timeout_ms);
 *  - one handed to the lost connection may have run: libpq buffers what it
 *    sends and tells of a failed write only through the read after it, so
 *    the pool cannot prove that the server never saw a query, even one
 *    written into a session the server had just ended. Flagged
 *    KOTTE_PG_IDEMPOTENT, it runs once more on a fresh connection (a
 *    second loss reports KOTTE_EDB); any other ends at once with
 *    KOTTE_EDB: with the server's error result when one came before the
 *    end (SQLSTATE 57P01 admin_shutdown in a fast shutdown, 57P02 after a
 *    crash of another backend, class 08), otherwise with a NULL result.
 *    Its outcome (committed or not) is unknown: the caller decides.
 *
 * Threads: everything on the loop thread, except kotte_pg_pool_open(),
 * kotte_pg_pool_free() of an opened pool, kotte_pg_pool_get_stats() and
 * kotte_pg_pool_get_state(), which any thread may call. Callbacks run on the loop thread, exactly once
 * per query that was accepted, never before the submitting call returned.
 *
 * No error detail or log line contains a password or a conninfo string.
 */
#ifndef KOTTE_PG_H
#define KOTTE_PG_H

#include <uv.h>

#include "kotte/core.h"
#include "kotte/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kotte_pg_pool kotte_pg_pool;

/** A statement registered with kotte_pg_pool_prepare(); owned by the pool. */
typedef struct kotte_pg_stmt kotte_pg_stmt;

/** A query's result, owned by the pool; valid only during the callback. */
typedef struct kotte_pg_result kotte_pg_result;

#define KOTTE_PG_POOL_OPTIONS_VERSION 1

/** Pool options. Initialise with KOTTE_PG_POOL_OPTIONS_INIT; fields are only ever appended. */
typedef struct kotte_pg_pool_options {
  unsigned int version;
  /**
   * libpq conninfo ("host=a,b port=5432,5432 dbname=kotte user=kotte_app
   * target_session_attrs=read-write") or URI. Copied. Required.
   */
  const char *conninfo;
  /** Connections kept open even when idle (default 1). */
  unsigned int min_size;
  /** Most connections open at once (default 10). */
  unsigned int max_size;
  /** Longest wait for a connection before KOTTE_EPOOLTIMEOUT (ms, default 5000). */
  unsigned int acquire_timeout_ms;
  /** Most queries waiting for a connection; one more fails with KOTTE_ETOOMANYWAITERS (default 1000). */
  unsigned int max_waiters;
  /** Default per-query timeout (ms, default 30000; 0: none). */
  unsigned int query_timeout_ms;
  /** Queries in flight on one connection: 1 disables pipelining (default 1). */
  unsigned int pipeline_depth;
  /** A connection is replaced after this long (ms, default 1800000; 0: never)... */
  unsigned int max_lifetime_ms;
  /** ...minus a random 0..jitter ms, so connections do not all retire at once (default 60000). */
  unsigned int lifetime_jitter_ms;
  /** An idle connection above min_size is closed after this long (ms, default 600000; 0: never). */
  unsigned int idle_timeout_ms;
  /** A connection idle longer than this is checked for a dead socket before reuse (ms, default 5000). */
  unsigned int idle_check_ms;
  /**
   * Longest connection attempt, all hosts together (ms, default 10000).
   * After an attempt times out, the next one starts with the next host of a
   * multi-host conninfo (its ports and hostaddrs turning with it), so a host
   * that never answers cannot keep the pool from the others.
   */
  unsigned int connect_timeout_ms;
  /**
   * First reconnect delay after a failure (ms, default 100)... Attempts that
   * were under way together and fail together (a restarting server refuses
   * them all at once) count as one failure here.
   */
  unsigned int reconnect_min_ms;
  /** ...doubling with jitter (from one failed attempt to the next) up to this (ms, default 5000). */
  unsigned int reconnect_max_ms;
  /**
   * SQL run on every new connection before its first query, e.g.
   * "LOAD 'age'; SET search_path = ag_catalog, public". May hold several
   * statements (simple protocol). NULL: none. Copied. A failure closes the
   * connection and counts as a failed connect.
   */
  const char *on_connect_sql;
} kotte_pg_pool_options;

#define KOTTE_PG_POOL_OPTIONS_INIT                                                   \
  { KOTTE_PG_POOL_OPTIONS_VERSION, NULL, 1, 10, 5000, 1000, 30000, 1, 1800000, 60000, \
    600000, 5000, 10000, 100, 5000, NULL }

/**
 * Creates a pool on @p loop; it starts opening min_size connections at
 * once. Call on the loop's thread (or before the loop runs). Validates the
 * conninfo without connecting. Returns 0, KOTTE_EINVAL (missing or invalid
 * conninfo, max_size 0, min_size > max_size, pipeline_depth 0),
 * KOTTE_EVERSION or KOTTE_ENOMEM. Free with kotte_pg_pool_free().
 */
KOTTE_EXTERN int kotte_pg_pool_new(kotte_pg_pool **out, uv_loop_t *loop,
                                   const kotte_pg_pool_options *opts);

/** Like kotte_pg_pool_new() on @p rt's loop. Any thread but the loop thread. */
KOTTE_EXTERN int kotte_pg_pool_open(kotte_pg_pool **out, kotte_runtime *rt,
                                    const kotte_pg_pool_options *opts);

/**
 * Frees the pool. Queries still waiting or in flight end with
 * KOTTE_ECANCELED in their callbacks (on a later loop turn); connections
 * are closed; memory is released after the last libuv close callback and
 * the last cancel request. Free every store using the pool first. For a
 * pool from kotte_pg_pool_new(): call on the loop thread (also from inside
 * a callback) and keep running the loop. For one from kotte_pg_pool_open():
 * any thread but the loop thread; it returns once everything is released.
 * NULL is a no-op.
 */
KOTTE_EXTERN void kotte_pg_pool_free(kotte_pg_pool *pool);

/** The pool's loop. */
KOTTE_EXTERN uv_loop_t *kotte_pg_pool_loop(const kotte_pg_pool *pool);

/**
 * Registers a statement, prepared on each connection the first time it
 * runs there. @p param_types are PostgreSQL type OIDs (NULL or 0 entries:
 * let the server infer). Loop thread. Returns 0, KOTTE_EINVAL, KOTTE_ENOMEM
 * or KOTTE_ECLOSED. The statement lives as long as the pool.
 */
KOTTE_EXTERN int kotte_pg_pool_prepare(kotte_pg_pool *pool, kotte_pg_stmt **out, const char *sql,
                                       int nparams, const unsigned int *param_types);

/** Query flags. */
enum {
  /** Safe to run twice: run once more after a lost connection. */
  KOTTE_PG_IDEMPOTENT = 1u << 0,
  /** Results in binary format (default: text). */
  KOTTE_PG_BINARY_RESULT = 1u << 1
};

#define KOTTE_PG_QUERY_VERSION 1

/** One query. Pointers need to be valid only during kotte_pg_pool_query(). */
typedef struct kotte_pg_query {
  unsigned int version;
  /** A registered statement, or NULL to run @p sql (one statement, unnamed). */
  const kotte_pg_stmt *stmt;
  const char *sql;
  int nparams;
  /** Parameter values (NULL entry: SQL NULL). */
  const char *const *values;
  /** Lengths of binary parameters (NULL: all text). */
  const int *lengths;
  /** 1 for a binary parameter, 0 for text (NULL: all text). */
  const int *formats;
  /** KOTTE_PG_* flags. */
  unsigned int flags;
  /** Per-query timeout in ms: 0 the pool's default, negative none. */
  int timeout_ms;
} kotte_pg_query;

#define KOTTE_PG_QUERY_INIT { KOTTE_PG_QUERY_VERSION, NULL, NULL, 0, NULL, NULL, NULL, 0, 0 }

/**
 * Receives a query's outcome: status 0 with the result, KOTTE_EDB with the
 * server's error result (its SQLSTATE through kotte_pg_result_sqlstate())
 * or NULL when the connection was lost (see "Lost connections" above), or
 * KOTTE_EPOOLTIMEOUT, KOTTE_ETIMEDOUT, KOTTE_ECANCELED with NULL.
 */
typedef void (*kotte_pg_result_cb)(int status, const kotte_pg_result *res, void *userdata);

/**
 * Submits a query. Returns 0 (then @p cb runs exactly once, later), or
 * KOTTE_EINVAL, KOTTE_EVERSION, KOTTE_ENOMEM, KOTTE_ECLOSED, or
 * KOTTE_ETOOMANYWAITERS when max_waiters queries already wait for a
 * connection (then @p cb never runs). Loop thread.
 */
KOTTE_EXTERN int kotte_pg_pool_query(kotte_pg_pool *pool, const kotte_pg_query *q,
                                     kotte_pg_result_cb cb, void *userdata);

/* ---- results (valid during the callback only) ---------------------------- */

KOTTE_EXTERN int kotte_pg_result_ntuples(const kotte_pg_result *res);
KOTTE_EXTERN int kotte_pg_result_nfields(const kotte_pg_result *res);
/** The value (NUL-terminated also in binary format), "" for NULL. */
KOTTE_EXTERN const char *kotte_pg_result_value(const kotte_pg_result *res, int row, int col);
KOTTE_EXTERN int kotte_pg_result_length(const kotte_pg_result *res, int row, int col);
KOTTE_EXTERN int kotte_pg_result_is_null(const kotte_pg_result *res, int row, int col);
/** Rows affected by INSERT/UPDATE/DELETE, 0 otherwise. */
KOTTE_EXTERN uint64_t kotte_pg_result_affected(const kotte_pg_result *res);
/** The five-character SQLSTATE of an error result, "" otherwise. Never NULL. */
KOTTE_EXTERN const char *kotte_pg_result_sqlstate(const kotte_pg_result *res);
/** The server's primary error message, "" otherwise. May quote values: do not log blindly. */
KOTTE_EXTERN const char *kotte_pg_result_error(const kotte_pg_result *res);

/* ---- statistics --------------------------------------------------------------- */

#define KOTTE_PG_STATS_VERSION 1

/** Counters since the pool was created. Fields are only ever appended. */
typedef struct kotte_pg_pool_stats {
  unsigned int version;    /**< set to KOTTE_PG_STATS_VERSION before the call */
  unsigned int open;       /**< connections ready (idle + busy) */
  unsigned int idle;       /**< ready with nothing in flight */
  unsigned int busy;       /**< ready with queries in flight */
  unsigned int connecting; /**< connection attempts under way */
  unsigned int waiting;    /**< queries waiting for a connection */
  unsigned int in_flight;  /**< queries sent, not yet answered */
  uint64_t queries;        /**< queries completed (any status) */
  uint64_t errors;         /**< queries that ended with a status other than 0 */
  uint64_t acquire_wait_us_total; /**< time queries waited for a connection, summed */
  uint64_t acquire_wait_us_max;   /**< the longest such wait */
  uint64_t pool_timeouts;  /**< KOTTE_EPOOLTIMEOUT */
  uint64_t waiter_rejections; /**< KOTTE_ETOOMANYWAITERS */
  uint64_t query_timeouts; /**< KOTTE_ETIMEDOUT */
  uint64_t cancels_sent;   /**< cancel requests sent to the server */
  uint64_t connects;       /**< connections established */
  uint64_t reconnects;     /**< of those, after a connection was lost or failed */
  uint64_t connect_failures; /**< failed connection attempts */
  uint64_t connections_lost; /**< connections that broke while open */
  uint64_t retries;        /**< queries run again on another connection */
  uint64_t batches;        /**< Syncs sent (round trips); queries/batches is the pipelining gain */
} kotte_pg_pool_stats;

/**
 * Fills @p out (whose version the caller set). Any thread: on another
 * thread than an opened pool's loop thread it hops to the loop.
 * Returns 0, KOTTE_EINVAL or KOTTE_EVERSION.
 */
KOTTE_EXTERN int kotte_pg_pool_get_stats(kotte_pg_pool *pool, kotte_pg_pool_stats *out);

/* ---- known state ------------------------------------------------------------------- */

#define KOTTE_PG_POOL_STATE_VERSION 1

/**
 * What the pool knows about its server now, from its own connections and
 * connection attempts, without asking the server (a readiness probe reads
 * it and answers at once, where a query would wait up to acquire_timeout_ms
 * for a connection the pool cannot get). Fields are only ever appended.
 */
typedef struct kotte_pg_pool_state {
  unsigned int version;    /**< set to KOTTE_PG_POOL_STATE_VERSION before the call */
  unsigned int ready;      /**< connections open and usable */
  unsigned int connecting; /**< connection attempts under way */
  /** Connection attempts that failed in a row; 0 once one succeeds. */
  unsigned int failures;
  /**
   * 1 when no connection is open and the last attempt failed: a query
   * submitted now waits for the next attempt (after retry_in_ms) and, while
   * the server stays away, ends with KOTTE_EPOOLTIMEOUT. The pool keeps
   * trying on its own while min_size > 0 or queries wait.
   */
  int failing;
  /** When the first of those failures happened (µs since the epoch), 0 when failures is 0. */
  kotte_time failing_since;
  /** Milliseconds until the pool's next attempt may start (its backoff); 0: now. */
  unsigned int retry_in_ms;
  /**
   * Why the last attempt failed: the pool's step and libpq's first line
   * ("connection failed: connection to server at \"db\" (10.0.0.5), port
   * 5432 failed: Connection refused"); names host, port and user, never a
   * password or the conninfo. "" when failures is 0.
   */
  char last_error[256];
} kotte_pg_pool_state;

/**
 * Fills @p out (whose version the caller set) from the pool's known state.
 * On the loop thread it reads and returns at once (no I/O, no wait); on
 * another thread, for an opened pool, it hops to the loop like
 * kotte_pg_pool_get_stats(). Returns 0, KOTTE_EINVAL or KOTTE_EVERSION.
 */
KOTTE_EXTERN int kotte_pg_pool_get_state(kotte_pg_pool *pool, kotte_pg_pool_state *out);

/* ---- LISTEN ---------------------------------------------------------------------- */

/**
 * A listener: PostgreSQL's LISTEN on a connection of its own, kept up for
 * as long as the listener lives.
 *
 *  - the connection is not one of the pool's (it is not counted in
 *    max_size and never carries a query of kotte_pg_pool_query()); it is
 *    made from the pool's conninfo, so target_session_attrs=read-write and
 *    a multi-host list lead it to the primary as they lead the pool, and
 *    it uses the pool's connect_timeout_ms and reconnect_min_ms /
 *    reconnect_max_ms backoff (a timed-out attempt, or a LISTEN refused by
 *    a standby, starts the next one a host further on);
 *  - "up": every channel's LISTEN was confirmed by the server on the
 *    current connection. From then on every NOTIFY committed on those
 *    channels reaches the listener, in commit order;
 *  - "down": the connection was lost (closed, reset, the server restarted
 *    or failed over, a killed backend, or no answer to a ping within
 *    ping_timeout_ms: a silent network break is noticed within
 *    ping_interval_ms + ping_timeout_ms). Notifications sent while it is
 *    down are lost for good: whatever relied on them must stop trusting
 *    what it learned before (a cache empties itself). The listener then
 *    reconnects on its own (at once after an up, then with backoff) and
 *    says "up" again once its LISTENs are confirmed on the new connection;
 *  - every event (a notification, up, down) is delivered on the loop
 *    thread from a libuv callback of its own, never inside a libkotte call,
 *    in the order the connection saw them; up and down alternate, starting
 *    with up (a listener that never came up never says down).
 *
 * Threads: everything on the pool's loop thread. Free every listener
 * before its pool. The notification payload comes from any client of the
 * database that may NOTIFY: treat it as input.
 */
typedef struct kotte_pg_listener kotte_pg_listener;

/**
 * Receives one notification: its channel, its payload ("" when none) and
 * the process id of the server backend that sent it. The strings are valid
 * during the call only. The callback may free the listener.
 */
typedef void (*kotte_pg_notify_cb)(const char *channel, const char *payload, int backend_pid,
                                   void *userdata);

/**
 * Receives "up" (@p up 1, @p reason "") or "down" (@p up 0, @p reason: the
 * pool's step and libpq's first line, never a password). Valid during the
 * call only. The callback may free the listener.
 */
typedef void (*kotte_pg_listener_state_cb)(int up, const char *reason, void *userdata);

#define KOTTE_PG_LISTENER_OPTIONS_VERSION 1

/** Listener options. Initialise with KOTTE_PG_LISTENER_OPTIONS_INIT; fields are only ever appended. */
typedef struct kotte_pg_listener_options {
  unsigned int version;
  /** The channels to LISTEN on (1 to 63 bytes each, used as quoted identifiers). Copied. */
  const char *const *channels;
  size_t n_channels;
  /** Called for each notification (NULL: none). */
  kotte_pg_notify_cb on_notify;
  /** Called at each up and down (NULL: none). */
  kotte_pg_listener_state_cb on_state;
  void *userdata;
  /** While up, an empty query proves the link this often (ms, default 1000)... */
  unsigned int ping_interval_ms;
  /** ...and a ping unanswered for this long counts as a lost connection (ms, default 3000). */
  unsigned int ping_timeout_ms;
} kotte_pg_listener_options;

#define KOTTE_PG_LISTENER_OPTIONS_INIT \
  { KOTTE_PG_LISTENER_OPTIONS_VERSION, NULL, 0, NULL, NULL, NULL, 1000, 3000 }

/**
 * Creates a listener on @p pool's loop; it starts connecting on the next
 * loop turn. Loop thread. Returns 0, KOTTE_EINVAL (no channel, a channel
 * name empty or longer than 63 bytes, a zero ping setting), KOTTE_EVERSION,
 * KOTTE_ECLOSED (the pool is being freed) or KOTTE_ENOMEM. Free with
 * kotte_pg_listener_free().
 */
KOTTE_EXTERN int kotte_pg_listener_new(kotte_pg_listener **out, kotte_pg_pool *pool,
                                       const kotte_pg_listener_options *opts);

/**
 * 1 when the listener is up and has delivered everything its connection
 * received, so that whatever its callbacks keep up to date is as current
 * as the connection: first it reads what already reached its socket
 * (without calling back; a notification found there is delivered on a
 * later loop turn and makes this 0 until then, the end of the connection
 * makes it down). 0 otherwise. Cheap (one non-blocking read). Loop thread.
 */
KOTTE_EXTERN int kotte_pg_listener_is_current(kotte_pg_listener *l);

#define KOTTE_PG_LISTENER_STATS_VERSION 1

/** A listener's counters. Fields are only ever appended. */
typedef struct kotte_pg_listener_stats {
  unsigned int version;   /**< set to KOTTE_PG_LISTENER_STATS_VERSION before the call */
  int up;                 /**< 1 while up */
  int backend_pid;        /**< the server process of the current connection while up, else 0 */
  uint64_t connects;      /**< connection attempts */
  uint64_t ups;           /**< times it came up */
  uint64_t downs;         /**< times an up connection was lost */
  uint64_t notifications; /**< notifications received */
  uint64_t pings;         /**< pings sent */
} kotte_pg_listener_stats;

/** Fills @p out (whose version the caller set). Loop thread. 0, KOTTE_EINVAL or KOTTE_EVERSION. */
KOTTE_EXTERN int kotte_pg_listener_get_stats(const kotte_pg_listener *l,
                                             kotte_pg_listener_stats *out);

/**
 * Frees the listener: closes its connection; events not yet delivered are
 * dropped, no callback runs after this returns. Loop thread (also from
 * inside one of its callbacks); keep running the loop until libuv's close
 * callbacks ran. NULL is a no-op.
 */
KOTTE_EXTERN void kotte_pg_listener_free(kotte_pg_listener *l);

/* ---- migrations ------------------------------------------------------------------ */

#define KOTTE_PG_MIGRATE_OPTIONS_VERSION 1

/** Options of kotte_pg_migrate(). Initialise with KOTTE_PG_MIGRATE_OPTIONS_INIT. */
typedef struct kotte_pg_migrate_options {
  unsigned int version;
  /** Apply sql/extensions/ too (needs a superuser; skipped when the extension is not installed). */
  int extensions;
  /** Re-apply sql/roles/app_role.sql after the migrations (default 1). */
  int roles;
  /** Receives one line per file applied or skipped (NULL: none). */
  void (*progress)(const char *line, void *ctx);
  void *progress_ctx;
} kotte_pg_migrate_options;

#define KOTTE_PG_MIGRATE_OPTIONS_INIT { KOTTE_PG_MIGRATE_OPTIONS_VERSION, 0, 1, NULL, NULL }

/**
 * Brings the database at @p conninfo up to date with the SQL folder
 * @p sql_dir (the repository's sql/): under an advisory lock, so that two
 * migrators take turns, every sql/migrations/NNNN_name.sql whose version is
 * not yet in kotte_schema_migrations, in order (each file is one
 * transaction and records itself), then sql/roles/app_role.sql. Run it as
 * the database owner. Blocking (plain libpq); any thread, never a loop
 * thread. On success *applied (may be NULL) is the number of migrations
 * applied. Returns 0, KOTTE_EINVAL, KOTTE_EIO (unreadable folder or file),
 * KOTTE_EDB (kotte_error_detail() names the file and the SQLSTATE) or
 * KOTTE_ENOMEM.
 */
KOTTE_EXTERN int kotte_pg_migrate(const char *conninfo, const char *sql_dir,
                                  const kotte_pg_migrate_options *opts, unsigned int *applied);

/* ---- schema check -------------------------------------------------------- */

/**
 * The schema version this libkotte needs: the newest migration of the
 * sql/migrations it was built with (kotte_schema_migrations.version).
 */
#define KOTTE_PG_SCHEMA_VERSION 6

/**
 * Receives the outcome of kotte_pg_schema_check(): 0 when the database's
 * schema is at KOTTE_PG_SCHEMA_VERSION or newer; KOTTE_ESCHEMA when it is
 * missing (@p version 0) or older (@p version is what it has), with
 * kotte_error_detail() naming the version found, the version needed and
 * the command that migrates; or the pool's error (KOTTE_EDB,
 * KOTTE_EPOOLTIMEOUT, ...; @p version -1), explained in the detail.
 */
typedef void (*kotte_pg_schema_cb)(int status, int version, void *userdata);

/**
 * Asks @p pool's database for its libkotte schema version. Returns 0 (then
 * @p cb runs exactly once, later, on the loop thread) or KOTTE_EINVAL,
 * KOTTE_ENOMEM, KOTTE_ECLOSED, KOTTE_ETOOMANYWAITERS. Loop thread. Stores
 * opened with kotte_session_store_open() / kotte_cred_store_open() on a
 * postgresql backend run it themselves; programs that own their loop (and
 * use *_store_new) run it at start-up.
 */
KOTTE_EXTERN int kotte_pg_schema_check(kotte_pg_pool *pool, kotte_pg_schema_cb cb,
                                       void *userdata);

/**
 * The same, blocking, for a pool from kotte_pg_pool_open(): 0,
 * KOTTE_ESCHEMA, the pool's error or KOTTE_ETIMEDOUT; *version (may be
 * NULL) as in kotte_pg_schema_cb. Any thread but the runtime's.
 */
KOTTE_EXTERN int kotte_pg_schema_check_sync(kotte_pg_pool *pool, int *version, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif /* KOTTE_PG_H */
