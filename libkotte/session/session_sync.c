/* The blocking facade of the session store: each call copies its
 * arguments, starts the asynchronous operation on the runtime's loop and
 * waits for its callback or the timeout. */
#include "runtime/runtime_internal.h"
#include "session/session_internal.h"

typedef enum sync_op {
  S_CREATE, S_GET, S_UPDATE, S_SET, S_DELETE, S_TOUCH, S_REGEN, S_LIST, S_DELUSER, S_PURGE,
  S_CHECK
} sync_op;

typedef struct session_call {
  kotte__sync base; /* first */
  char *a, *b, *c; /* the call's copies of its string arguments (kotte__sync_copy) */
  int64_t ttl_s;
} session_call;

KOTTE__SYNC_ON_RESULT(on_session, kotte_session)
KOTTE__SYNC_ON_RESULT(on_list, kotte_session_list)
#define on_status kotte__sync_on_status
static void on_count(int status, uint64_t n, void *ud) { kotte__sync_complete(ud, status, NULL, n); }

static int start(kotte__sync *base) {
  session_call *c = (session_call *)base;
  kotte_session_store *st = base->target;
  switch ((sync_op)base->op) {
  case S_CREATE: return kotte_session_create(st, c->a, c->b, on_session, c);
  case S_GET: return kotte_session_get(st, c->a, on_session, c);
  case S_UPDATE: return kotte_session_update(st, c->a, c->b, on_session, c);
  case S_SET: return kotte_session_set(st, c->a, c->b, c->c, c->ttl_s, on_session, c);
  case S_DELETE: return kotte_session_delete(st, c->a, on_status, c);
  case S_TOUCH: return kotte_session_touch(st, c->a, on_status, c);
  case S_REGEN: return kotte_session_regenerate(st, c->a, on_session, c);
  case S_LIST: return kotte_session_list_user(st, c->a, on_list, c);
  case S_DELUSER: return kotte_session_delete_user(st, c->a, on_count, c);
  case S_PURGE: return kotte_session_purge_expired(st, on_count, c);
  case S_CHECK: return kotte_session_store_check(st, on_status, c);
  }
  return KOTTE_EINTERNAL;
}

static void free_session(void *p) { kotte_session_free(p); }
static void free_list(void *p) { kotte_session_list_free(p); }

static int call(kotte_session_store *st, sync_op op, const char *a, const char *b, const char *c,
                int64_t ttl_s, void **result, uint64_t *count, int timeout_ms) {
  if (st == NULL) return KOTTE_EINVAL;
  kotte_runtime *rt = kotte__session_store_runtime(st);
  int rc;
  session_call *sc = kotte__sync_call_new(rt, sizeof *sc, start, st, op, &rc);
  if (sc == NULL) return rc;
  sc->a = kotte__sync_copy(&sc->base, a, 0);
  sc->b = kotte__sync_copy(&sc->base, b, 0);
  sc->c = kotte__sync_copy(&sc->base, c, 0);
  sc->ttl_s = ttl_s;
  sc->base.result_free = (op == S_LIST) ? free_list : free_session;
  return kotte__sync_call_run(rt, &sc->base, timeout_ms, result, count);
}

#define OUT_INIT KOTTE__OUT_INIT

int kotte_session_create_sync(kotte_session_store *st, const char *user_id,
                              const char *data_json, kotte_session **out, int timeout_ms) {
  kotte__clear_detail();
  OUT_INIT(out);
  if (user_id == NULL) return KOTTE_EINVAL;
  return call(st, S_CREATE, user_id, data_json, NULL, 0, (void **)out, NULL, timeout_ms);
}

int kotte_session_get_sync(kotte_session_store *st, const char *id, kotte_session **out,
                           int timeout_ms) {
  kotte__clear_detail();
  OUT_INIT(out);
  if (id == NULL) return KOTTE_EINVAL;
  return call(st, S_GET, id, NULL, NULL, 0, (void **)out, NULL, timeout_ms);
}

int kotte_session_update_sync(kotte_session_store *st, const char *id, const char *patch_json,
                              kotte_session **out, int timeout_ms) {
  kotte__clear_detail();
  OUT_INIT(out);
  if (id == NULL || patch_json == NULL) return KOTTE_EINVAL;
  return call(st, S_UPDATE, id, patch_json, NULL, 0, (void **)out, NULL, timeout_ms);
}

int kotte_session_set_sync(kotte_session_store *st, const char *id, const char *user_id,
                           const char *data_json, int64_t ttl_s, kotte_session **out,
                           int timeout_ms) {
  kotte__clear_detail();
  OUT_INIT(out);
  if (id == NULL || user_id == NULL) return KOTTE_EINVAL;
  return call(st, S_SET, id, user_id, data_json, ttl_s, (void **)out, NULL, timeout_ms);
}

int kotte_session_delete_sync(kotte_session_store *st, const char *id, int timeout_ms) {
  kotte__clear_detail();
  if (id == NULL) return KOTTE_EINVAL;
  return call(st, S_DELETE, id, NULL, NULL, 0, NULL, NULL, timeout_ms);
}

int kotte_session_store_check_sync(kotte_session_store *st, int timeout_ms) {
  return call(st, S_CHECK, NULL, NULL, NULL, 0, NULL, NULL, timeout_ms);
}

int kotte_session_touch_sync(kotte_session_store *st, const char *id, int timeout_ms) {
  kotte__clear_detail();
  if (id == NULL) return KOTTE_EINVAL;
  return call(st, S_TOUCH, id, NULL, NULL, 0, NULL, NULL, timeout_ms);
}

int kotte_session_regenerate_sync(kotte_session_store *st, const char *id, kotte_session **out,
                                  int timeout_ms) {
  kotte__clear_detail();
  OUT_INIT(out);
  if (id == NULL) return KOTTE_EINVAL;
  return call(st, S_REGEN, id, NULL, NULL, 0, (void **)out, NULL, timeout_ms);
}

int kotte_session_list_user_sync(kotte_session_store *st, const char *user_id,
                                 kotte_session_list **out, int timeout_ms) {
  kotte__clear_detail();
  OUT_INIT(out);
  if (user_id == NULL) return KOTTE_EINVAL;
  return call(st, S_LIST, user_id, NULL, NULL, 0, (void **)out, NULL, timeout_ms);
}

int kotte_session_delete_user_sync(kotte_session_store *st, const char *user_id,
                                   uint64_t *count, int timeout_ms) {
  kotte__clear_detail();
  if (count) *count = 0;
  if (user_id == NULL) return KOTTE_EINVAL;
  return call(st, S_DELUSER, user_id, NULL, NULL, 0, NULL, count, timeout_ms);
}

int kotte_session_purge_expired_sync(kotte_session_store *st, uint64_t *count, int timeout_ms) {
  kotte__clear_detail();
  if (count) *count = 0;
  return call(st, S_PURGE, NULL, NULL, NULL, 0, NULL, count, timeout_ms);
}
