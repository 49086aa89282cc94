/* kotte-server: SIGTERM and SIGINT through one sigwait() thread (see
 * signals.h for why not uv_signal_t). */
#include "signals.h"

#include <pthread.h>

static void fill(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGINT);
}

int ks_signals_block(void) {
  sigset_t set;
  fill(&set);
  return pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void waiter_main(void *arg) {
  ks_signals *s = arg;
  sigset_t set;
  fill(&set);
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (atomic_load(&s->stopping)) return;
    atomic_fetch_or(&s->pending, sig == SIGTERM ? 1 : 2);
    uv_async_send(&s->async);
  }
}

static void on_async(uv_async_t *a) {
  ks_signals *s = a->data;
  int bits = atomic_exchange(&s->pending, 0);
  if (bits & 1) s->cb(s->ctx, SIGTERM);
  if (bits & 2) s->cb(s->ctx, SIGINT);
}

int ks_signals_start(ks_signals *s, uv_loop_t *loop, ks_signal_cb cb, void *ctx) {
  s->cb = cb;
  s->ctx = ctx;
  atomic_init(&s->pending, 0);
  atomic_init(&s->stopping, 0);
  s->waiter_started = 0;
  int rc = uv_async_init(loop, &s->async, on_async);
  if (rc != 0) return rc;
  s->async.data = s;
  rc = uv_thread_create(&s->waiter, waiter_main, s);
  if (rc != 0) {
    uv_close((uv_handle_t *)&s->async, NULL);
    return rc;
  }
  s->waiter_started = 1;
  return 0;
}

void ks_signals_stop(ks_signals *s) {
  if (s->waiter_started) {
    atomic_store(&s->stopping, 1);
    /* Directed at the waiter, blocked there, so its sigwait() takes it;
     * if an outside signal wins the race, the waiter sees `stopping` just
     * the same and this one dies with the thread. */
    pthread_kill(s->waiter, SIGTERM);
    uv_thread_join(&s->waiter);
    s->waiter_started = 0;
  }
  if (!uv_is_closing((uv_handle_t *)&s->async)) uv_close((uv_handle_t *)&s->async, NULL);
}
