/* Private: the machinery every store shares — the session store, the
 * credential store, and any store to come (a query registry is next).
 *
 * The delivery rule lives here and only here: every operation a store
 * accepted (its start function returned 0) ends in exactly one callback,
 * on the loop thread, never before the call that started it returned. A
 * backend that calls back before returning is parked on the store's
 * deferred queue (core/defer.h) until a later loop turn. An operation that
 * ends after its store was freed reports KOTTE_ECANCELED. The store's
 * memory goes only after the last callback and libuv's close callback, and
 * a free from another thread (a store opened on a kotte_runtime) returns
 * only then.
 *
 * Model: libuv's uv__req_register / uv__handle_init (src/uv-common.h): the
 * shared part is a struct embedded first in the store's own.
 *
 *     struct kotte_x_store { kotte__store base; ... };  // base first
 *     typedef struct x_op { kotte__op base; ... } x_op;  // base first
 *
 *     st = kotte__store_new(sizeof *st, &x_store_type, "x", be->version, ...);
 *     kotte__store_attach(&st->base, loop, rt);
 *     KOTTE__OP_CALL_RESULT(call_x, kotte_x_cb) // (status, result, userdata)
 *
 *     x_op *o = kotte__op_new(&st->base, sizeof *o, call_x, (kotte__op_cb)cb, userdata);
 *     return kotte__op_started(&o->base, be->method(..., on_done, o));
 *     // on_done: kotte__op_set_result(&o->base, x, free_x);
 *     //          kotte__op_complete(&o->base, status);
 *
 * Each operation says how to call its user's callback (the signature is
 * the store's: call_x casts o->cb back); the store type says how to free an
 * op and what to release on the way out. A result belongs to the op until
 * the callback runs with status 0, which takes it; an op that fails (also
 * one cancelled by the store's free) frees it and passes NULL or 0.
 * Threads: everything on the loop thread, except kotte__store_free().
 */
#ifndef KOTTE_CORE_STORE_H
#define KOTTE_CORE_STORE_H

#include "core/defer.h"
#include "core/internal.h"

typedef struct kotte__store kotte__store;
typedef struct kotte__op kotte__op;

/* Any function pointer type, cast back to the real one by the store's call(). */
typedef void (*kotte__op_cb)(void);

typedef struct kotte__store_type {
  /* Frees @p o and whatever it still owns: after its call, or when its
   * start failed (then it was never called). */
  void (*op_free)(kotte__op *o);
  /* Releases what the store holds (its backend, its key ring) once it is
   * freed and no operation is pending. The store's memory itself is
   * released by core, after libuv's close callback. */
  void (*release)(kotte__store *s);
} kotte__store_type;

/* Freeing a loop-bound object from another thread: the object's last libuv
 * close callback calls kotte__waiter_signal() on the waiter the freeing
 * thread parked in the object, and that thread returns only then. (The
 * PostgreSQL pool uses it too.) */
typedef struct kotte__waiter {
  uv_mutex_t mu;
  uv_cond_t cv;
  int done;
} kotte__waiter;

struct kotte__store {
  const kotte__store_type *type;
  uv_loop_t *loop;
  kotte_runtime *rt;          /* from kotte__store_open(); NULL on the caller's loop */
  kotte__defer_queue defer;   /* operations waiting for a later loop turn */
  unsigned int pending;       /* accepted operations whose callback has not run */
  int closing;                /* freed: new operations get KOTTE_ECLOSED */
  kotte__waiter *free_waiter; /* set while a thread waits in kotte__store_free() */
};

struct kotte__op {
  kotte__store *store;
  /* Calls the user's callback (cb, userdata) with status. On success the
   * result passes to the callee (the op lets go of it); on failure the
   * callee gets NULL or 0 and op_free frees what the op holds. */
  void (*call)(kotte__op *o);
  kotte__op_cb cb;
  void *userdata;
  int status;
  void *result;                 /* for the callback on success, or NULL */
  void (*result_free)(void *r); /* frees result if the op fails */
  uint64_t count;               /* a count for the callback (0 on failure) */
  int starting;               /* its start function is still on the stack */
  char *detail;               /* kotte_error_detail() for the callback, or NULL */
  kotte__deferred link;       /* in the store's deferred queue */
  void (*then)(kotte__op *o); /* what the deferred queue does with it */
};

/* The top of every asynchronous store call: clears this thread's
 * kotte_error_detail() (a detail left by an earlier call must not describe
 * this one), then returns KOTTE_EINVAL for a NULL store or callback and
 * KOTTE_ECLOSED once the store is being freed. @p st is the outer store
 * (its kotte__store is named base). */
#define KOTTE__STORE_ENTER(st, cb)                                           \
  do {                                                                       \
    kotte__clear_detail();                                                   \
    if ((st) == NULL || (cb) == NULL) return KOTTE_EINVAL;                   \
    if ((st)->base.closing) return KOTTE_ECLOSED;                            \
  } while (0)

/* The check of a backend struct's version: KOTTE_EVERSION, with a detail
 * naming the @p kind of backend ("session"), outside 1..@p max_version. */
int kotte__backend_version_check(const char *kind, unsigned int version,
                                 unsigned int max_version);

/* kotte_*_backend_init(): @p be is a backend struct whose first member is
 * its `unsigned int version`; @p sizes[v - 1] is the size of version v of
 * the struct (fields are only appended), for v in 1..@p max_version.
 * Zeroes sizes[version - 1] bytes and sets the version. */
int kotte__backend_init(void *be, const char *kind, unsigned int version,
                        unsigned int max_version, const size_t *sizes);

/* The common part of every kotte_*_store_new() and _open(), after their
 * own argument checks: refuses a backend struct of a version outside
 * 1..@p max_version (KOTTE_EVERSION) or without its required methods
 * (@p has_required 0: KOTTE_EINVAL), the detail naming the @p kind of
 * backend ("session"); then allocates a zeroed store of @p size bytes whose
 * first member is a kotte__store. Any thread. The store, or NULL with *rc
 * set. Until kotte__store_attach() succeeds it is on no loop: on failure
 * free it with kotte__free(). */
void *kotte__store_new(size_t size, const kotte__store_type *type, const char *kind,
                       unsigned int version, unsigned int max_version, int has_required,
                       int *rc);

/* Puts the store on @p loop (call on the loop's thread, or before the loop
 * runs), or with @p rt on the runtime's loop (call from any other thread:
 * KOTTE_EDEADLK on the loop thread); the store is then the runtime's: its
 * *_sync calls work and it may be freed from any thread. 0, or an error
 * and the store is on no loop. */
int kotte__store_attach(kotte__store *s, uv_loop_t *loop, kotte_runtime *rt);

/* Frees the store: pending operations end with KOTTE_ECANCELED, then
 * type->release() and the memory. On the loop thread (also from inside a
 * callback) it returns at once; from another thread (a runtime's store) it
 * returns when everything is released. @p what names the call in a log
 * line if the runtime is already gone. */
void kotte__store_free(kotte__store *s, const char *what);

/* The store's clock: @p clock(@p ctx), or kotte_clock_now() without one. */
static inline kotte_time kotte__store_clock(kotte_clock_fn clock, void *ctx) {
  return clock ? clock(ctx) : kotte_clock_now();
}

/* A zeroed operation struct of @p size bytes (its first member a
 * kotte__op) of @p s, which @p call delivers to the user's callback and
 * userdata; NULL when out of memory. Free it with type->op_free, which
 * kotte__op_started() and the delivery call. */
void *kotte__op_new(kotte__store *s, size_t size, void (*call)(kotte__op *o), kotte__op_cb cb,
                    void *userdata);

/* The call of an operation whose callback takes only a status:
 * void (*)(int status, void *userdata), as every store has. */
void kotte__op_call_status(kotte__op *o);

/* Defines `static void name(kotte__op *o)`, the call of an operation whose
 * callback of type @p cb_type takes (status, result, userdata). */
#define KOTTE__OP_CALL_RESULT(name, cb_type)                                 \
  static void name(kotte__op *o) { ((cb_type)o->cb)(o->status, o->result, o->userdata); }

/* Likewise for a callback that takes (status, uint64_t count, userdata). */
#define KOTTE__OP_CALL_COUNT(name, cb_type)                                  \
  static void name(kotte__op *o) { ((cb_type)o->cb)(o->status, o->count, o->userdata); }

/* Makes @p r (freed by @p free_fn if the op fails) the op's result,
 * freeing the one it had. */
void kotte__op_set_result(kotte__op *o, void *r, void (*free_fn)(void *r));

/* The end of every start function: @p rc is what starting the operation
 * (the first backend call) returned. 0: the operation is pending and will
 * be delivered once; else @p o is freed (type->op_free) and @p rc is
 * returned, and no callback will run. */
int kotte__op_started(kotte__op *o, int rc);

/* Ends @p o with @p status (the detail of a failure is taken from this
 * thread now: other operations may fail before the callback runs). The
 * callback runs now, or on a later loop turn if the start function is still
 * on the stack. */
void kotte__op_complete(kotte__op *o, int status);

/* Runs @p run(o) on a later loop turn (the next round of a multi-round
 * operation, which a store being freed should not run in a tight loop). */
void kotte__op_defer(kotte__op *o, void (*run)(kotte__op *o));

/* Sets *slot to a waiter on this stack, posts fn(obj) to @p rt and waits
 * until the waiter is signalled. Logs and returns the post's error (the
 * object is then leaked: the runtime is already stopping). */
int kotte__runtime_post_and_wait(kotte_runtime *rt, void (*fn)(void *), void *obj,
                                 kotte__waiter **slot, const char *what);

/* Wakes the thread waiting in kotte__runtime_post_and_wait(). NULL is a no-op. */
void kotte__waiter_signal(kotte__waiter *w);

#endif
