/* The postgresql backend of the query registry: tables kotte_queries and
 * kotte_query_replicas (sql/migrations/0006) through a kotte_pg_pool, and
 * the replicas' messages over LISTEN/NOTIFY on the pool's listener.
 *
 * Messages are JSON (cJSON) in a NOTIFY payload, on the channel of the
 * replica they are for ("kotte_q_" + its replica id):
 *   {"op":"cancel","rid":...,"user":...,"token":...,"reply":<channel>}
 *   {"op":"result","token":...,"status":<0 or a KOTTE_E* code>}
 * The token is a fresh random token per ask, so an answer matches exactly
 * the ask that waits for it; anything else on the channel is ignored (any
 * client of the database may NOTIFY: the payload is input).
 *
 * Liveness (query.h says why): a replica's row holds its listener
 * connection's backend pid and backend_start; the replica is alive while
 * pg_stat_activity has that pair. The row is written on every "up" of the
 * listener (the pid changes with each connection).
 *
 * Parameters and results are text (one statement per operation; times as
 * microseconds since the epoch, converted by the server), so no value is
 * encoded by hand. The backend keeps itself alive while a statement it
 * sent is in flight (a NOTIFY answer, a delete after a cancel): `inflight`
 * below. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/uthash_config.h"
#include "kotte/pg.h"
#include "pg/pg_diag.h"
#include "query/query_internal.h"

#define T_TEXT 25u
#define T_INT4 23u
#define T_INT8 20u

#define TIME_OF(p) "('epoch'::timestamptz + " p "::int8 * interval '1 microsecond')"
#define ALIVE_R                                                                            \
  "EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = r.listener_pid AND "           \
  "a.backend_start = r.listener_start)"
#define ROW_COLS                                                                           \
  "q.user_id, q.replica_id, coalesce(q.backend_pid, 0), "                                \
  "(extract(epoch FROM q.started_at) * 1000000)::int8, coalesce(r.channel, ''), "        \
  "coalesce(" ALIVE_R ", false), r.replica_id IS NOT NULL, q.request_id"
#define ROW_FROM \
  " FROM kotte_queries q LEFT JOIN kotte_query_replicas r ON r.replica_id = q.replica_id "
/* A query registered before its replica's first "up" has no replica row
 * yet; the purge leaves it alone this long. */
#define NO_REPLICA_GRACE_US (60 * 1000000LL)

enum { S_PUT, S_SET_PID, S_REMOVE, S_GET, S_LIST, S_PURGE, S_REPLICA_UP, S_REPLICA_DOWN,
       S_NOTIFY, S_COUNT };

static const struct {
  const char *sql;
  int n;
  unsigned int types[5];
} STMTS[S_COUNT] = {
  [S_PUT] = { "INSERT INTO kotte_queries (request_id, user_id, replica_id, backend_pid, "
              "started_at) VALUES ($1, $2, $3, $4, " TIME_OF("$5") ") ON CONFLICT (request_id) "
              "DO UPDATE SET user_id = excluded.user_id, replica_id = excluded.replica_id, "
              "backend_pid = excluded.backend_pid, started_at = excluded.started_at",
              5, { T_TEXT, T_TEXT, T_TEXT, T_INT4, T_INT8 } },
  [S_SET_PID] = { "UPDATE kotte_queries SET backend_pid = $3 WHERE request_id = $1 AND "
                  "replica_id = $2", 3, { T_TEXT, T_TEXT, T_INT4 } },
  [S_REMOVE] = { "DELETE FROM kotte_queries WHERE request_id = $1 AND replica_id = $2", 2,
                 { T_TEXT, T_TEXT } },
  [S_GET] = { "SELECT " ROW_COLS ROW_FROM "WHERE q.request_id = $1", 1, { T_TEXT } },
  [S_LIST] = { "SELECT " ROW_COLS ROW_FROM "WHERE q.user_id = $1 ORDER BY q.started_at", 1,
               { T_TEXT } },
  /* Dead replicas (their listener connection is gone) lose their row and
   * their queries; stale queries go whatever their owner; queries without
   * a replica row only after the grace. The delete of a replica row checks
   * liveness again on the row's newest version (a replica that just came
   * back up is kept). */
  [S_PURGE] = { "WITH dead AS (SELECT r.replica_id FROM kotte_query_replicas r WHERE NOT "
                ALIVE_R "), gone AS (DELETE FROM kotte_query_replicas r USING dead d WHERE "
                "r.replica_id = d.replica_id AND NOT " ALIVE_R "), q AS (DELETE FROM "
                "kotte_queries q WHERE q.started_at < " TIME_OF("$1") " OR q.replica_id IN "
                "(SELECT replica_id FROM dead) OR (q.started_at < " TIME_OF("$2") " AND NOT "
                "EXISTS (SELECT 1 FROM kotte_query_replicas r WHERE r.replica_id = "
                "q.replica_id)) RETURNING 1) SELECT count(*) FROM q",
                2, { T_INT8, T_INT8 } },
  [S_REPLICA_UP] = { "INSERT INTO kotte_query_replicas (replica_id, channel, listener_pid, "
                     "listener_start, updated_at) SELECT $1, $2, a.pid, a.backend_start, now() "
                     "FROM pg_stat_activity a WHERE a.pid = $3 ON CONFLICT (replica_id) DO "
                     "UPDATE SET channel = excluded.channel, listener_pid = "
                     "excluded.listener_pid, listener_start = excluded.listener_start, "
                     "updated_at = excluded.updated_at",
                     3, { T_TEXT, T_TEXT, T_INT4 } },
  [S_REPLICA_DOWN] = { "WITH q AS (DELETE FROM kotte_queries WHERE replica_id = $1) "
                       "DELETE FROM kotte_query_replicas WHERE replica_id = $1", 1, { T_TEXT } },
  [S_NOTIFY] = { "SELECT pg_notify($1, $2)", 2, { T_TEXT, T_TEXT } },
};

typedef struct pgq pgq;

/* An ask waiting for its answer. */
typedef struct wait {
  pgq *b;
  char token[KOTTE_TOKEN_LEN + 1];
  uv_timer_t timer;
  kotte__query_status_fn cb;
  void *ctx;
  int refs; /* the timer's close, and the NOTIFY in flight */
  int done;
  struct wait *prev, *next;
} wait;

struct pgq {
  kotte__query_backend base; /* first */
  kotte_pg_pool *pool;
  kotte_pg_stmt *stmts[S_COUNT];
  kotte_pg_listener *listener;
  kotte__query_inbox inbox;
  char replica_id[KOTTE_TOKEN_LEN + 1];
  char channel[64];
  int up;        /* the listener is up... */
  int published; /* ...and this replica's row says so */
  uint64_t ups;
  unsigned int inflight; /* statements sent whose callback has not run */
  int freeing;
  wait *waits;
};

#define PGQ(be) ((pgq *)(be))

/* One statement in flight. */
typedef struct call {
  pgq *b;
  int stmt;
  kotte__query_status_fn status_cb;
  kotte__query_row_fn row_cb;
  kotte__query_rows_fn rows_cb;
  kotte__query_count_fn count_cb;
  wait *w; /* S_NOTIFY of an ask */
  void *ctx;
} call;

static void maybe_free(pgq *b) {
  if (b->freeing && b->inflight == 0 && b->waits == NULL && b->listener == NULL) kotte__free(b);
}

static int fail(int status, const kotte_pg_result *res) {
  return kotte__pg_fail(status, "postgresql query registry", res);
}

/* ---- rows ---------------------------------------------------------------------- */

static kotte__query_row row_at(const kotte_pg_result *res, int i) {
  kotte__query_row row;
  row.user_id = kotte_pg_result_value(res, i, 0);
  row.replica_id = kotte_pg_result_value(res, i, 1);
  row.backend_pid = atoi(kotte_pg_result_value(res, i, 2));
  row.started_at = strtoll(kotte_pg_result_value(res, i, 3), NULL, 10);
  row.channel = kotte_pg_result_value(res, i, 4);
  row.alive = kotte_pg_result_value(res, i, 5)[0] == 't';
  row.has_replica = kotte_pg_result_value(res, i, 6)[0] == 't';
  row.request_id = kotte_pg_result_value(res, i, 7);
  return row;
}

static void wait_unref(wait *w);
static void wait_finish(wait *w, int status);

static void on_result(int status, const kotte_pg_result *res, void *ud) {
  call *c = ud;
  pgq *b = c->b;
  if (status != 0) status = fail(status, res);
  switch (c->stmt) {
  case S_GET:
    if (status == 0 && kotte_pg_result_ntuples(res) == 0) status = KOTTE_ENOTFOUND;
    if (status == 0) {
      kotte__query_row row = row_at(res, 0);
      c->row_cb(0, &row, c->ctx);
    } else {
      c->row_cb(status, NULL, c->ctx);
    }
    break;
  case S_LIST: {
    int n = status == 0 ? kotte_pg_result_ntuples(res) : 0;
    kotte__query_row *rows = n ? kotte__calloc((size_t)n, sizeof *rows) : NULL;
    if (n && rows == NULL) status = KOTTE_ENOMEM;
    for (int i = 0; status == 0 && i < n; i++) rows[i] = row_at(res, i);
    c->rows_cb(status, rows, status == 0 ? (size_t)n : 0, c->ctx);
    kotte__free(rows);
    break;
  }
  case S_PURGE:
    c->count_cb(status, status == 0 ? strtoull(kotte_pg_result_value(res, 0, 0), NULL, 10) : 0,
                c->ctx);
    break;
  case S_REPLICA_UP:
    if (status == 0 && b->up && !b->freeing) {
      b->published = kotte_pg_result_affected(res) == 1;
      /* after a loss, a purge elsewhere may have deleted this replica's rows */
      if (b->published && b->ups > 1) b->inbox.republish(b->inbox.owner);
    } else if (status != 0) {
      kotte__log(KOTTE_LOG_WARN, "query registry: could not publish this replica: %s",
                 kotte_error_detail());
    }
    break;
  case S_NOTIFY:
    if (c->w) {
      if (status != 0) wait_finish(c->w, status);
      wait_unref(c->w);
    } else if (c->status_cb) {
      c->status_cb(status, c->ctx);
    }
    break;
  default:
    if (c->status_cb) c->status_cb(status, c->ctx);
  }
  kotte__free(c);
  b->inflight--;
  maybe_free(b);
}

static int prepare(pgq *b) {
  for (int i = 0; i < S_COUNT; i++) {
    if (b->stmts[i]) continue;
    int rc = kotte_pg_pool_prepare(b->pool, &b->stmts[i], STMTS[i].sql, STMTS[i].n,
                                   STMTS[i].types);
    if (rc != 0) return rc;
  }
  return 0;
}

/* Sends statement @p stmt with text @p values; @p c (owned) gets the result. */
static int send_call(pgq *b, call *c, const char *const *values) {
  int rc = prepare(b);
  if (rc == 0) {
    kotte_pg_query q = KOTTE_PG_QUERY_INIT;
    q.stmt = b->stmts[c->stmt];
    q.nparams = STMTS[c->stmt].n;
    q.values = values;
    /* every statement here may run twice: an upsert, a delete, a read, a
     * NOTIFY whose answer is matched by token */
    q.flags = KOTTE_PG_IDEMPOTENT;
    rc = kotte_pg_pool_query(b->pool, &q, on_result, c);
  }
  if (rc != 0) {
    kotte__free(c);
    return rc;
  }
  b->inflight++;
  return 0;
}

static call *call_new(pgq *b, int stmt, void *ctx) {
  call *c = kotte__calloc(1, sizeof *c);
  if (c) {
    c->b = b;
    c->stmt = stmt;
    c->ctx = ctx;
  }
  return c;
}

/* ---- the registry's operations ---------------------------------------------------- */

static int be_put(kotte__query_backend *be, const kotte__query_row *row,
                  kotte__query_status_fn cb, void *ctx) {
  pgq *b = PGQ(be);
  call *c = call_new(b, S_PUT, ctx);
  if (c == NULL) return KOTTE_ENOMEM;
  c->status_cb = cb;
  char pid[16], at[24];
  snprintf(pid, sizeof pid, "%d", row->backend_pid);
  snprintf(at, sizeof at, "%lld", (long long)row->started_at);
  const char *v[] = { row->request_id, row->user_id, b->replica_id, pid, at };
  return send_call(b, c, v);
}

static int be_set_pid(kotte__query_backend *be, const char *rid, int pid,
                      kotte__query_status_fn cb, void *ctx) {
  pgq *b = PGQ(be);
  call *c = call_new(b, S_SET_PID, ctx);
  if (c == NULL) return KOTTE_ENOMEM;
  c->status_cb = cb;
  char p[16];
  snprintf(p, sizeof p, "%d", pid);
  const char *v[] = { rid, b->replica_id, p };
  return send_call(b, c, v);
}

static int be_remove(kotte__query_backend *be, const char *rid, const char *replica,
                     kotte__query_status_fn cb, void *ctx) {
  pgq *b = PGQ(be);
  call *c = call_new(b, S_REMOVE, ctx);
  if (c == NULL) return KOTTE_ENOMEM;
  c->status_cb = cb;
  const char *v[] = { rid, replica };
  return send_call(b, c, v);
}

static int be_get(kotte__query_backend *be, const char *rid, kotte__query_row_fn cb, void *ctx) {
  pgq *b = PGQ(be);
  call *c = call_new(b, S_GET, ctx);
  if (c == NULL) return KOTTE_ENOMEM;
  c->row_cb = cb;
  const char *v[] = { rid };
  return send_call(b, c, v);
}

static int be_list_user(kotte__query_backend *be, const char *user, kotte__query_rows_fn cb,
                        void *ctx) {
  pgq *b = PGQ(be);
  call *c = call_new(b, S_LIST, ctx);
  if (c == NULL) return KOTTE_ENOMEM;
  c->rows_cb = cb;
  const char *v[] = { user };
  return send_call(b, c, v);
}

static int be_purge(kotte__query_backend *be, kotte_time before, kotte__query_count_fn cb,
                    void *ctx) {
  pgq *b = PGQ(be);
  call *c = call_new(b, S_PURGE, ctx);
  if (c == NULL) return KOTTE_ENOMEM;
  c->count_cb = cb;
  char stale[24], grace[24];
  snprintf(stale, sizeof stale, "%lld", (long long)before);
  snprintf(grace, sizeof grace, "%lld", (long long)(kotte_clock_now() - NO_REPLICA_GRACE_US));
  const char *v[] = { stale, grace };
  return send_call(b, c, v);
}

/* ---- messages ---------------------------------------------------------------------- */

static int notify(pgq *b, const char *channel, cJSON *msg, wait *w, kotte__query_status_fn cb,
                  void *ctx) {
  char *payload = cJSON_PrintUnformatted(msg);
  if (payload == NULL) return KOTTE_ENOMEM;
  call *c = call_new(b, S_NOTIFY, ctx);
  int rc = KOTTE_ENOMEM;
  if (c) {
    c->w = w;
    c->status_cb = cb;
    const char *v[] = { channel, payload };
    rc = send_call(b, c, v);
  }
  cJSON_free(payload);
  return rc;
}

static void wait_closed(uv_handle_t *h) { wait_unref(h->data); }

static void wait_unref(wait *w) {
  if (--w->refs > 0) return;
  pgq *b = w->b;
  kotte__free(w);
  maybe_free(b);
}

/* Ends an ask once: its callback, then the timer goes. */
static void wait_finish(wait *w, int status) {
  if (w->done) return;
  w->done = 1;
  DL_DELETE(w->b->waits, w);
  uv_timer_stop(&w->timer);
  uv_close((uv_handle_t *)&w->timer, wait_closed);
  w->cb(status, w->ctx);
}

static void on_wait_timeout(uv_timer_t *t) { wait_finish(t->data, KOTTE_ETIMEDOUT); }

static int be_ask(kotte__query_backend *be, const char *channel, const char *rid,
                  const char *user, unsigned int timeout_ms, kotte__query_status_fn cb,
                  void *ctx) {
  pgq *b = PGQ(be);
  wait *w = kotte__calloc(1, sizeof *w);
  if (w == NULL) return KOTTE_ENOMEM;
  w->b = b;
  w->cb = cb;
  w->ctx = ctx;
  int rc = kotte_token_generate(w->token);
  cJSON *msg = cJSON_CreateObject();
  if (rc == 0 && (msg == NULL || !cJSON_AddStringToObject(msg, "op", "cancel") ||
                  !cJSON_AddStringToObject(msg, "rid", rid) ||
                  !cJSON_AddStringToObject(msg, "user", user) ||
                  !cJSON_AddStringToObject(msg, "token", w->token) ||
                  !cJSON_AddStringToObject(msg, "reply", b->channel)))
    rc = KOTTE_ENOMEM;
  if (rc == 0 && uv_timer_init(kotte_pg_pool_loop(b->pool), &w->timer) != 0) rc = KOTTE_EINTERNAL;
  if (rc != 0) {
    cJSON_Delete(msg);
    kotte__free(w);
    return rc;
  }
  w->timer.data = w;
  w->refs = 2; /* the timer's close, the NOTIFY */
  DL_APPEND(b->waits, w);
  uv_timer_start(&w->timer, on_wait_timeout, timeout_ms, 0);
  rc = notify(b, channel, msg, w, NULL, NULL);
  cJSON_Delete(msg);
  if (rc != 0) {
    w->refs--; /* no NOTIFY in flight */
    w->cb = NULL;
    w->done = 1;
    DL_DELETE(b->waits, w);
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, wait_closed);
    return rc;
  }
  return 0;
}

static int be_reply(kotte__query_backend *be, const char *reply_to, const char *token,
                    int status, kotte__query_status_fn cb, void *ctx) {
  pgq *b = PGQ(be);
  int rc = KOTTE_ENOMEM;
  cJSON *msg = cJSON_CreateObject();
  if (msg && cJSON_AddStringToObject(msg, "op", "result") &&
      cJSON_AddStringToObject(msg, "token", token) &&
      cJSON_AddNumberToObject(msg, "status", status))
    rc = notify(b, reply_to, msg, NULL, cb, ctx);
  cJSON_Delete(msg);
  return rc;
}

static const char *str_of(const cJSON *msg, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void on_notify(const char *channel, const char *payload, int pid, void *ud) {
  pgq *b = ud;
  cJSON *msg = cJSON_Parse(payload);
  const char *op = str_of(msg, "op"), *token = str_of(msg, "token");
  if (op && token && strcmp(op, "result") == 0) {
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(msg, "status");
    wait *w;
    DL_FOREACH(b->waits, w) {
      if (strcmp(w->token, token) != 0) continue;
      int status = cJSON_IsNumber(st) && st->valuedouble <= 0 && st->valuedouble >= -1000
                       ? (int)st->valuedouble
                       : KOTTE_EINTERNAL;
      wait_finish(w, status);
      break;
    }
  } else if (op && token && strcmp(op, "cancel") == 0) {
    const char *rid = str_of(msg, "rid"), *user = str_of(msg, "user");
    const char *reply = str_of(msg, "reply");
    if (rid && user && reply && strlen(reply) < 64)
      b->inbox.request(b->inbox.owner, rid, user, token, reply);
  }
  cJSON_Delete(msg);
}

static void on_state(int up, const char *reason, void *ud) {
  pgq *b = ud;
  b->up = up;
  b->published = 0;
  if (!up) {
    kotte__log(KOTTE_LOG_WARN, "query registry: listener down: %s", reason);
    return;
  }
  b->ups++;
  kotte_pg_listener_stats s;
  memset(&s, 0, sizeof s);
  s.version = KOTTE_PG_LISTENER_STATS_VERSION;
  if (kotte_pg_listener_get_stats(b->listener, &s) != 0 || s.backend_pid == 0) return;
  call *c = call_new(b, S_REPLICA_UP, NULL);
  if (c == NULL) return;
  char pid[16];
  snprintf(pid, sizeof pid, "%d", s.backend_pid);
  const char *v[] = { b->replica_id, b->channel, pid };
  send_call(b, c, v);
}

static int be_remove_all(kotte__query_backend *be, kotte__query_status_fn cb, void *ctx) {
  pgq *b = PGQ(be);
  call *c = call_new(b, S_REPLICA_DOWN, ctx);
  if (c == NULL) return KOTTE_ENOMEM;
  c->status_cb = cb;
  const char *v[] = { b->replica_id };
  return send_call(b, c, v);
}

static int be_ready(const kotte__query_backend *be) {
  const pgq *b = (const pgq *)be;
  return b->up && b->published;
}

static void be_free(kotte__query_backend *be) {
  pgq *b = PGQ(be);
  b->freeing = 1;
  kotte_pg_listener_free(b->listener);
  b->listener = NULL;
  maybe_free(b);
}

int kotte__query_backend_postgresql_new(kotte__query_backend **out, kotte_pg_pool *pool,
                                        const char *replica_id,
                                        const kotte__query_inbox *inbox) {
  pgq *b = kotte__calloc(1, sizeof *b);
  if (b == NULL) return KOTTE_ENOMEM;
  b->base.name = "postgresql";
  b->base.put = be_put;
  b->base.set_pid = be_set_pid;
  b->base.remove = be_remove;
  b->base.get = be_get;
  b->base.list_user = be_list_user;
  b->base.purge = be_purge;
  b->base.ask = be_ask;
  b->base.reply = be_reply;
  b->base.remove_all = be_remove_all;
  b->base.ready = be_ready;
  b->base.free = be_free;
  b->pool = pool;
  b->inbox = *inbox;
  snprintf(b->replica_id, sizeof b->replica_id, "%s", replica_id);
  snprintf(b->channel, sizeof b->channel, KOTTE__QUERY_CHANNEL_PREFIX "%s", replica_id);
  const char *channels[] = { b->channel };
  kotte_pg_listener_options lo = KOTTE_PG_LISTENER_OPTIONS_INIT;
  lo.channels = channels;
  lo.n_channels = 1;
  lo.on_notify = on_notify;
  lo.on_state = on_state;
  lo.userdata = b;
  int rc = kotte_pg_listener_new(&b->listener, pool, &lo);
  if (rc != 0) {
    kotte__free(b);
    return rc;
  }
  *out = &b->base;
  return 0;
}
