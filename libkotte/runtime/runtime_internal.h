/* Private: blocking calls over asynchronous operations. */
#ifndef KOTTE_RUNTIME_INTERNAL_H
#define KOTTE_RUNTIME_INTERNAL_H

#include <stdatomic.h>

#include "kotte.h"

/*
 * One blocking call. The caller allocates a struct that embeds this one
 * first, copies every argument into it (the caller may time out and return
 * before the loop even starts the operation), and calls kotte__sync_run().
 * Two references: the caller's and the loop's; the last one calls
 * `destroy`, which frees the copies and any result nobody took.
 */
typedef struct kotte__sync kotte__sync;
struct kotte__sync {
  uv_mutex_t mu;
  uv_cond_t cv;
  atomic_int refs;
  int done;      /* guarded by mu */
  int abandoned; /* guarded by mu: the caller timed out */
  int status;
  void *result;
  uint64_t count;
  /* Runs on the loop thread: starts the operation, which must end in one
   * kotte__sync_complete(); or returns a negative code. */
  int (*start)(kotte__sync *s);
  /* Frees an untaken result (e.g. kotte_session_free). May be NULL. */
  void (*result_free)(void *result);
  /* Frees the embedding struct's copies; then the struct is freed. May be NULL. */
  void (*destroy)(kotte__sync *s);
  /* kotte_error_detail() of the operation's failure on the loop thread
   * (at its start or in its callback), handed to the caller's thread
   * (details are thread-local). */
  char detail[1024];
};

/* Allocates a zeroed struct of @p size (>= sizeof(kotte__sync)). */
void *kotte__sync_new(size_t size, int (*start)(kotte__sync *s));

/*
 * Posts s->start to @p rt, waits up to @p timeout_ms (negative: the
 * runtime's default) and returns the status; on 0, *result / *count get
 * what the operation produced (ownership passes to the caller). Always
 * consumes the caller's reference to @p s.
 */
int kotte__sync_run(kotte_runtime *rt, kotte__sync *s, int timeout_ms, void **result,
                    uint64_t *count);

/* Called on the loop thread exactly once per started operation. */
void kotte__sync_complete(kotte__sync *s, int status, void *result, uint64_t count);

/*
 * Freeing a loop-bound object from another thread: the object's last libuv
 * close callback calls kotte__waiter_signal() on the waiter the freeing
 * thread parked in the object, and that thread returns only then.
 */
typedef struct kotte__waiter {
  uv_mutex_t mu;
  uv_cond_t cv;
  int done;
} kotte__waiter;

/* Sets *slot to a waiter on this stack, posts fn(obj) to @p rt and waits
 * until the waiter is signalled. Logs and returns the post's error (the
 * object is then leaked: the runtime is already stopping). */
int kotte__runtime_post_and_wait(kotte_runtime *rt, void (*fn)(void *), void *obj,
                                 kotte__waiter **slot, const char *what);

/* Wakes the thread waiting in kotte__runtime_post_and_wait(). NULL is a no-op. */
void kotte__waiter_signal(kotte__waiter *w);

#endif
