/* Private: blocking calls over asynchronous operations. */
#ifndef KOTTE_RUNTIME_INTERNAL_H
#define KOTTE_RUNTIME_INTERNAL_H

#include <stdatomic.h>

#include "core/internal.h"

/*
 * One blocking call. The caller allocates a struct that embeds this one
 * first, copies every argument into it (the caller may time out and return
 * before the loop even starts the operation), and calls kotte__sync_run().
 * Two references: the caller's and the loop's; the last one calls
 * `destroy`, which frees the copies and any result nobody took.
 */
typedef struct kotte__sync kotte__sync;
#define KOTTE__SYNC_MAX_COPIES 10
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
  /* What start() works on, for the store facades (kotte__sync_call_new()):
   * the store and which of its operations to start. */
  void *target;
  int op;
  /* Frees an untaken result (e.g. kotte_session_free). May be NULL. */
  void (*result_free)(void *result);
  /* Frees what the embedding struct holds besides the copies below; then
   * the struct is freed. May be NULL. */
  void (*destroy)(kotte__sync *s);
  /* The call's copies of its string arguments (kotte__sync_copy()), freed
   * with the struct; those marked wipe are wiped first. */
  char *copies[KOTTE__SYNC_MAX_COPIES];
  unsigned char wipe[KOTTE__SYNC_MAX_COPIES];
  unsigned int n_copies;
  int oom; /* a copy failed: the call is not run */
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

/* Frees a struct from kotte__sync_new() that was never run (its arguments
 * could not be copied): `destroy`, then the struct. */
void kotte__sync_discard(kotte__sync *s);

/*
 * A store's blocking call in three steps (session_sync.c, credential_sync.c):
 *
 *     c = kotte__sync_call_new(rt, sizeof *c, start, store, op, &rc);
 *     c->arg = kotte__sync_copy(&c->base, arg, 0);  // each string argument
 *     return kotte__sync_call_run(rt, &c->base, timeout_ms, result, count);
 *
 * kotte__sync_call_new() refuses a store that was not opened on a runtime
 * (@p rt NULL: KOTTE_EINVAL, with a detail), else returns a zeroed struct of
 * @p size with @p target and @p op set (NULL and *rc = KOTTE_ENOMEM when
 * out of memory).
 * kotte__sync_call_run() runs it (kotte__sync_run()), or discards it and
 * returns KOTTE_ENOMEM when an argument could not be copied.
 */
void *kotte__sync_call_new(kotte_runtime *rt, size_t size, int (*start)(kotte__sync *s),
                           void *target, int op, int *rc);
int kotte__sync_call_run(kotte_runtime *rt, kotte__sync *s, int timeout_ms, void **result,
                         uint64_t *count);

/* The call's own copy of @p str (NULL stays NULL), freed with @p s and
 * wiped first if @p wipe (a secret). Out of memory: NULL, and the call
 * will not run. */
char *kotte__sync_copy(kotte__sync *s, const char *str, int wipe);

/* The asynchronous callback of an operation that reports only a status
 * (userdata: the kotte__sync). */
void kotte__sync_on_status(int status, void *userdata);

/* Defines `static void name(int status, type *result, void *userdata)`,
 * the asynchronous callback of an operation with a result, which hands it
 * to the blocking caller (userdata: the kotte__sync). */
#define KOTTE__SYNC_ON_RESULT(name, type)                                    \
  static void name(int status, type *result, void *userdata) {              \
    kotte__sync_complete(userdata, status, result, 0);                       \
  }

/* Clears a blocking call's out-parameter, if given. */
#define KOTTE__OUT_INIT(out)                                                 \
  do {                                                                       \
    if (out) *(out) = NULL;                                                  \
  } while (0)

/* kotte__waiter and kotte__runtime_post_and_wait(), with the store
 * machinery that uses them most. */
#include "core/store.h"

#endif
