/* kotte-server: SIGTERM and SIGINT, delivered to the loop without a window
 * in which they would kill the process.
 *
 * Why not uv_signal_t: closing the last libuv signal handle for a signal
 * restores SIG_DFL, and a supervisor's repeated SIGTERM arriving during
 * the few instructions before the server could ignore it killed the
 * exiting process (seen in the shutdown test, about one run in ten). Here
 * the two signals are blocked in every thread from the start and taken by
 * one thread with sigwait(); after ks_signals_stop() a late signal stays
 * pending, harmless, until the process exits. */
#ifndef KS_SIGNALS_H
#define KS_SIGNALS_H

#include <signal.h>
#include <stdatomic.h>

#include <uv.h>

typedef void (*ks_signal_cb)(void *ctx, int signum);

typedef struct ks_signals {
  uv_async_t async; /* wakes the loop; data = this */
  uv_thread_t waiter;
  int waiter_started;
  ks_signal_cb cb;
  void *ctx;
  /* signals taken by the waiter, not yet handed to cb (a bit per signal:
   * 1 SIGTERM, 2 SIGINT), and whether the waiter must end */
  atomic_int pending;
  atomic_int stopping;
} ks_signals;

/* Blocks SIGTERM and SIGINT in the calling thread. Call first thing, before
 * any thread exists: threads inherit the mask, so the signals then reach no
 * thread but the waiter. A signal that arrives before ks_signals_start()
 * waits and is handed over once it runs. Returns 0 or an errno value. */
int ks_signals_block(void);

/* Starts the waiter. cb runs on the loop thread, once for each SIGTERM or
 * SIGINT (signals of one kind that arrive faster than the loop turns may
 * be reported once). Returns 0 or a libuv error code. */
int ks_signals_start(ks_signals *s, uv_loop_t *loop, ks_signal_cb cb, void *ctx);

/* Stops and joins the waiter and closes the loop handle (the loop must run
 * once more to finish the close). The signals stay blocked. */
void ks_signals_stop(ks_signals *s);

#endif
