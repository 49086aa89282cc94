/* The runtime: one libuv loop on a library-owned thread, and a queue of
 * functions posted to it from other threads. */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "runtime/runtime_internal.h"

typedef struct post {
  void (*fn)(void *);
  void *arg;
  struct post *next;
} post;

struct kotte_runtime {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_async_t wakeup;
  uv_mutex_t mu;
  post *head, *tail;
  int stopping; /* guarded by mu: no more posts accepted */
  int default_timeout_ms;
};

static void drain(uv_async_t *h) {
  kotte_runtime *rt = h->data;
  for (;;) {
    uv_mutex_lock(&rt->mu);
    post *p = rt->head;
    rt->head = rt->tail = NULL;
    int stopping = rt->stopping;
    uv_mutex_unlock(&rt->mu);
    if (p == NULL) {
      /* Closing the wakeup handle here, after the last post ran, lets
       * uv_run() return once the other handles (stores) are gone. */
      if (stopping && !uv_is_closing((uv_handle_t *)h)) uv_close((uv_handle_t *)h, NULL);
      return;
    }
    while (p) {
      post *next = p->next;
      p->fn(p->arg);
      kotte__free(p);
      p = next;
    }
  }
}

static void loop_main(void *arg) {
  kotte_runtime *rt = arg;
  uv_run(&rt->loop, UV_RUN_DEFAULT);
}

int kotte_runtime_new(kotte_runtime **out, const kotte_runtime_options *opts) {
  kotte__clear_detail();
  kotte_runtime_options defaults = KOTTE_RUNTIME_OPTIONS_INIT;
  if (out == NULL) return KOTTE_EINVAL;
  *out = NULL;
  if (opts == NULL) opts = &defaults;
  if (opts->version != KOTTE_RUNTIME_OPTIONS_VERSION)
    return kotte__fail(KOTTE_EVERSION, "kotte_runtime_options.version %u is not supported",
                       opts->version);
  if (kotte__init() != 0) return KOTTE_EINTERNAL;
  kotte_runtime *rt = kotte__calloc(1, sizeof *rt);
  if (rt == NULL) return KOTTE_ENOMEM;
  rt->default_timeout_ms = opts->default_timeout_ms > 0 ? opts->default_timeout_ms : 5000;
  if (uv_loop_init(&rt->loop) != 0) goto fail_free;
  if (uv_mutex_init(&rt->mu) != 0) goto fail_loop;
  if (uv_async_init(&rt->loop, &rt->wakeup, drain) != 0) goto fail_mu;
  rt->wakeup.data = rt;
  if (uv_thread_create(&rt->thread, loop_main, rt) != 0) {
    uv_close((uv_handle_t *)&rt->wakeup, NULL);
    uv_run(&rt->loop, UV_RUN_DEFAULT);
    goto fail_mu;
  }
  *out = rt;
  return 0;
fail_mu:
  uv_mutex_destroy(&rt->mu);
fail_loop:
  uv_loop_close(&rt->loop);
fail_free:
  kotte__free(rt);
  return KOTTE_EINTERNAL;
}

int kotte_runtime_post(kotte_runtime *rt, void (*fn)(void *), void *arg) {
  kotte__clear_detail();
  if (rt == NULL || fn == NULL) return KOTTE_EINVAL;
  post *p = kotte__malloc(sizeof *p);
  if (p == NULL) return KOTTE_ENOMEM;
  p->fn = fn;
  p->arg = arg;
  p->next = NULL;
  uv_mutex_lock(&rt->mu);
  if (rt->stopping) {
    uv_mutex_unlock(&rt->mu);
    kotte__free(p);
    return KOTTE_ECLOSED;
  }
  if (rt->tail) rt->tail->next = p;
  else rt->head = p;
  rt->tail = p;
  /* Sent under the lock so that free() cannot close the handle between
   * the check of `stopping` and the send. */
  uv_async_send(&rt->wakeup);
  uv_mutex_unlock(&rt->mu);
  return 0;
}

static void count_open(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) (*(unsigned int *)arg)++;
}

void kotte_runtime_free(kotte_runtime *rt) {
  if (rt == NULL) return;
  if (kotte_runtime_on_loop_thread(rt)) {
    kotte__log(KOTTE_LOG_ERROR, "kotte_runtime_free called on the loop thread; ignored");
    return;
  }
  uv_mutex_lock(&rt->mu);
  rt->stopping = 1;
  uv_async_send(&rt->wakeup);
  uv_mutex_unlock(&rt->mu);
  uv_thread_join(&rt->thread);
  if (uv_loop_close(&rt->loop) != 0) {
    /* Only idle objects are left (they do not keep the loop running): a
     * store or pool nobody freed. Its handles point into the loop, and a
     * late kotte_*_free() would post to this runtime, so both stay
     * allocated; posting fails with KOTTE_ECLOSED. */
    unsigned int open = 0;
    uv_walk(&rt->loop, count_open, &open);
    kotte__log(KOTTE_LOG_ERROR,
               "kotte_runtime_free: %u handle(s) still open: a store or pool on this runtime "
               "was not freed; the runtime is left allocated",
               open);
    return;
  }
  uv_mutex_destroy(&rt->mu);
  kotte__free(rt);
}

uv_loop_t *kotte_runtime_loop(kotte_runtime *rt) { return rt ? &rt->loop : NULL; }

int kotte_runtime_on_loop_thread(const kotte_runtime *rt) {
  if (rt == NULL) return 0;
  uv_thread_t self = uv_thread_self();
  return uv_thread_equal(&self, &rt->thread);
}

int kotte_runtime_default_timeout(const kotte_runtime *rt) {
  return rt ? rt->default_timeout_ms : 5000;
}

/* kotte_runtime_run(): a post that runs fn and wakes the waiting thread. */
typedef struct run_call {
  int (*fn)(void *);
  void *arg;
  int rc, done;
  uv_mutex_t mu;
  uv_cond_t cv;
  char detail[1024]; /* fn's kotte_error_detail(), for the calling thread */
} run_call;

static void run_on_loop(void *p) {
  run_call *c = p;
  kotte__clear_detail();
  int rc = c->fn(c->arg);
  if (rc != 0) snprintf(c->detail, sizeof c->detail, "%s", kotte__detail_for(rc));
  uv_mutex_lock(&c->mu);
  c->rc = rc;
  c->done = 1;
  uv_cond_signal(&c->cv);
  uv_mutex_unlock(&c->mu);
}

int kotte_runtime_run(kotte_runtime *rt, int (*fn)(void *), void *arg) {
  kotte__clear_detail();
  if (rt == NULL || fn == NULL) return KOTTE_EINVAL;
  if (kotte_runtime_on_loop_thread(rt)) return KOTTE_EDEADLK;
  run_call c;
  memset(&c, 0, sizeof c);
  c.fn = fn;
  c.arg = arg;
  uv_mutex_init(&c.mu);
  uv_cond_init(&c.cv);
  int rc = kotte_runtime_post(rt, run_on_loop, &c);
  if (rc == 0) {
    /* No timeout: fn runs synchronously on the loop and `c` lives on this
     * stack, so we must wait for it whatever happens. */
    uv_mutex_lock(&c.mu);
    while (!c.done) uv_cond_wait(&c.cv, &c.mu);
    rc = c.rc;
    uv_mutex_unlock(&c.mu);
    kotte__detail_set(rc, c.detail); /* details are thread-local */
  }
  uv_cond_destroy(&c.cv);
  uv_mutex_destroy(&c.mu);
  return rc;
}
