/* The operation record, its delivery and the store lifecycle (store.h). */
#include "core/store.h"

#include <stddef.h>
#include <string.h>

/* ---- delivery ----------------------------------------------------------- */

static void finalize(kotte__store *s);

static void drop_result(kotte__op *o) {
  if (o->result && o->result_free) o->result_free(o->result);
  o->result = NULL;
}

static void deliver(kotte__op *o) {
  kotte__store *s = o->store;
  if (s->closing && o->status == 0) o->status = KOTTE_ECANCELED;
  if (o->status != 0) {
    drop_result(o);
    o->count = 0;
  }
  /* during the callback (and until the next libkotte call on this
   * thread), kotte_error_detail() describes this operation */
  kotte__detail_set(o->status, o->detail);
  o->call(o);
  o->result = NULL; /* the callee's now */
  kotte__free(o->detail);
  o->detail = NULL;
  s->type->op_free(o);
  /* The callback may have freed the store: `closing` is then set and this
   * was possibly the last pending operation. */
  if (--s->pending == 0 && s->closing) finalize(s);
}

static void run_deferred(kotte__deferred *d) {
  kotte__op *o = (kotte__op *)((char *)d - offsetof(kotte__op, link));
  o->then(o);
}

void kotte__op_defer(kotte__op *o, void (*run)(kotte__op *o)) {
  o->then = run;
  kotte__defer_push(&o->store->defer, &o->link, run_deferred);
}

void kotte__op_complete(kotte__op *o, int status) {
  o->status = status;
  /* the explanation the backend (or the store) just wrote, kept with the
   * operation: other operations may fail before its callback runs */
  kotte__free(o->detail);
  o->detail = status != 0 ? kotte__detail_take(status) : NULL;
  if (o->starting) kotte__op_defer(o, deliver);
  else deliver(o);
}

void *kotte__op_new(kotte__store *s, size_t size, void (*call)(kotte__op *o), kotte__op_cb cb,
                    void *userdata) {
  kotte__op *o = kotte__calloc(1, size);
  if (o == NULL) return NULL;
  o->store = s;
  o->call = call;
  o->cb = cb;
  o->userdata = userdata;
  o->starting = 1;
  return o;
}

void kotte__op_set_result(kotte__op *o, void *r, void (*free_fn)(void *r)) {
  drop_result(o);
  o->result = r;
  o->result_free = free_fn;
}

void kotte__op_call_status(kotte__op *o) {
  ((void (*)(int, void *))o->cb)(o->status, o->userdata);
}

int kotte__op_started(kotte__op *o, int rc) {
  if (rc != 0) {
    drop_result(o);
    o->store->type->op_free(o);
    return rc;
  }
  o->store->pending++;
  o->starting = 0;
  return 0;
}

/* ---- backends ------------------------------------------------------------ */

int kotte__backend_version_check(const char *kind, unsigned int version,
                                 unsigned int max_version) {
  if (version >= 1 && version <= max_version) return 0;
  return kotte__fail(KOTTE_EVERSION, "%s backend version %u is not supported (1 to %u)", kind,
                     version, max_version);
}

int kotte__backend_init(void *be, const char *kind, unsigned int version,
                        unsigned int max_version, const size_t *sizes) {
  kotte__clear_detail();
  if (be == NULL) return KOTTE_EINVAL;
  int rc = kotte__backend_version_check(kind, version, max_version);
  if (rc != 0) return rc;
  memset(be, 0, sizes[version - 1]);
  *(unsigned int *)be = version;
  return 0;
}

/* ---- lifecycle ---------------------------------------------------------- */

void *kotte__store_new(size_t size, const kotte__store_type *type, const char *kind,
                       unsigned int version, unsigned int max_version, int has_required,
                       int *rc) {
  if ((*rc = kotte__backend_version_check(kind, version, max_version)) != 0) return NULL;
  if (!has_required) {
    *rc = kotte__fail(KOTTE_EINVAL, "%s backend lacks a required method", kind);
    return NULL;
  }
  if (kotte__init() != 0) {
    *rc = KOTTE_EINTERNAL;
    return NULL;
  }
  kotte__store *s = kotte__calloc(1, size);
  *rc = s ? 0 : KOTTE_ENOMEM;
  if (s) s->type = type;
  return s;
}

static int attach_here(kotte__store *s, uv_loop_t *loop) {
  if (kotte__defer_init(&s->defer, loop) != 0) return KOTTE_EINTERNAL;
  s->defer.async.data = s;
  s->loop = loop;
  return 0;
}

static int attach_on_loop(void *arg) {
  kotte__store *s = arg;
  return attach_here(s, kotte_runtime_loop(s->rt));
}

int kotte__store_attach(kotte__store *s, uv_loop_t *loop, kotte_runtime *rt) {
  if (rt == NULL) return attach_here(s, loop);
  s->rt = rt;
  int rc = kotte_runtime_run(rt, attach_on_loop, s);
  if (rc != 0) s->rt = NULL;
  return rc;
}

static void on_closed(uv_handle_t *h) {
  kotte__store *s = h->data;
  kotte__waiter *waiter = s->free_waiter;
  kotte__free(s); /* the first member of the store: the whole store */
  kotte__waiter_signal(waiter);
}

static void finalize(kotte__store *s) {
  s->type->release(s);
  kotte__defer_close(&s->defer, on_closed);
}

static void free_on_loop(kotte__store *s) {
  if (s->closing) return;
  s->closing = 1;
  if (s->pending == 0) finalize(s);
}

static void free_posted(void *arg) { free_on_loop(arg); }

void kotte__store_free(kotte__store *s, const char *what) {
  if (s->rt == NULL || kotte_runtime_on_loop_thread(s->rt)) {
    free_on_loop(s);
    return;
  }
  kotte__runtime_post_and_wait(s->rt, free_posted, s, &s->free_waiter, what);
}

/* ---- waiting for a free on another thread -------------------------------- */

int kotte__runtime_post_and_wait(kotte_runtime *rt, void (*fn)(void *), void *obj,
                                 kotte__waiter **slot, const char *what) {
  kotte__waiter w;
  w.done = 0;
  uv_mutex_init(&w.mu);
  uv_cond_init(&w.cv);
  *slot = &w;
  int rc = kotte_runtime_post(rt, fn, obj);
  if (rc == 0) {
    uv_mutex_lock(&w.mu);
    while (!w.done) uv_cond_wait(&w.cv, &w.mu);
    uv_mutex_unlock(&w.mu);
  } else {
    *slot = NULL;
    kotte__log(KOTTE_LOG_ERROR, "%s: runtime already stopped; leaked", what);
  }
  uv_cond_destroy(&w.cv);
  uv_mutex_destroy(&w.mu);
  return rc;
}

void kotte__waiter_signal(kotte__waiter *w) {
  if (w == NULL) return;
  uv_mutex_lock(&w->mu);
  w->done = 1;
  uv_cond_signal(&w->cv);
  uv_mutex_unlock(&w->mu);
}
