/* The session store: semantics (ids, expiry, limits) over any backend.
 * Delivery (one callback per operation, on the loop thread, never before
 * the starting call returned) and the lifecycle are core/store.h's. */
#include <sodium.h>
#include <stddef.h>
#include <string.h>

#include "core/json.h"
#include "core/store.h"
#include "keyring/keyring_internal.h"
#include "pg/pg_diag.h"
#include "session/session_internal.h"

typedef struct op {
  kotte__op base; /* first: its result is a kotte_session, a list or a count */
  /* purge */
  uint64_t total;
  int not_found_if_zero; /* delete: 0 removed means KOTTE_ENOTFOUND */
} op;

struct kotte_session_store {
  kotte__store base; /* first */
  kotte_session_backend *be;
  kotte_session_options opts;
};

_Static_assert(offsetof(op, base) == 0 && offsetof(kotte_session_store, base) == 0,
               "core/store.h: the shared part comes first");

static kotte_time now_of(const kotte_session_store *st) {
  return kotte__store_clock(st->opts.clock, st->opts.clock_ctx);
}

/* ---- operations and the store type (core/store.h) ------------------------ */

KOTTE__OP_CALL_RESULT(call_session, kotte_session_cb)
KOTTE__OP_CALL_RESULT(call_list, kotte_session_list_cb)
KOTTE__OP_CALL_COUNT(call_count, kotte_session_count_cb)
#define call_status kotte__op_call_status

static void free_session(void *s) { kotte_session_free(s); }
static void free_list(void *l) { kotte_session_list_free(l); }

static void op_free(kotte__op *base) { kotte__free(base); }

static void store_release(kotte__store *base) {
  kotte_session_store *st = (kotte_session_store *)base;
  st->be->free(st->be); /* once, with no operation in flight */
  kotte_keyring_free(st->opts.keyring);
}

static const kotte__store_type session_store_type = { op_free, store_release };

/* The store an operation belongs to. */
#define STORE(o) ((kotte_session_store *)(o)->base.store)

static op *op_new(kotte_session_store *st, void (*call)(kotte__op *), kotte__op_cb cb,
                  void *userdata) {
  return kotte__op_new(&st->base, sizeof(op), call, cb, userdata);
}

static int started(op *o, int rc) { return kotte__op_started(&o->base, rc); }
static void complete(op *o, int status) { kotte__op_complete(&o->base, status); }

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
  if (status == 0 && o->base.call == call_session) {
    kotte_session *s = NULL;
    status = session_of(STORE(o), rec, &s);
    kotte__op_set_result(&o->base, s, free_session);
  }
  complete(o, status);
}

static void on_count(int status, uint64_t count, void *ctx) {
  op *o = ctx;
  o->base.count = count;
  if (status == 0 && o->not_found_if_zero && count == 0) status = KOTTE_ENOTFOUND;
  complete(o, status);
}

static void on_list(int status, const kotte_session_record *recs, size_t n, void *ctx) {
  op *o = ctx;
  if (status == 0) {
    kotte_session_list *l = NULL;
    status = kotte__session_list_from_records(recs, n, &l);
    kotte__op_set_result(&o->base, l, free_list);
    for (size_t i = 0; status == 0 && i < n; i++) {
      kotte_session *s;
      if (strstr(l->items[i]->data, "\"$sealed\"") == NULL) continue;
      status = session_of(STORE(o), &recs[i], &s);
      if (status == 0) {
        kotte_session_free(l->items[i]);
        l->items[i] = s;
      }
    }
  }
  complete(o, status);
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

/* kotte_session_store_new() on @p loop, or _open() on @p rt's loop. */
static int store_make(kotte_session_store **out, uv_loop_t *loop, kotte_runtime *rt,
                      kotte_session_backend *be, const kotte_session_options *opts) {
  kotte_session_options defaults = KOTTE_SESSION_OPTIONS_INIT;
  if (opts == NULL) opts = &defaults;
  int rc = check_options(opts);
  if (rc != 0) return rc;
  int has_required = be->put && be->get && be->update && be->remove && be->rename && be->free;
  kotte_session_store *st = kotte__store_new(sizeof *st, &session_store_type, "session",
                                             be->version, KOTTE_SESSION_BACKEND_VERSION,
                                             has_required, &rc);
  if (st == NULL) return rc;
  if ((rc = kotte__store_attach(&st->base, loop, rt)) != 0) {
    kotte__free(st);
    return rc;
  }
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

int kotte_session_store_new(kotte_session_store **out, uv_loop_t *loop,
                            kotte_session_backend *be, const kotte_session_options *opts) {
  kotte__clear_detail();
  if (out == NULL) return KOTTE_EINVAL;
  *out = NULL;
  if (loop == NULL || be == NULL) return KOTTE_EINVAL;
  return store_make(out, loop, NULL, be, opts);
}

int kotte_session_store_open(kotte_session_store **out, kotte_runtime *rt,
                             kotte_session_backend *be, const kotte_session_options *opts) {
  kotte__clear_detail();
  if (out == NULL || rt == NULL) return KOTTE_EINVAL;
  *out = NULL;
  if (be == NULL) return KOTTE_EINVAL;
  /* a database without libkotte's schema, or an older one, is refused here
   * with its remedy, not at a user's first login */
  int rc = kotte__pg_schema_verify(kotte__session_backend_pg_pool(be));
  return rc != 0 ? rc : store_make(out, NULL, rt, be, opts);
}

void kotte_session_store_free(kotte_session_store *st) {
  if (st) kotte__store_free(&st->base, "kotte_session_store_free");
}

const char *kotte_session_store_backend_name(const kotte_session_store *st) {
  return (st && st->be && st->be->name) ? st->be->name : "";
}

kotte_runtime *kotte__session_store_runtime(kotte_session_store *st) { return st->base.rt; }

/* ---- operations --------------------------------------------------------- */

#define CHECK_STORE KOTTE__STORE_CHECK

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
  op *o = op_new(st, call_session, (kotte__op_cb)cb, userdata);
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
  op *o = op_new(st, call_session, (kotte__op_cb)cb, userdata);
  if (o == NULL) return KOTTE_ENOMEM;
  return started(o, put_new(st, o, id, user_id, data_json, ttl_s, 1));
}

static int get_common(kotte_session_store *st, const char *id, void (*call)(kotte__op *),
                      kotte__op_cb cb, void *userdata) {
  int rc = check_id(id);
  if (rc != 0) return rc;
  op *o = op_new(st, call, cb, userdata);
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
  return get_common(st, id, call_session, (kotte__op_cb)cb, userdata);
}

int kotte_session_touch(kotte_session_store *st, const char *id, kotte_session_status_cb cb,
                        void *userdata) {
  kotte__clear_detail();
  CHECK_STORE(st, cb);
  return get_common(st, id, call_status, (kotte__op_cb)cb, userdata);
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
  op *o = op_new(st, call_session, (kotte__op_cb)cb, userdata);
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
  op *o = op_new(st, call_status, (kotte__op_cb)cb, userdata);
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
  op *o = op_new(st, call_session, (kotte__op_cb)cb, userdata);
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
  op *o = op_new(st, call_list, (kotte__op_cb)cb, userdata);
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
  op *o = op_new(st, call_count, (kotte__op_cb)cb, userdata);
  if (o == NULL) return KOTTE_ENOMEM;
  return started(o, st->be->remove_user(st->be, user_id, on_count, o));
}

/* Purge: one backend round per loop turn until a round comes back short. */
static void purge_round(kotte__op *base);

static void on_purge_count(int status, uint64_t count, void *ctx) {
  op *o = ctx;
  kotte_session_store *st = STORE(o);
  o->total += count;
  if (status != 0 || count < st->opts.purge_batch || st->base.closing) {
    o->base.count = o->total;
    complete(o, status);
    return;
  }
  kotte__op_defer(&o->base, purge_round); /* next round on the next loop turn */
}

static void purge_round(kotte__op *base) {
  op *o = (op *)base;
  kotte_session_store *st = STORE(o);
  int rc = st->be->purge(st->be, now_of(st), st->opts.purge_batch, on_purge_count, o);
  if (rc != 0) {
    o->base.count = o->total;
    complete(o, rc); /* a later loop turn already: delivered now */
  }
}

static void on_backend_status(int status, void *ctx) { complete(ctx, status); }

/* The fallback check: an id nobody holds is not found by a backend that answers. */
static void on_probe(int status, const kotte_session_record *rec, void *ctx) {
  (void)rec;
  complete(ctx, status == KOTTE_ENOTFOUND ? 0 : status);
}

int kotte_session_store_check(kotte_session_store *st, kotte_session_status_cb cb,
                              void *userdata) {
  CHECK_STORE(st, cb);
  op *o = op_new(st, call_status, (kotte__op_cb)cb, userdata);
  if (o == NULL) return KOTTE_ENOMEM;
  if (st->be->version >= 2 && st->be->check)
    return started(o, st->be->check(st->be, on_backend_status, o));
  char probe[KOTTE_SESSION_ID_LEN + 1];
  int rc = kotte_token_generate(probe);
  if (rc == 0) rc = st->be->get(st->be, probe, now_of(st), 0, on_probe, o);
  return started(o, rc);
}

int kotte_session_purge_expired(kotte_session_store *st, kotte_session_count_cb cb,
                                void *userdata) {
  kotte__clear_detail();
  CHECK_STORE(st, cb);
  if (st->be->purge == NULL) return KOTTE_ENOTSUP;
  op *o = op_new(st, call_count, (kotte__op_cb)cb, userdata);
  if (o == NULL) return KOTTE_ENOMEM;
  return started(o, st->be->purge(st->be, now_of(st), st->opts.purge_batch, on_purge_count, o));
}
