/* Private: the group-commit queue in front of a kotte__journal, shared by
 * the json_file backends.
 *
 * A backend embeds a kotte__journal_job in each of its operations and
 * submits it on the loop thread. One libuv thread-pool work item at a time
 * takes every job queued so far (a batch), takes the journal lock, lets the
 * backend apply each job in order (ops->run writes its journal lines into
 * one buffer), appends the buffer once and fdatasync()s once if any job
 * asked for it, compacts, and unlocks. Back on the loop thread the batch is
 * delivered in submission order (ops->deliver), then the next batch starts
 * if jobs came in meanwhile.
 *
 * Guarantees:
 *  - a job that asked for durability is delivered only after the fdatasync
 *    of the append that carries its lines;
 *  - if the lock or the append fails, every job of the batch is delivered
 *    with that error, reads included: nothing in a failed batch is
 *    acknowledged;
 *  - jobs run and are delivered in the order they were submitted, and the
 *    backend's state (ops->run's ctx) is touched by one thread at a time;
 *  - kotte__journal_queue_free() from inside a delivery, or while a batch is
 *    on the pool, destroys the backend only after that batch is delivered.
 *
 * Threads: submit and free on the loop thread; run on a pool thread;
 * deliver and destroy on the loop thread.
 */
#ifndef KOTTE_CORE_JOURNAL_QUEUE_H
#define KOTTE_CORE_JOURNAL_QUEUE_H

#include <uv.h>

#include "core/journal_file.h"

/* Embedded in the backend's own job struct. */
typedef struct kotte__journal_job kotte__journal_job;
struct kotte__journal_job {
  kotte__journal_job *next;
  /* The result code given to the callback: set by ops->run, or by the
   * queue to the error of a batch whose lock or append failed. */
  int status;
};

typedef struct kotte__journal_queue_ops {
  /* Pool thread, journal lock held: applies @p job to the backend's state
   * (@p ctx), sets job->status, appends its journal lines to @p b and adds
   * their number to *lines. Returns 1 if the job must be on disk before it
   * is acknowledged (a write), 0 if not (a read, a failed write, a slide). */
  int (*run)(void *ctx, kotte__journal_job *job, kotte__journal_buf *b, size_t *lines);
  /* Loop thread: calls the job's callback with job->status, then frees the
   * job. The callback may submit, and may free the queue. */
  void (*deliver)(kotte__journal_job *job);
  /* Loop thread: frees the backend (its state, the journal, the memory
   * that holds the queue). Called once, by kotte__journal_queue_free() or
   * after the batch it waited for. */
  void (*destroy)(void *ctx);
} kotte__journal_queue_ops;

typedef struct kotte__journal_queue {
  const kotte__journal_queue_ops *ops;
  void *ctx;
  kotte__journal *journal;
  uv_loop_t *loop;
  uv_work_t work;
  uv_mutex_t mu; /* guards head/tail (loop thread and worker) */
  kotte__journal_job *head, *tail;
  kotte__journal_job *batch; /* owned by the worker while it runs, then by the delivery */
  int working;    /* loop thread only: a batch is on the pool or being delivered */
  int in_deliver; /* loop thread only: re-entrancy guard for free() */
  int free_asked; /* loop thread only */
} kotte__journal_queue;

/* Initialises @p q over the open @p journal; @p ctx is given to ops->run
 * and ops->destroy. 0 or KOTTE_EINTERNAL. */
int kotte__journal_queue_init(kotte__journal_queue *q, uv_loop_t *loop, kotte__journal *journal,
                              const kotte__journal_queue_ops *ops, void *ctx);

/* Queues @p job (loop thread); ops->deliver gets it exactly once. */
void kotte__journal_queue_submit(kotte__journal_queue *q, kotte__journal_job *job);

/* Calls ops->destroy now, or after the batch in flight is delivered. The
 * caller has no job queued that is not yet in a batch (backend contract:
 * free comes when no operation is in flight, or from the last callback). */
void kotte__journal_queue_free(kotte__journal_queue *q);

#endif
