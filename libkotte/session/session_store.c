/* The session store: semantics (ids, expiry, limits) over any backend, and
 * the delivery rule: exactly one callback per operation, on the loop
 * thread, never before the starting call returned. */
#include <sodium.h>
#include <stddef.h>
#include <string.h>

#include "core/defer.h"
#include "runtime/runtime_internal.h"
#include "core/json.h"
#include "pg/pg_diag.h"
#include "keyring/keyring_internal.h"
#include "session/session_internal.h"

typedef enum op_kind {
  OP_SESSION, /* result: a session */
  OP_STATUS,  /* result: status only */
  OP_COUNT,   /* result: a count */
  OP_LIST     /* result: a list */
} op_kind;

typedef struct op op;
struct op {
  kotte_session_store *store;
  op_kind kind;
  int starting;          /* the starting call is still on the stack */
  kotte__deferred link;  /* in the store's deferred queue */
  void (*then)(op *o);   /* what the deferred queue does with it */
  union {
    kotte_session_cb session;
    kotte_session_status_cb status;
    kotte_session_count_cb count;
    kotte_session_list_cb list;
  } cb;
  void *userdata;
  int status;
  kotte_session *session;
  kotte_session_list *list;
  uint64_t count;
  /* purge */
  uint64_t total;
  int not_found_if_zero; /* delete: 0 removed means KOTTE_ENOTFOUND */
  char *detail;          /* kotte_error_detail() for the callback, or NULL */
};

struct kotte_session_store {
  uv_loop_t *loop;
  kotte_runtime *rt;
  kotte_session_backend *be;
  kotte_session_options opts;
  kotte__defer_queue defer;
  unsigned int pending;
  int closing;
  /* for kotte_session_store_free() on a runtime store: signalled when gone */
  kotte__waiter *free_waiter; /* set while a thread waits in *_free() */
};

static void finalize(kotte_session_store *st);

static kotte_time now_of(const kotte_session_store *st) {
  return st->opts.clock ? st->opts.clock(st->opts.clock_ctx) : kotte_clock_now();
}

/* ---- delivery ----------------------------------------------------------- */

static void deliver(op *o) {
  kotte_session_store *st = o->store;
  if (st->closing && o->status == 0) o->status = KOTTE_ECANCELED;
  if (o->status != 0) {
    kotte_session_free(o->session);
    o->session = NULL;
    kotte_session_list_free(o->list);
    o->list = NULL;
    o->count = 0;
  }
  /* during the callback (and until the next libkotte call on this
   * thread), kotte_error_detail() describes this operation */
  kotte__detail_set(o->status, o->detail);
  switch (o->kind) {
  case OP_SESSION: o->cb.session(o->status, o->session, o->userdata); break;
  case OP_STATUS: o->cb.status(o->status, o->userdata); break;
  case OP_COUNT: o->cb.count(o->status, o->count, o->userdata); break;
  case OP_LIST: o->cb.list(o->status, o->list, o->userdata); break;
  }
  kotte__free(o->detail);
  kotte__free(o);
  /* The callback may have freed the store: `closing` is then set and this
   * was possibly the last pending operation. */
  if (--st->pending == 0 && st->closing) finalize(st);
}

static void run_deferred(kotte__deferred *d) {
  op *o = (op *)((char *)d - offsetof(op, link));
  o->then(o);
}

/* Runs @p run(o) on a later loop turn. */
static void enqueue(op *o, void (*run)(op *)) {
  o->then = run;
  kotte__defer_push(&o->store->defer, &o->link, run_deferred);
}

/* Called when the backend is done with an operation. */
static void complete(op *o) {
  /* the explanation the backend (or the store) just wrote, kept with the
   * operation: other operations may fail before its callback runs */
  kotte__free(o->detail);
  o->detail = o->status != 0 ? kotte__detail_take(o->status) : NULL;
  if (o->starting) enqueue(o, deliver);
  else deliver(o);
}

static op *op_new(kotte_session_store *st, op_kind kind, void *cb, void *userdata) {
  op *o = kotte__calloc(1, sizeof *o);
  if (o == NULL) return NULL;
  o->store = st;
  o->kind = kind;
  o->userdata = userdata;
  o->starting = 1;
  switch (kind) {
  case OP_SESSION: o->cb.session = (kotte_session_cb)cb; break;
  case OP_STATUS: o->cb.status = (kotte_session_status_cb)cb; break;
  case OP_COUNT: o->cb.count = (kotte_session_count_cb)cb; break;
  case OP_LIST: o->cb.list = (kotte_session_list_cb)cb; break;
  }
  return o;
}

/* Common end of every start function: the backend returned @p rc. */
static int started(op *o, int rc) {
  if (rc != 0) {
    kotte__free(o);
    return rc;
  }
  o->store->pending++;
  o->starting = 0;
  return 0;
}

/* ---- backend callbacks -------------------------------------------------- */

/* A user's copy of @p rec, with sealed secrets opened. */
static int session_of(const kotte_session_store *st, const kotte_session_record *rec,
                      kotte_session **out) {
  char *revealed = NULL;
  size_t len = 0;
  int rc = kotte__session_reveal(st->opts.keyring, rec->data, rec->data_len, &revealed, &len);
  if (rc != 0) return rc;
  kotte_session_record r = *rec;
  if (revealed) {
    r.data = revealed;
    r.data_len = len;
  }
  *out = kotte__session_from_record(&r);
  if (revealed) {
    sodium_memzero(revealed, len);
    kotte__free(revealed);
  }
  return *out ? 0 : KOTTE_ENOMEM;
}

static void on_record(int status, const kotte_session_record *rec, void *ctx) {
  op *o = ctx;
  o->status = status;
  if (status == 0 && o->kind == OP_SESSION) o->status = session_of(o->store, rec, &o->session);
  complete(o);
}

static void on_count(int status, uint64_t count, void *ctx) {
  op *o = ctx;
  o->status = status;
  o->count = count;
  if (status == 0 && o->not_found_if_zero && count == 0) o->status = KOTTE_ENOTFOUND;
  complete(o);
}

static void on_list(int status, const kotte_session_record *recs, size_t n, void *ctx) {
  op *o = ctx;
  o->status = status;
  if (status == 0) {
    o->status = kotte__session_list_from_records(recs, n, &o->list);
    for (size_t i = 0; o->status == 0 && i < n; i++) {
      kotte_session *s;
      if (strstr(o->list->items[i]->data, "\"$sealed\"") == NULL) continue;
      o->status = session_of(o->store, &recs[i], &s);
      if (o->status == 0) {
        kotte_session_free(o->list->items[i]);
        o->list->items[i] = s;
      }
    }
  }
  complete(o);
}

/* ---- lifecycle ---------------------------------------------------------- */

static int check_options(const kotte_session_options *opts) {
  if (opts->version < 1 || opts->version > KOTTE_SESSION_OPTIONS_VERSION)
    return kotte__fail(KOTTE_EVERSION, "kotte_session_options.version %u is not supported",
                       opts->version);
  if (opts->idle_timeout_s <= 0 || opts->max_age_s <= 0 || opts->max_data_size == 0 ||
      opts->purge_batch == 0 || opts->idle_timeout_s > INT64_MAX / 2000000 ||
      opts->max_age_s > INT64_MAX / 2000000)
    return kotte__fail(KOTTE_EINVAL, "session options: timeouts, size limit and purge batch "
                                     "must be positive");
  if (opts->version >= 3 && (opts->touch_interval_s < KOTTE_SESSION_TOUCH_DEFAULT ||
                             opts->touch_interval_s > opts->idle_timeout_s))
    return kotte__fail(KOTTE_EINVAL, "session options: touch_interval_s must be -1 (default) "
                                     "or between 0 and idle_timeout_s");
  return 0;
}

int kotte_session_store_new(kotte_session_store **out, uv_loop_t *loop,
                            kotte_session_backend *be, const kotte_session_options *opts) {
  kotte__clear_detail();
  kotte_session_options defaults = KOTTE_SESSION_OPTIONS_INIT;
  if (out == NULL) return KOTTE_EINVAL;
  *out = NULL;
  if (loop == NULL || be == NULL) return KOTTE_EINVAL;
  if (opts == NULL) opts = &defaults;
  int rc = check_options(opts);
  if (rc != 0) return rc;
  if (be->version < 1 || be->version > KOTTE_SESSION_BACKEND_VERSION)
    return kotte__fail(KOTTE_EVERSION, "session backend version %u is not supported",
                       be->version);
  if (!be->put || !be->get || !be->update || !be->remove || !be->rename || !be->free)
    return kotte__fail(KOTTE_EINVAL, "session backend lacks a required method");
  if (kotte__init() != 0) return KOTTE_EINTERNAL;
  kotte_session_store *st = kotte__calloc(1, sizeof *st);
  if (st == NULL) return KOTTE_ENOMEM;
  if (kotte__defer_init(&st->defer, loop) != 0) {
    kotte__free(st);
    return KOTTE_EINTERNAL;
  }
  st->defer.async.data = st;
  st->loop = loop;
  st->be = be;
  /* Copy only the fields the caller's version has. */
  memset(&st->opts, 0, sizeof st->opts);
  memcpy(&st->opts, opts, opts->version == 1   ? offsetof(kotte_session_options, keyring)
                         : opts->version == 2 ? offsetof(kotte_session_options, touch_interval_s)
                                              : sizeof st->opts);
  if (opts->version < 3) st->opts.touch_interval_s = KOTTE_SESSION_TOUCH_DEFAULT;
  st->opts.version = KOTTE_SESSION_OPTIONS_VERSION;
  if (st->opts.keyring) kotte__keyring_ref(st->opts.keyring);
  *out = st;
  return 0;
}

static void on_closed(uv_handle_t *h) {
  kotte_session_store *st = h->data;
  kotte__waiter *waiter = st->free_waiter;
  kotte__free(st);
  kotte__waiter_signal(waiter);
}

static void finalize(kotte_session_store *st) {
  kotte_session_backend *be = st->be;
  st->be = NULL;
  if (be) be->free(be);
  kotte_keyring_free(st->opts.keyring);
  st->opts.keyring = NULL;
  kotte__defer_close(&st->defer, on_closed);
}

static void free_on_loop(kotte_session_store *st) {
  if (st->closing) return;
  st->closing = 1;
  if (st->pending == 0) finalize(st);
}

typedef struct rt_free_call {
  kotte_session_store *st;
} rt_free_call;

static void free_posted(void *arg) { free_on_loop(arg); }

void kotte_session_store_free(kotte_session_store *st) {
  if (st == NULL) return;
  if (st->rt == NULL || kotte_runtime_on_loop_thread(st->rt)) {
    free_on_loop(st);
    return;
  }
  kotte__runtime_post_and_wait(st->rt, free_posted, st, &st->free_waiter, "kotte_session_store_free");
}

typedef struct open_call {
  kotte_session_store **out;
  kotte_runtime *rt;
  kotte_session_backend *be;
  const kotte_session_options *opts;
} open_call;

static int open_on_loop(void *arg) {
  open_call *c = arg;
  int rc = kotte_session_store_new(c->out, kotte_runtime_loop(c->rt), c->be, c->opts);
  if (rc == 0) (*c->out)->rt = c->rt;
  return rc;
}

int kotte_session_store_open(kotte_session_store **out, kotte_runtime *rt,
                             kotte_session_backend *be, const kotte_session_options *opts) {
  kotte__clear_detail();
  if (out == NULL || rt == NULL) return KOTTE_EINVAL;
  *out = NULL;
  /* a database without libkotte's schema, or an older one, is refused here
   * with its remedy, not at a user's first login */
  int rc = kotte__pg_schema_verify(kotte__session_backend_pg_pool(be));
  if (rc != 0) return rc;
  open_call c = { out, rt, be, opts };
  return kotte_runtime_run(rt, open_on_loop, &c);
}

const char *kotte_session_store_backend_name(const kotte_session_store *st) {
  return (st && st->be && st->be->name) ? st->be->name : "";
}

kotte_runtime *kotte__session_store_runtime(kotte_session_store *st) { return st->rt; }

/* ---- operations --------------------------------------------------------- */

#define CHECK_STORE(st, cb)                                                  \
  do {                                                                       \
    if ((st) == NULL || (cb) == NULL) return KOTTE_EINVAL;                   \
    if ((st)->closing) return KOTTE_ECLOSED;                                 \
  } while (0)

static int check_id(const char *id) {
  if (id == NULL) return KOTTE_EINVAL;
  return kotte_token_is_valid(id) ? 0 : KOTTE_EBADID;
}

static int check_user(const char *user_id) { return kotte__user_id_check(user_id); }

/* Session data must be text every backend can hold: UTF-8 (JSON text is
 * UTF-8, RFC 8259 section 8.1, and cJSON passes other bytes through).
 * Without this check the memory and json_file backends would keep what the
 * postgresql one answers with a database error, and a client could pass
 * that off as an outage. kotte__session_prepare() then refuses what cJSON
 * would cut short or jsonb refuses (raw control characters, \u0000). */
static int check_data(const char *text, const char *what) {
  if (text == NULL) return 0;
  if (!kotte__utf8_valid(text, strlen(text)))
    return kotte__fail(KOTTE_EBADJSON, "session %s is not valid UTF-8", what);
  return 0;
}

/* Builds a new record at `now` for create/set and calls backend put. */
static int put_new(kotte_session_store *st, op *o, const char *id, const char *user_id,
                   const char *data_json, int64_t ttl_s, int replace) {
  char *data;
  size_t len;
  int rc = check_data(data_json, "data");
  if (rc == 0)
    rc = kotte__session_prepare(st->opts.keyring, data_json, st->opts.max_data_size, &data, &len);
  if (rc != 0) return rc;
  kotte_time now = now_of(st);
  kotte_time idle = (ttl_s > 0 ? ttl_s : st->opts.idle_timeout_s) * 1000000;
  kotte_time max_exp = now + st->opts.max_age_s * 1000000;
  kotte_session_record rec = {
    .id = id, .user_id = user_id, .data = data, .data_len = len,
    .created_at = now, .last_activity = now,
    .expires_at = now + idle < max_exp ? now + idle : max_exp,
    .max_expires_at = max_exp, .idle_timeout = idle,
  };
  rc = st->be->put(st->be, &rec, replace, on_record, o);
  kotte__free(data);
  return rc;
}

int kotte_session_create(kotte_session_store *st, const char *user_id, const char *data_json,
                         kotte_session_cb cb, void *userdata) {
  kotte__clear_detail();
  CHECK_STORE(st, cb);
  int rc = check_user(user_id);
  if (rc != 0) return rc;
  char id[KOTTE_SESSION_ID_LEN + 1];
  if ((rc = kotte_token_generate(id)) != 0) return rc;
  op *o = op_new(st, OP_SESSION, (void *)cb, userdata);
  if (o == NULL) return KOTTE_ENOMEM;
  return started(o, put_new(st, o, id, user_id, data_json, 0, 0));
}

int kotte_session_set(kotte_session_store *st, const char *id, const char *user_id,
                      const char *data_json, int64_t ttl_s, kotte_session_cb cb,
                      void *userdata) {
  kotte__clear_detail();
  CHECK_STORE(st, cb);
  int rc = check_id(id);
  if (rc == 0) rc = check_user(user_id);
  if (rc == 0 && (ttl_s < 0 || ttl_s > INT64_MAX / 2000000)) rc = KOTTE_EINVAL;
  if (rc != 0) return rc;
  op *o = op_new(st, OP_SESSION, (void *)cb, userdata);
  if (o == NULL) return KOTTE_ENOMEM;
  return started(o, put_new(st, o, id, user_id, data_json, ttl_s, 1));
}

static int get_common(kotte_session_store *st, const char *id, op_kind kind, void *cb,
                      void *userdata) {
  int rc = check_id(id);
  if (rc != 0) return rc;
  op *o = op_new(st, kind, cb, userdata);
  if (o == NULL) return KOTTE_ENOMEM;
  kotte_session_backend *be = st->be;
  kotte_time touch = st->opts.touch_interval_s < 0 ? -1 : st->opts.touch_interval_s * 1000000;
  if (be->version >= 3 && be->get_touch)
    return started(o, be->get_touch(be, id, now_of(st), touch, on_record, o));
  return started(o, be->get(be, id, now_of(st), 1, on_record, o));
}

int kotte_session_get(kotte_session_store *st, const char *id, kotte_session_cb cb,
                      void *userdata) {
  kotte__clear_detail();
  CHECK_STORE(st, cb);
  return get_common(st, id, OP_SESSION, (void *)cb, userdata);
}

int kotte_session_touch(kotte_session_store *st, const char *id, kotte_session_status_cb cb,
                        void *userdata) {
  kotte__clear_detail();
  CHECK_STORE(st, cb);
  return get_common(st, id, OP_STATUS, (void *)cb, userdata);
}

int kotte_session_update(kotte_session_store *st, const char *id, const char *patch_json,
                         kotte_session_cb cb, void *userdata) {
  kotte__clear_detail();
  CHECK_STORE(st, cb);
  int rc = check_id(id);
  if (rc != 0) return rc;
  if (patch_json == NULL) return KOTTE_EINVAL;
  char *patch;
  size_t len;
  if ((rc = check_data(patch_json, "patch")) != 0) return rc;
  if ((rc = kotte__session_prepare(st->opts.keyring, patch_json, st->opts.max_data_size, &patch,
                                   &len)) != 0)
    return rc;
  op *o = op_new(st, OP_SESSION, (void *)cb, userdata);
  if (o == NULL) {
    kotte__free(patch);
    return KOTTE_ENOMEM;
  }
  rc = st->be->update(st->be, id, now_of(st), patch, len, st->opts.max_data_size, on_record, o);
  kotte__free(patch);
  return started(o, rc);
}

int kotte_session_delete(kotte_session_store *st, const char *id, kotte_session_status_cb cb,
                         void *userdata) {
  kotte__clear_detail();
  CHECK_STORE(st, cb);
  int rc = check_id(id);
  if (rc != 0) return rc;
  op *o = op_new(st, OP_STATUS, (void *)cb, userdata);
  if (o == NULL) return KOTTE_ENOMEM;
  o->not_found_if_zero = 1;
  return started(o, st->be->remove(st->be, id, on_count, o));
}

int kotte_session_regenerate(kotte_session_store *st, const char *id, kotte_session_cb cb,
                             void *userdata) {
  kotte__clear_detail();
  CHECK_STORE(st, cb);
  int rc = check_id(id);
  if (rc != 0) return rc;
  char new_id[KOTTE_SESSION_ID_LEN + 1];
  if ((rc = kotte_token_generate(new_id)) != 0) return rc;
  op *o = op_new(st, OP_SESSION, (void *)cb, userdata);
  if (o == NULL) return KOTTE_ENOMEM;
  return started(o, st->be->rename(st->be, id, new_id, now_of(st), on_record, o));
}

int kotte_session_list_user(kotte_session_store *st, const char *user_id,
                            kotte_session_list_cb cb, void *userdata) {
  kotte__clear_detail();
  CHECK_STORE(st, cb);
  int rc = check_user(user_id);
  if (rc != 0) return rc;
  if (st->be->list_user == NULL) return KOTTE_ENOTSUP;
  op *o = op_new(st, OP_LIST, (void *)cb, userdata);
  if (o == NULL) return KOTTE_ENOMEM;
  return started(o, st->be->list_user(st->be, user_id, now_of(st), on_list, o));
}

int kotte_session_delete_user(kotte_session_store *st, const char *user_id,
                              kotte_session_count_cb cb, void *userdata) {
  kotte__clear_detail();
  CHECK_STORE(st, cb);
  int rc = check_user(user_id);
  if (rc != 0) return rc;
  if (st->be->remove_user == NULL) return KOTTE_ENOTSUP;
  op *o = op_new(st, OP_COUNT, (void *)cb, userdata);
  if (o == NULL) return KOTTE_ENOMEM;
  return started(o, st->be->remove_user(st->be, user_id, on_count, o));
}

/* Purge: one backend round per loop turn until a round comes back short. */
static void purge_round(op *o);

static void on_purge_count(int status, uint64_t count, void *ctx) {
  op *o = ctx;
  kotte_session_store *st = o->store;
  o->total += count;
  if (status != 0 || count < st->opts.purge_batch || st->closing) {
    o->status = status;
    o->count = o->total;
    complete(o);
    return;
  }
  enqueue(o, purge_round); /* next round on the next loop turn */
}

static void purge_round(op *o) {
  kotte_session_store *st = o->store;
  int rc = st->be->purge(st->be, now_of(st), st->opts.purge_batch, on_purge_count, o);
  if (rc != 0) {
    o->status = rc;
    o->count = o->total;
    o->detail = kotte__detail_take(rc);
    deliver(o);
  }
}

static void on_backend_status(int status, void *ctx) {
  op *o = ctx;
  o->status = status;
  complete(o);
}

/* The fallback check: an id nobody holds is not found by a backend that answers. */
static void on_probe(int status, const kotte_session_record *rec, void *ctx) {
  (void)rec;
  op *o = ctx;
  o->status = status == KOTTE_ENOTFOUND ? 0 : status;
  complete(o);
}

int kotte_session_store_check(kotte_session_store *st, kotte_session_status_cb cb,
                              void *userdata) {
  CHECK_STORE(st, cb);
  op *o = op_new(st, OP_STATUS, (void *)cb, userdata);
  if (o == NULL) return KOTTE_ENOMEM;
  if (st->be->version >= 2 && st->be->check)
    return started(o, st->be->check(st->be, on_backend_status, o));
  char probe[KOTTE_SESSION_ID_LEN + 1];
  int rc = kotte_token_generate(probe);
  if (rc != 0) {
    kotte__free(o);
    return rc;
  }
  return started(o, st->be->get(st->be, probe, now_of(st), 0, on_probe, o));
}

int kotte_session_purge_expired(kotte_session_store *st, kotte_session_count_cb cb,
                                void *userdata) {
  kotte__clear_detail();
  CHECK_STORE(st, cb);
  if (st->be->purge == NULL) return KOTTE_ENOTSUP;
  op *o = op_new(st, OP_COUNT, (void *)cb, userdata);
  if (o == NULL) return KOTTE_ENOMEM;
  return started(o, st->be->purge(st->be, now_of(st), st->opts.purge_batch, on_purge_count, o));
}
