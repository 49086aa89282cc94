/* The deferred-run queue shared by the stores. */
#include "core/defer.h"

#include <stddef.h>

static void on_async(uv_async_t *h) {
  kotte__defer_queue *q = (kotte__defer_queue *)((char *)h - offsetof(kotte__defer_queue, async));
  /* Take the queue as it is now; what the items add runs on the next turn. */
  kotte__deferred *d = q->head;
  q->head = q->tail = NULL;
  while (d) {
    kotte__deferred *next = d->next;
    d->run(d); /* may free d, and may push new items */
    d = next;
  }
  if (q->head == NULL) uv_unref((uv_handle_t *)&q->async);
}

int kotte__defer_init(kotte__defer_queue *q, uv_loop_t *loop) {
  q->head = q->tail = NULL;
  int rc = uv_async_init(loop, &q->async, on_async);
  /* An idle store does not keep its loop alive (a libuv habit, and the
   * pool's): a loop with nothing else to do returns from uv_run(), and a
   * store someone forgot to free cannot keep kotte_runtime_free() waiting
   * for ever. Queued items hold a reference until they have run. */
  if (rc == 0) uv_unref((uv_handle_t *)&q->async);
  return rc;
}

void kotte__defer_push(kotte__defer_queue *q, kotte__deferred *item,
                       void (*run)(kotte__deferred *item)) {
  item->run = run;
  item->next = NULL;
  if (q->tail) q->tail->next = item;
  else q->head = item;
  q->tail = item;
  uv_ref((uv_handle_t *)&q->async);
  uv_async_send(&q->async);
}

void kotte__defer_close(kotte__defer_queue *q, uv_close_cb cb) {
  uv_close((uv_handle_t *)&q->async, cb);
}
