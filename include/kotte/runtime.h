/*
 * libkotte — the runtime: a libuv loop on a library-owned thread.
 *
 * Programs that own a libuv loop use the asynchronous APIs directly on it.
 * Programs that do not (a Python binding, a threaded server) create one
 * kotte_runtime and use the blocking *_sync functions of each store, which
 * post the work to the runtime's loop and wait for its single callback.
 */
#ifndef KOTTE_RUNTIME_H
#define KOTTE_RUNTIME_H

#include <uv.h>

#include "kotte/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kotte_runtime kotte_runtime;

#define KOTTE_RUNTIME_OPTIONS_VERSION 1

/** Options for kotte_runtime_new(). Initialise with KOTTE_RUNTIME_OPTIONS_INIT. */
typedef struct kotte_runtime_options {
  unsigned int version;
  /** Timeout of blocking calls that pass a negative timeout (ms); default 5000. */
  int default_timeout_ms;
} kotte_runtime_options;

#define KOTTE_RUNTIME_OPTIONS_INIT { KOTTE_RUNTIME_OPTIONS_VERSION, 5000 }

/**
 * Starts a loop thread. @p opts may be NULL for defaults.
 * On success *out owns the thread; release it with kotte_runtime_free().
 * Returns 0, KOTTE_EVERSION, KOTTE_EINVAL, KOTTE_ENOMEM or KOTTE_EINTERNAL.
 * Any thread.
 */
KOTTE_EXTERN int kotte_runtime_new(kotte_runtime **out, const kotte_runtime_options *opts);

/**
 * Stops the loop thread after everything posted so far has run, closes the
 * runtime's handles and joins the thread. Free every store and pool opened
 * on the runtime first. One that was not freed does not keep this call
 * waiting once its operations in flight have ended (an idle store or pool
 * holds no reference on the loop): the call then logs an error and returns,
 * leaving that object and the runtime allocated, so that a late free of it
 * does nothing worse than log (its post fails with KOTTE_ECLOSED).
 * NULL is a no-op. Must not be called on the loop thread (that would
 * deadlock; it then logs an error and does nothing).
 */
KOTTE_EXTERN void kotte_runtime_free(kotte_runtime *rt);

/** The runtime's loop. Touch it only from the loop thread (see kotte_runtime_post()). */
KOTTE_EXTERN uv_loop_t *kotte_runtime_loop(kotte_runtime *rt);

/** 1 if the calling thread is @p rt's loop thread, else 0. */
KOTTE_EXTERN int kotte_runtime_on_loop_thread(const kotte_runtime *rt);

/** The timeout used when a blocking call passes a negative timeout. */
KOTTE_EXTERN int kotte_runtime_default_timeout(const kotte_runtime *rt);

/**
 * Runs fn(arg) on the loop thread on a later loop turn, in posting order.
 * Any thread. Returns 0, KOTTE_ENOMEM, or KOTTE_ECLOSED once
 * kotte_runtime_free() has started (fn is then not called).
 */
KOTTE_EXTERN int kotte_runtime_post(kotte_runtime *rt, void (*fn)(void *arg), void *arg);

/**
 * Runs fn(arg) on the loop thread and waits until it returned; returns
 * its return value. For work that completes synchronously on the loop
 * (creating and freeing loop-bound objects). Returns KOTTE_EDEADLK when
 * called on the loop thread. Any other thread.
 */
KOTTE_EXTERN int kotte_runtime_run(kotte_runtime *rt, int (*fn)(void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif /* KOTTE_RUNTIME_H */
