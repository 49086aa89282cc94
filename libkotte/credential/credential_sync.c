/* The blocking facade of the credential store: each call copies its
 * arguments (secrets into memory that is wiped when the call is done),
 * starts the asynchronous operation on the runtime's loop and waits for its
 * callback or the timeout. */
#include <string.h>

#include "credential/credential_store_internal.h"
#include "runtime/runtime_internal.h"

typedef enum sync_op { S_SAVE, S_GET, S_LIST, S_UPDATE, S_DELETE, S_REWRAP, S_USAGE, S_CHECK } sync_op;

typedef struct cred_call {
  kotte__sync base; /* first */
  kotte_cred_store *store;
  sync_op op;
  char *user_id, *id;
  kotte_cred_input in; /* strings below are the call's own copies */
  char *name, *host, *database, *sslmode, *username, *password, *in_id;
} cred_call;

static void on_cred(int status, kotte_cred *c, void *ud) { kotte__sync_complete(ud, status, c, 0); }
static void on_status(int status, void *ud) { kotte__sync_complete(ud, status, NULL, 0); }
static void on_list(int status, kotte_cred_list *l, void *ud) {
  kotte__sync_complete(ud, status, l, 0);
}
static void on_report(int status, kotte_cred_report *r, void *ud) {
  kotte__sync_complete(ud, status, r, 0);
}

static int start(kotte__sync *base) {
  cred_call *c = (cred_call *)base;
  kotte_cred_store *st = c->store;
  switch (c->op) {
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

static void destroy(kotte__sync *base) {
  cred_call *c = (cred_call *)base;
  kotte__free(c->user_id);
  kotte__free(c->id);
  kotte__free(c->name);
  kotte__free(c->host);
  kotte__free(c->database);
  kotte__free(c->sslmode);
  kotte__free(c->in_id);
  kotte__cred_secret_dup_free(c->username);
  kotte__cred_secret_dup_free(c->password);
}

static void free_cred(void *p) { kotte_cred_free(p); }
static void free_list(void *p) { kotte_cred_list_free(p); }
static void free_report(void *p) { kotte_cred_report_free(p); }

/* Copies a possibly-NULL string; *ok is cleared when out of memory. */
static char *dup_arg(const char *s, int *ok) {
  if (s == NULL) return NULL;
  char *d = kotte__strdup(s);
  if (d == NULL) *ok = 0;
  return d;
}

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
  if (rt == NULL)
    return kotte__fail(KOTTE_EINVAL, "blocking call on a store not opened on a runtime");
  cred_call *c = kotte__sync_new(sizeof *c, start);
  if (c == NULL) return KOTTE_ENOMEM;
  int ok = 1;
  c->store = st;
  c->op = op;
  c->user_id = dup_arg(user_id, &ok);
  c->id = dup_arg(id, &ok);
  if (in) {
    c->in = *in;
    c->in.name = c->name = dup_arg(in->name, &ok);
    c->in.host = c->host = dup_arg(in->host, &ok);
    c->in.database = c->database = dup_arg(in->database, &ok);
    c->in.sslmode = c->sslmode = dup_arg(in->sslmode, &ok);
    c->in.username = c->username = dup_arg(in->username, &ok);
    c->in.password = c->password = dup_arg(in->password, &ok);
    c->in.id = c->in_id = dup_arg(in->id, &ok);
  }
  c->base.destroy = destroy;
  c->base.result_free = op == S_LIST ? free_list
                        : (op == S_REWRAP || op == S_USAGE) ? free_report
                                                            : free_cred;
  if (!ok) {
    destroy(&c->base);
    uv_cond_destroy(&c->base.cv);
    uv_mutex_destroy(&c->base.mu);
    kotte__free(c);
    return KOTTE_ENOMEM;
  }
  return kotte__sync_run(rt, &c->base, timeout_ms, result, NULL);
}

#define OUT_INIT(out) do { if (out) *(out) = NULL; } while (0)

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
