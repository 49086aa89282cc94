/* The query registry: this replica's queries, the shared rows of the
 * backend (query_internal.h), and cancellation wherever a query runs.
 * Delivery (one callback per operation, on the loop thread, never before
 * the starting call returned) and the lifecycle are core/store.h's: the
 * registry is the third store on that plumbing.
 *
 * A cancel, step by step (kotte_query_cancel):
 *   1. find the query: the local table (memory) or the backend's row;
 *   2. another user's: KOTTE_EFORBIDDEN, nothing sent;
 *   3. this replica's: the cancel handler, through a `req` (below);
 *   4. a gone replica's: its row is deleted, KOTTE_ENOTFOUND;
 *   5. a live replica's: backend->ask() (NOTIFY, wait for the answer);
 *      a timeout looks at the owner once more (gone: KOTTE_ENOTFOUND).
 * A request from another replica enters at step 3 through the inbox.
 * Each handler call is a `req`, an operation of the store too, so that a
 * free waits for the handler's answer like for any operation in flight. */
#include <string.h>

#include "core/store.h"
#include "core/uthash_config.h"
#include "pg/pg_diag.h"
#include "query/query_internal.h"

typedef struct entry {
  char *request_id; /* key */
  char *user_id;
  int backend_pid;
  kotte_time started_at;
  UT_hash_handle hh;
} entry;

struct kotte_query_registry {
  kotte__store base; /* first */
  kotte__query_backend *be; /* NULL: memory */
  kotte_pg_pool *pool;
  kotte_query_options opts;
  char replica_id[KOTTE_TOKEN_LEN + 1];
  entry *local;
};

typedef struct op {
  kotte__op base; /* first */
  char *request_id, *user_id;
  int rechecked; /* cancel: the owner was looked at again after a timeout */
} op;

/* A call of the cancel handler: for a cancel of this replica (parent set)
 * or a request from another one (token and reply_to set). */
struct kotte_query_cancel_req {
  kotte__op base; /* first */
  op *parent;
  char *request_id, *user_id, *token, *reply_to;
  int answer; /* kotte_query_cancel_done()'s status, carried to the loop */
  int answered;
};

_Static_assert(offsetof(op, base) == 0 && offsetof(kotte_query_registry, base) == 0 &&
                   offsetof(kotte_query_cancel_req, base) == 0,
               "core/store.h: the shared part comes first");

#define REG(o) ((kotte_query_registry *)(o)->base.store)

static kotte_time now_of(const kotte_query_registry *r) {
  return kotte__store_clock(r->opts.clock, r->opts.clock_ctx);
}

/* ---- info ---------------------------------------------------------------- */

kotte_query_info *kotte__query_info_new(const kotte__query_row *row, int local) {
  kotte_query_info *i = kotte__calloc(1, sizeof *i);
  if (i == NULL) return NULL;
  i->request_id = kotte__strdup(row->request_id);
  i->user_id = kotte__strdup(row->user_id);
  i->replica_id = kotte__strdup(row->replica_id);
  i->backend_pid = row->backend_pid;
  i->started_at = row->started_at;
  i->local = local;
  if (!i->request_id || !i->user_id || !i->replica_id) {
    kotte_query_info_free(i);
    return NULL;
  }
  return i;
}

void kotte_query_info_free(kotte_query_info *i) {
  if (i == NULL) return;
  kotte__free(i->request_id);
  kotte__free(i->user_id);
  kotte__free(i->replica_id);
  kotte__free(i);
}

void kotte_query_list_free(kotte_query_list *l) {
  if (l == NULL) return;
  for (size_t k = 0; k < l->count; k++) kotte_query_info_free(l->items[k]);
  kotte__free(l->items);
  kotte__free(l);
}

static void free_info(void *p) { kotte_query_info_free(p); }
static void free_list(void *p) { kotte_query_list_free(p); }

/* ---- the local table ------------------------------------------------------ */

static entry *local_find(kotte_query_registry *r, const char *rid) {
  entry *e = NULL;
  HASH_FIND_STR(r->local, rid, e);
  return e;
}

static void entry_free(entry *e) {
  kotte__free(e->request_id);
  kotte__free(e->user_id);
  kotte__free(e);
}

static void local_drop(kotte_query_registry *r, entry *e) {
  HASH_DEL(r->local, e);
  entry_free(e);
}

static kotte__query_row row_of(const kotte_query_registry *r, const entry *e) {
  kotte__query_row row = { e->request_id, e->user_id, r->replica_id, "", e->backend_pid,
                           e->started_at, 1, 1 };
  return row;
}

/* ---- operations and the store type (core/store.h) ------------------------ */

KOTTE__OP_CALL_RESULT(call_info, kotte_query_info_cb)
KOTTE__OP_CALL_RESULT(call_list, kotte_query_list_cb)
KOTTE__OP_CALL_COUNT(call_count, kotte_query_count_cb)
#define call_status kotte__op_call_status

static void op_free(kotte__op *base) {
  if (base->cb == NULL) { /* a req: the only operation without a user callback */
    kotte_query_cancel_req *q = (kotte_query_cancel_req *)base;
    kotte__free(q->request_id);
    kotte__free(q->user_id);
    kotte__free(q->token);
    kotte__free(q->reply_to);
  } else {
    op *o = (op *)base;
    kotte__free(o->request_id);
    kotte__free(o->user_id);
  }
  kotte__free(base);
}

static void registry_release(kotte__store *base) {
  kotte_query_registry *r = (kotte_query_registry *)base;
  entry *e, *tmp;
  HASH_ITER(hh, r->local, e, tmp) local_drop(r, e);
  if (r->be) r->be->free(r->be);
}

static const kotte__store_type registry_type = { op_free, registry_release };

static op *op_new(kotte_query_registry *r, void (*call)(kotte__op *), kotte__op_cb cb, void *ud,
                  const char *rid, const char *user) {
  op *o = kotte__op_new(&r->base, sizeof(op), call, cb, ud);
  if (o == NULL) return NULL;
  o->request_id = rid ? kotte__strdup(rid) : NULL;
  o->user_id = user ? kotte__strdup(user) : NULL;
  if ((rid && !o->request_id) || (user && !o->user_id)) {
    op_free(&o->base);
    return NULL;
  }
  return o;
}

static int started(op *o, int rc) { return kotte__op_started(&o->base, rc); }
static void complete(op *o, int status) { kotte__op_complete(&o->base, status); }

static void on_status(int status, void *ctx) { complete(ctx, status); }

/* What nothing waits for (an answer to another replica, the delete of a row
 * found dead or of a query just cancelled) is still an operation of the
 * registry, so that its free waits until it went out. */
static void log_failure(int status, void *what) {
  if (status != 0 && status != KOTTE_ECANCELED)
    kotte__log(KOTTE_LOG_WARN, "query registry: %s failed: %s", (const char *)what,
               kotte_strerror(status));
}

static op *background_op(kotte_query_registry *r, const char *what) {
  return op_new(r, call_status, (kotte__op_cb)log_failure, (void *)what, NULL, NULL);
}

static void send_reply(kotte_query_registry *r, const char *to, const char *token, int status) {
  op *o = background_op(r, "answering another replica");
  if (o) started(o, r->be->reply(r->be, to, token, status, on_status, o));
}

static void drop_row(kotte_query_registry *r, const char *rid, const char *replica) {
  op *o = background_op(r, "deleting a query's row");
  if (o) started(o, r->be->remove(r->be, rid, replica, on_status, o));
}

/* ---- argument checks ------------------------------------------------------ */

static int id_check(const char *what, const char *s) {
  if (s == NULL || *s == '\0' || strlen(s) > KOTTE_QUERY_MAX_ID)
    return kotte__fail(KOTTE_EINVAL, "%s must be 1 to %d bytes", what, KOTTE_QUERY_MAX_ID);
  if (!kotte__utf8_valid(s, strlen(s)))
    return kotte__fail(KOTTE_EINVAL, "%s is not UTF-8", what);
  return 0;
}

#define CHECK(r, cb) KOTTE__STORE_ENTER(r, cb)

/* ---- register, set pid, unregister ---------------------------------------- */

int kotte_query_register(kotte_query_registry *r, const char *rid, const char *user, int pid,
                         kotte_query_status_cb cb, void *ud) {
  CHECK(r, cb);
  int rc = id_check("request id", rid);
  if (rc == 0) rc = kotte__user_id_check(user);
  if (rc != 0) return rc;
  if (pid < 0) return kotte__fail(KOTTE_EINVAL, "backend pid must not be negative");
  op *o = op_new(r, call_status, (kotte__op_cb)cb, ud, NULL, NULL);
  if (o == NULL) return KOTTE_ENOMEM;
  entry *e = local_find(r, rid);
  char *u = kotte__strdup(user);
  if (u == NULL) return kotte__op_started(&o->base, KOTTE_ENOMEM);
  if (e == NULL) {
    e = kotte__calloc(1, sizeof *e);
    if (e == NULL || (e->request_id = kotte__strdup(rid)) == NULL) {
      kotte__free(e);
      kotte__free(u);
      return started(o, KOTTE_ENOMEM);
    }
    kotte__uthash_oom = 0;
    HASH_ADD_KEYPTR(hh, r->local, e->request_id, strlen(e->request_id), e);
    if (kotte__uthash_oom) {
      entry_free(e);
      kotte__free(u);
      return started(o, KOTTE_ENOMEM);
    }
  } else {
    kotte__free(e->user_id);
  }
  e->user_id = u;
  e->backend_pid = pid;
  e->started_at = now_of(r);
  if (r->be == NULL) {
    complete(o, 0);
    return started(o, 0);
  }
  kotte__query_row row = row_of(r, e);
  return started(o, r->be->put(r->be, &row, on_status, o));
}

int kotte_query_set_backend_pid(kotte_query_registry *r, const char *rid, int pid,
                                kotte_query_status_cb cb, void *ud) {
  CHECK(r, cb);
  if (rid == NULL || pid < 0) return KOTTE_EINVAL;
  op *o = op_new(r, call_status, (kotte__op_cb)cb, ud, NULL, NULL);
  if (o == NULL) return KOTTE_ENOMEM;
  entry *e = local_find(r, rid);
  if (e == NULL || r->be == NULL) {
    if (e) e->backend_pid = pid;
    complete(o, e ? 0 : kotte__fail(KOTTE_ENOTFOUND, "no query of this replica by that id"));
    return started(o, 0);
  }
  e->backend_pid = pid;
  return started(o, r->be->set_pid(r->be, rid, pid, on_status, o));
}

int kotte_query_unregister(kotte_query_registry *r, const char *rid, kotte_query_status_cb cb,
                           void *ud) {
  CHECK(r, cb);
  if (rid == NULL) return KOTTE_EINVAL;
  op *o = op_new(r, call_status, (kotte__op_cb)cb, ud, NULL, NULL);
  if (o == NULL) return KOTTE_ENOMEM;
  entry *e = local_find(r, rid);
  if (e) local_drop(r, e);
  if (e == NULL || r->be == NULL) {
    complete(o, e ? 0 : kotte__fail(KOTTE_ENOTFOUND, "no query of this replica by that id"));
    return started(o, 0);
  }
  return started(o, r->be->remove(r->be, rid, r->replica_id, on_status, o));
}

/* ---- get, list ------------------------------------------------------------ */

/* A row whose replica is gone is deleted on sight (fire and forget). */
static int row_usable(kotte_query_registry *r, const kotte__query_row *row) {
  if (strcmp(row->replica_id, r->replica_id) == 0) return local_find(r, row->request_id) != NULL;
  if (row->alive) return 1;
  if (row->has_replica) drop_row(r, row->request_id, row->replica_id);
  return 0;
}

static void on_get_row(int status, const kotte__query_row *row, void *ctx) {
  op *o = ctx;
  kotte_query_registry *r = REG(o);
  if (status == 0 && !row_usable(r, row))
    status = kotte__fail(KOTTE_ENOTFOUND, "the replica that ran this query is gone");
  if (status == 0) {
    kotte_query_info *i =
        kotte__query_info_new(row, strcmp(row->replica_id, r->replica_id) == 0);
    kotte__op_set_result(&o->base, i, free_info);
    if (i == NULL) status = KOTTE_ENOMEM;
  }
  complete(o, status);
}

int kotte_query_get(kotte_query_registry *r, const char *rid, kotte_query_info_cb cb, void *ud) {
  CHECK(r, cb);
  if (rid == NULL) return KOTTE_EINVAL;
  op *o = op_new(r, call_info, (kotte__op_cb)cb, ud, NULL, NULL);
  if (o == NULL) return KOTTE_ENOMEM;
  if (r->be) return started(o, r->be->get(r->be, rid, on_get_row, o));
  entry *e = local_find(r, rid);
  if (e == NULL) {
    complete(o, kotte__fail(KOTTE_ENOTFOUND, "no query by that id"));
  } else {
    kotte__query_row row = row_of(r, e);
    on_get_row(0, &row, o);
  }
  return started(o, 0);
}

static int by_start(const void *a, const void *b) {
  const kotte_query_info *x = *(kotte_query_info *const *)a, *y = *(kotte_query_info *const *)b;
  return (x->started_at > y->started_at) - (x->started_at < y->started_at);
}

static void on_rows(int status, const kotte__query_row *rows, size_t n, void *ctx) {
  op *o = ctx;
  kotte_query_registry *r = REG(o);
  kotte_query_list *l = NULL;
  if (status == 0) {
    l = kotte__calloc(1, sizeof *l);
    if (l && n) l->items = kotte__calloc(n, sizeof *l->items);
    if (l == NULL || (n && l->items == NULL)) status = KOTTE_ENOMEM;
  }
  for (size_t k = 0; status == 0 && k < n; k++) {
    if (!row_usable(r, &rows[k])) continue;
    int local = strcmp(rows[k].replica_id, r->replica_id) == 0;
    if ((l->items[l->count] = kotte__query_info_new(&rows[k], local)) == NULL)
      status = KOTTE_ENOMEM;
    else
      l->count++;
  }
  if (status == 0 && l->count > 1) qsort(l->items, l->count, sizeof *l->items, by_start);
  kotte__op_set_result(&o->base, l, free_list);
  complete(o, status);
}

int kotte_query_list_user(kotte_query_registry *r, const char *user, kotte_query_list_cb cb,
                          void *ud) {
  CHECK(r, cb);
  if (user == NULL) return KOTTE_EINVAL;
  op *o = op_new(r, call_list, (kotte__op_cb)cb, ud, NULL, NULL);
  if (o == NULL) return KOTTE_ENOMEM;
  if (r->be) return started(o, r->be->list_user(r->be, user, on_rows, o));
  size_t n = 0, k = 0;
  entry *e, *tmp;
  HASH_ITER(hh, r->local, e, tmp) n += strcmp(e->user_id, user) == 0;
  kotte__query_row *rows = n ? kotte__calloc(n, sizeof *rows) : NULL;
  if (n && rows == NULL) return started(o, KOTTE_ENOMEM);
  HASH_ITER(hh, r->local, e, tmp) {
    if (strcmp(e->user_id, user) == 0) rows[k++] = row_of(r, e);
  }
  on_rows(0, rows, n, o);
  kotte__free(rows);
  return started(o, 0);
}

/* ---- purge ------------------------------------------------------------------ */

static void on_purged(int status, uint64_t count, void *ctx) {
  op *o = ctx;
  o->base.count += count;
  complete(o, status);
}

int kotte_query_purge(kotte_query_registry *r, kotte_query_count_cb cb, void *ud) {
  CHECK(r, cb);
  op *o = op_new(r, call_count, (kotte__op_cb)cb, ud, NULL, NULL);
  if (o == NULL) return KOTTE_ENOMEM;
  kotte_time before = now_of(r) - r->opts.stale_after_s * 1000000;
  uint64_t n = 0;
  entry *e, *tmp;
  HASH_ITER(hh, r->local, e, tmp) {
    if (e->started_at >= before) continue;
    local_drop(r, e);
    n++;
  }
  if (r->be) return started(o, r->be->purge(r->be, before, on_purged, o)); /* counts its rows */
  on_purged(0, n, o);
  return started(o, 0);
}

/* ---- the cancel handler (a req) ----------------------------------------------- */

static void cancel_finish(op *o, int status);

/* Runs once the handler answered (or the registry's free cancelled it). */
static void req_done(kotte__op *base) {
  kotte_query_cancel_req *q = (kotte_query_cancel_req *)base;
  kotte_query_registry *r = (kotte_query_registry *)base->store;
  int status = base->status;
  if (status == 0) { /* Kotte unregisters a query it cancelled */
    entry *e = local_find(r, q->request_id);
    if (e) local_drop(r, e);
    if (r->be) drop_row(r, q->request_id, r->replica_id);
  }
  if (q->parent) cancel_finish(q->parent, status);
  else send_reply(r, q->reply_to, q->token, status);
}

/* Hands a cancel of the local query @p e to the handler; 0 or a code that
 * answers at once. */
static int req_start(kotte_query_registry *r, const entry *e, op *parent, const char *token,
                     const char *reply_to) {
  if (r->opts.on_cancel == NULL)
    return kotte__fail(KOTTE_ENOTSUP, "the replica that runs this query has no cancel handler");
  kotte_query_cancel_req *q = kotte__op_new(&r->base, sizeof *q, req_done, NULL, NULL);
  if (q == NULL) return KOTTE_ENOMEM;
  q->parent = parent;
  q->request_id = kotte__strdup(e->request_id);
  q->user_id = kotte__strdup(e->user_id);
  q->token = token ? kotte__strdup(token) : NULL;
  q->reply_to = reply_to ? kotte__strdup(reply_to) : NULL;
  if (!q->request_id || !q->user_id || (token && !q->token) || (reply_to && !q->reply_to))
    return kotte__op_started(&q->base, KOTTE_ENOMEM);
  kotte__op_started(&q->base, 0);
  /* the store counts it as pending from here: a free waits for the answer */
  r->opts.on_cancel(q, q->request_id, q->user_id, e->backend_pid, r->opts.cancel_userdata);
  return 0;
}

static void done_on_loop(kotte_query_cancel_req *q) {
  if (q->answered) {
    kotte__log(KOTTE_LOG_ERROR, "kotte_query_cancel_done called twice for one request");
    return;
  }
  q->answered = 1;
  kotte__op_complete(&q->base, q->answer);
}

static void done_posted(void *arg) { done_on_loop(arg); }

int kotte_query_cancel_done(kotte_query_cancel_req *q, int status) {
  kotte__clear_detail();
  if (q == NULL || status > 0) return KOTTE_EINVAL;
  q->answer = status;
  kotte_runtime *rt = q->base.store->rt;
  if (rt && !kotte_runtime_on_loop_thread(rt)) return kotte_runtime_post(rt, done_posted, q);
  done_on_loop(q);
  return 0;
}

/* A request of another replica (the inbox). */
static void inbox_request(void *owner, const char *rid, const char *user, const char *token,
                          const char *reply_to) {
  kotte_query_registry *r = owner;
  if (r->base.closing) {
    send_reply(r, reply_to, token, KOTTE_ENOTFOUND);
    return;
  }
  entry *e = local_find(r, rid);
  int rc = e == NULL                          ? KOTTE_ENOTFOUND
           : strcmp(e->user_id, user) != 0    ? KOTTE_EFORBIDDEN
                                              : req_start(r, e, NULL, token, reply_to);
  if (rc != 0) send_reply(r, reply_to, token, rc);
}

static void inbox_republish(void *owner) {
  kotte_query_registry *r = owner;
  entry *e, *tmp;
  HASH_ITER(hh, r->local, e, tmp) {
    kotte__query_row row = row_of(r, e);
    op *o = background_op(r, "registering a query again");
    if (o) started(o, r->be->put(r->be, &row, on_status, o));
  }
}

/* ---- cancel ------------------------------------------------------------------ */

static void cancel_finish(op *o, int status) { complete(o, status); }

/* Step 3: the query runs here. */
static void cancel_local(op *o) {
  kotte_query_registry *r = REG(o);
  entry *e = local_find(r, o->request_id);
  int rc;
  if (e == NULL) rc = kotte__fail(KOTTE_ENOTFOUND, "no query by that id");
  else if (strcmp(e->user_id, o->user_id) != 0)
    rc = kotte__fail(KOTTE_EFORBIDDEN, "the query belongs to another user");
  else rc = req_start(r, e, o, NULL, NULL);
  if (rc != 0) complete(o, rc);
}

static void on_recheck(int status, const kotte__query_row *row, void *ctx) {
  op *o = ctx;
  if (status == 0 && !row_usable(REG(o), row)) status = KOTTE_ENOTFOUND;
  complete(o, status == KOTTE_ENOTFOUND
                  ? kotte__fail(KOTTE_ENOTFOUND, "the replica that ran this query is gone")
                  : kotte__fail(KOTTE_ETIMEDOUT, "the replica that runs this query did not "
                                                 "answer in time"));
}

static void on_asked(int status, void *ctx) {
  op *o = ctx;
  kotte_query_registry *r = REG(o);
  if (status == KOTTE_ETIMEDOUT && !o->rechecked && !r->base.closing) {
    o->rechecked = 1;
    int rc = r->be->get(r->be, o->request_id, on_recheck, o);
    if (rc == 0) return;
  }
  if (status == KOTTE_EFORBIDDEN) kotte__fail(status, "the query belongs to another user");
  else if (status == KOTTE_ENOTFOUND) kotte__fail(status, "no query by that id");
  complete(o, status);
}

static void on_cancel_row(int status, const kotte__query_row *row, void *ctx) {
  op *o = ctx;
  kotte_query_registry *r = REG(o);
  if (status != 0) {
    if (status == KOTTE_ENOTFOUND) kotte__fail(status, "no query by that id");
    complete(o, status);
    return;
  }
  if (strcmp(row->user_id, o->user_id) != 0) {
    complete(o, kotte__fail(KOTTE_EFORBIDDEN, "the query belongs to another user"));
  } else if (strcmp(row->replica_id, r->replica_id) == 0) {
    cancel_local(o);
  } else if (!row_usable(r, row)) {
    complete(o, kotte__fail(KOTTE_ENOTFOUND, "the replica that ran this query is gone"));
  } else {
    int rc = r->be->ask(r->be, row->channel, o->request_id, o->user_id,
                        r->opts.cancel_timeout_ms, on_asked, o);
    if (rc != 0) complete(o, rc);
  }
}

int kotte_query_cancel(kotte_query_registry *r, const char *rid, const char *user,
                       kotte_query_status_cb cb, void *ud) {
  CHECK(r, cb);
  if (rid == NULL || user == NULL) return KOTTE_EINVAL;
  op *o = op_new(r, call_status, (kotte__op_cb)cb, ud, rid, user);
  if (o == NULL) return KOTTE_ENOMEM;
  if (r->be && local_find(r, rid) == NULL)
    return started(o, r->be->get(r->be, rid, on_cancel_row, o));
  cancel_local(o);
  return started(o, 0);
}

/* ---- lifecycle ------------------------------------------------------------------ */

static int check_options(const kotte_query_options *opts) {
  if (opts->version < 1 || opts->version > KOTTE_QUERY_OPTIONS_VERSION)
    return kotte__fail(KOTTE_EVERSION, "kotte_query_options.version %u is not supported",
                       opts->version);
  if (opts->cancel_timeout_ms == 0 || opts->stale_after_s <= 0 ||
      opts->stale_after_s > INT64_MAX / 2000000)
    return kotte__fail(KOTTE_EINVAL, "query options: cancel_timeout_ms and stale_after_s "
                                     "must be positive");
  return 0;
}

static int make_backend(void *arg) {
  kotte_query_registry *r = arg;
  kotte__query_inbox inbox = { inbox_request, inbox_republish, r };
  return kotte__query_backend_postgresql_new(&r->be, r->pool, r->replica_id, &inbox);
}

static int registry_make(kotte_query_registry **out, uv_loop_t *loop, kotte_runtime *rt,
                         kotte_pg_pool *pool, const kotte_query_options *opts) {
  kotte_query_options defaults = KOTTE_QUERY_OPTIONS_INIT;
  if (opts == NULL) opts = &defaults;
  int rc = check_options(opts);
  if (rc != 0) return rc;
  kotte_query_registry *r =
      kotte__store_new(sizeof *r, &registry_type, "query", 1, 1, 1, &rc);
  if (r == NULL) return rc;
  r->opts = *opts;
  r->pool = pool;
  if ((rc = kotte_token_generate(r->replica_id)) != 0 ||
      (rc = kotte__store_attach(&r->base, loop, rt)) != 0) {
    kotte__free(r);
    return rc;
  }
  if (pool) {
    rc = rt ? kotte_runtime_run(rt, make_backend, r) : make_backend(r);
    if (rc != 0) {
      kotte__store_free(&r->base, "kotte_query_registry_new");
      return rc;
    }
  }
  *out = r;
  return 0;
}

int kotte_query_registry_new(kotte_query_registry **out, uv_loop_t *loop, kotte_pg_pool *pool,
                             const kotte_query_options *opts) {
  kotte__clear_detail();
  if (out == NULL) return KOTTE_EINVAL;
  *out = NULL;
  if (loop == NULL) return KOTTE_EINVAL;
  return registry_make(out, loop, NULL, pool, opts);
}

int kotte_query_registry_open(kotte_query_registry **out, kotte_runtime *rt,
                              kotte_pg_pool *pool, const kotte_query_options *opts) {
  kotte__clear_detail();
  if (out == NULL) return KOTTE_EINVAL;
  *out = NULL;
  if (rt == NULL) return KOTTE_EINVAL;
  int rc = pool ? kotte__pg_schema_verify(pool) : 0;
  return rc != 0 ? rc : registry_make(out, NULL, rt, pool, opts);
}

/* This replica's rows go before the registry: an operation of its own
 * (pending, so the free below waits for it), started on the loop. A
 * failure (the database is away) leaves rows that read as gone. */
static int start_down(void *arg) {
  kotte_query_registry *r = arg;
  if (r->be == NULL || r->base.closing) return 0;
  op *o = background_op(r, "deleting this replica's rows");
  if (o == NULL) return KOTTE_ENOMEM;
  return started(o, r->be->remove_all(r->be, on_status, o));
}

void kotte_query_registry_free(kotte_query_registry *r) {
  if (r == NULL) return;
  if (r->be) {
    if (r->base.rt && !kotte_runtime_on_loop_thread(r->base.rt))
      kotte_runtime_run(r->base.rt, start_down, r);
    else
      start_down(r);
  }
  kotte__store_free(&r->base, "kotte_query_registry_free");
}

const char *kotte_query_registry_backend_name(const kotte_query_registry *r) {
  return r == NULL ? "" : r->be ? r->be->name : "memory";
}

const char *kotte_query_registry_replica_id(const kotte_query_registry *r) {
  return r ? r->replica_id : "";
}

static int ready_here(void *arg) {
  const kotte_query_registry *r = arg;
  return r->be == NULL || r->be->ready(r->be);
}

int kotte_query_registry_ready(kotte_query_registry *r) {
  if (r == NULL) return 0;
  if (r->base.rt && !kotte_runtime_on_loop_thread(r->base.rt))
    return kotte_runtime_run(r->base.rt, ready_here, r) == 1;
  return ready_here(r);
}

kotte_runtime *kotte__query_registry_runtime(kotte_query_registry *r) { return r->base.rt; }

unsigned int kotte__query_registry_cancel_timeout(const kotte_query_registry *r) {
  return r->opts.cancel_timeout_ms;
}
