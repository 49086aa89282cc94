/* The blocking facade of the query registry, on the shared one of
 * runtime/runtime_internal.h (kotte__sync_call_new / _copy / _run): each
 * call copies its arguments, starts the asynchronous operation on the
 * runtime's loop and waits for its callback or the timeout. */
#include "query/query_internal.h"
#include "runtime/runtime_internal.h"

typedef enum sync_op { Q_REGISTER, Q_SET_PID, Q_UNREGISTER, Q_GET, Q_LIST, Q_CANCEL, Q_PURGE } sync_op;

typedef struct query_call {
  kotte__sync base; /* first; base.target is the registry, base.op a sync_op */
  char *a, *b;      /* the call's copies of its string arguments */
  int pid;
} query_call;

KOTTE__SYNC_ON_RESULT(on_info, kotte_query_info)
KOTTE__SYNC_ON_RESULT(on_list, kotte_query_list)
static void on_count(int status, uint64_t n, void *ud) { kotte__sync_complete(ud, status, NULL, n); }
#define on_status kotte__sync_on_status

static int start(kotte__sync *base) {
  query_call *c = (query_call *)base;
  kotte_query_registry *r = base->target;
  switch ((sync_op)base->op) {
  case Q_REGISTER: return kotte_query_register(r, c->a, c->b, c->pid, on_status, c);
  case Q_SET_PID: return kotte_query_set_backend_pid(r, c->a, c->pid, on_status, c);
  case Q_UNREGISTER: return kotte_query_unregister(r, c->a, on_status, c);
  case Q_GET: return kotte_query_get(r, c->a, on_info, c);
  case Q_LIST: return kotte_query_list_user(r, c->a, on_list, c);
  case Q_CANCEL: return kotte_query_cancel(r, c->a, c->b, on_status, c);
  case Q_PURGE: return kotte_query_purge(r, on_count, c);
  }
  return KOTTE_EINTERNAL;
}

static void free_info(void *p) { kotte_query_info_free(p); }
static void free_list(void *p) { kotte_query_list_free(p); }

static int call(kotte_query_registry *r, sync_op op, const char *a, const char *b, int pid,
                void **result, uint64_t *count, int timeout_ms) {
  kotte__clear_detail();
  if (r == NULL) return KOTTE_EINVAL;
  kotte_runtime *rt = kotte__query_registry_runtime(r);
  int rc;
  query_call *c = kotte__sync_call_new(rt, sizeof *c, start, r, op, &rc);
  if (c == NULL) return rc;
  c->a = kotte__sync_copy(&c->base, a, 0);
  c->b = kotte__sync_copy(&c->base, b, 0);
  c->pid = pid;
  c->base.result_free = op == Q_LIST ? free_list : free_info;
  return kotte__sync_call_run(rt, &c->base, timeout_ms, result, count);
}

int kotte_query_register_sync(kotte_query_registry *r, const char *rid, const char *user,
                              int pid, int timeout_ms) {
  return call(r, Q_REGISTER, rid, user, pid, NULL, NULL, timeout_ms);
}

int kotte_query_set_backend_pid_sync(kotte_query_registry *r, const char *rid, int pid,
                                     int timeout_ms) {
  return call(r, Q_SET_PID, rid, NULL, pid, NULL, NULL, timeout_ms);
}

int kotte_query_unregister_sync(kotte_query_registry *r, const char *rid, int timeout_ms) {
  return call(r, Q_UNREGISTER, rid, NULL, 0, NULL, NULL, timeout_ms);
}

int kotte_query_get_sync(kotte_query_registry *r, const char *rid, kotte_query_info **out,
                         int timeout_ms) {
  KOTTE__OUT_INIT(out);
  return call(r, Q_GET, rid, NULL, 0, (void **)out, NULL, timeout_ms);
}

int kotte_query_list_user_sync(kotte_query_registry *r, const char *user, kotte_query_list **out,
                               int timeout_ms) {
  KOTTE__OUT_INIT(out);
  return call(r, Q_LIST, user, NULL, 0, (void **)out, NULL, timeout_ms);
}

int kotte_query_cancel_sync(kotte_query_registry *r, const char *rid, const char *user,
                            int timeout_ms) {
  /* the default covers the wait for another replica's answer too */
  if (timeout_ms < 0 && r && kotte__query_registry_runtime(r))
    timeout_ms = (int)kotte__query_registry_cancel_timeout(r) +
                 kotte_runtime_default_timeout(kotte__query_registry_runtime(r));
  return call(r, Q_CANCEL, rid, user, 0, NULL, NULL, timeout_ms);
}

int kotte_query_purge_sync(kotte_query_registry *r, uint64_t *count, int timeout_ms) {
  if (count) *count = 0;
  return call(r, Q_PURGE, NULL, NULL, 0, NULL, count, timeout_ms);
}
