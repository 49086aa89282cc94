/* Private: "run this on a later loop turn" — the mechanism behind the rule
 * that a store never calls back before the starting call returned. An
 * item is embedded in the caller's operation struct; pushing it wakes the
 * queue's uv_async_t, whose callback runs every item queued so far. The
 * handle keeps the loop alive only while items are queued. */
#ifndef KOTTE_CORE_DEFER_H
#define KOTTE_CORE_DEFER_H

#include <uv.h>

typedef struct kotte__deferred kotte__deferred;
struct kotte__deferred {
  kotte__deferred *next;
  void (*run)(kotte__deferred *item);
};

typedef struct kotte__defer_queue {
  uv_async_t async; /* async.data is the owner's (set it after init) */
  kotte__deferred *head, *tail;
} kotte__defer_queue;

/* Initialises @p q on @p loop (loop thread). 0 or a libuv error. */
int kotte__defer_init(kotte__defer_queue *q, uv_loop_t *loop);

/* Queues @p item to run(item) on a later loop turn (loop thread). */
void kotte__defer_push(kotte__defer_queue *q, kotte__deferred *item,
                       void (*run)(kotte__deferred *item));

/* Closes the queue's handle; @p cb is libuv's close callback. Nothing may
 * be queued any more. */
void kotte__defer_close(kotte__defer_queue *q, uv_close_cb cb);

#endif
