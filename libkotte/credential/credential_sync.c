/* The blocking facade of the credential store: each call copies its
 * arguments (secrets into memory that is wiped when the call is done),
 * starts the asynchronous operation on the runtime's loop and waits for its
 * callback or the timeout. */
#include "credential/credential_store_internal.h"
#include "runtime/runtime_internal.h"

typedef enum sync_op { S_SAVE, S_GET, S_LIST, S_UPDATE, S_DELETE, S_REWRAP, S_USAGE, S_CHECK } sync_op;

typedef struct cred_call {
  kotte__sync base; /* first */
  char *user_id, *id;
  kotte_cred_input in; /* its strings are the call's copies (kotte__sync_copy) */
} cred_call;

KOTTE__SYNC_ON_RESULT(on_cred, kotte_cred)
KOTTE__SYNC_ON_RESULT(on_list, kotte_cred_list)
KOTTE__SYNC_ON_RESULT(on_report, kotte_cred_report)
#define on_status kotte__sync_on_status

static int start(kotte__sync *base) {
  cred_call *c = (cred_call *)base;
  kotte_cred_store *st = base->target;
  switch ((sync_op)base->op) {
  case S_SAVE: return kotte_cred_save(st, c->user_id, &c->in, on_cred, c);
  case S_GET: return kotte_cred_get(st, c->user_id, c->id, on_cred, c);
  case S_LIST: return kotte_cred_list_user(st, c->user_id, on_list, c);
  case S_UPDATE: return kotte_cred_update(st, c->user_id, c->id, &c->in, on_cred, c);
  case S_DELETE: return kotte_cred_delete(st, c->user_id, c->id, on_status, c);
  case S_REWRAP: return kotte_cred_rewrap(st, on_report, c);
  case S_USAGE: return kotte_cred_key_usage(st, on_report, c);
  case S_CHECK: return kotte_cred_store_check(st, on_status, c);
  }
  return KOTTE_EINTERNAL;
}

static void free_cred(void *p) { kotte_cred_free(p); }
static void free_list(void *p) { kotte_cred_list_free(p); }
static void free_report(void *p) { kotte_cred_report_free(p); }

static int call(kotte_cred_store *st, sync_op op, const char *user_id, const char *id,
                const kotte_cred_input *in, void **result, int timeout_ms) {
  if (st == NULL) return KOTTE_EINVAL;
  /* The store checks again on the loop thread; checking here as well puts
   * the detail of a refusal into this thread's kotte_error_detail(). */
  int rc = 0;
  if (user_id && (rc = kotte__user_id_check(user_id)) != 0) return rc;
  if (op == S_SAVE) rc = kotte__cred_input_check(in, KOTTE_CRED_ALL);
  if (op == S_UPDATE && in->fields != 0 && !(in->fields & ~KOTTE_CRED_ALL))
    rc = kotte__cred_input_check(in, in->fields);
  if (rc != 0) return rc;
  char canon[KOTTE_CRED_ID_LEN + 1];
  if (id && kotte__uuid_canonical(id, canon) != 0)
    return kotte__fail(KOTTE_ENOTFOUND, "no such connection (not a UUID)");
  kotte_runtime *rt = kotte__cred_store_runtime(st);
  cred_call *c = kotte__sync_call_new(rt, sizeof *c, start, st, op, &rc);
  if (c == NULL) return rc;
  c->user_id = kotte__sync_copy(&c->base, user_id, 0);
  c->id = kotte__sync_copy(&c->base, id, 0);
  if (in) {
    c->in = *in;
    c->in.name = kotte__sync_copy(&c->base, in->name, 0);
    c->in.host = kotte__sync_copy(&c->base, in->host, 0);
    c->in.database = kotte__sync_copy(&c->base, in->database, 0);
    c->in.sslmode = kotte__sync_copy(&c->base, in->sslmode, 0);
    c->in.username = kotte__sync_copy(&c->base, in->username, 1);
    c->in.password = kotte__sync_copy(&c->base, in->password, 1);
    c->in.id = kotte__sync_copy(&c->base, in->id, 0);
  }
  c->base.result_free = op == S_LIST ? free_list
                        : (op == S_REWRAP || op == S_USAGE) ? free_report
                                                            : free_cred;
  return kotte__sync_call_run(rt, &c->base, timeout_ms, result, NULL);
}

#define OUT_INIT KOTTE__OUT_INIT

int kotte_cred_save_sync(kotte_cred_store *st, const char *user_id, const kotte_cred_input *in,
                         kotte_cred **out, int timeout_ms) {
  kotte__clear_detail();
  OUT_INIT(out);
  if (user_id == NULL || in == NULL) return KOTTE_EINVAL;
  return call(st, S_SAVE, user_id, NULL, in, (void **)out, timeout_ms);
}

int kotte_cred_get_sync(kotte_cred_store *st, const char *user_id, const char *id,
                        kotte_cred **out, int timeout_ms) {
  kotte__clear_detail();
  OUT_INIT(out);
  if (user_id == NULL || id == NULL) return KOTTE_EINVAL;
  return call(st, S_GET, user_id, id, NULL, (void **)out, timeout_ms);
}

int kotte_cred_list_user_sync(kotte_cred_store *st, const char *user_id, kotte_cred_list **out,
                              int timeout_ms) {
  kotte__clear_detail();
  OUT_INIT(out);
  if (user_id == NULL) return KOTTE_EINVAL;
  return call(st, S_LIST, user_id, NULL, NULL, (void **)out, timeout_ms);
}

int kotte_cred_update_sync(kotte_cred_store *st, const char *user_id, const char *id,
                           const kotte_cred_input *in, kotte_cred **out, int timeout_ms) {
  kotte__clear_detail();
  OUT_INIT(out);
  if (user_id == NULL || id == NULL || in == NULL) return KOTTE_EINVAL;
  return call(st, S_UPDATE, user_id, id, in, (void **)out, timeout_ms);
}

int kotte_cred_delete_sync(kotte_cred_store *st, const char *user_id, const char *id,
                           int timeout_ms) {
  kotte__clear_detail();
  if (user_id == NULL || id == NULL) return KOTTE_EINVAL;
  return call(st, S_DELETE, user_id, id, NULL, NULL, timeout_ms);
}

int kotte_cred_rewrap_sync(kotte_cred_store *st, kotte_cred_report **out, int timeout_ms) {
  kotte__clear_detail();
  OUT_INIT(out);
  return call(st, S_REWRAP, NULL, NULL, NULL, (void **)out, timeout_ms);
}

int kotte_cred_store_check_sync(kotte_cred_store *st, int timeout_ms) {
  return call(st, S_CHECK, NULL, NULL, NULL, NULL, timeout_ms);
}

int kotte_cred_key_usage_sync(kotte_cred_store *st, kotte_cred_report **out, int timeout_ms) {
  kotte__clear_detail();
  OUT_INIT(out);
  return call(st, S_USAGE, NULL, NULL, NULL, (void **)out, timeout_ms);
}
