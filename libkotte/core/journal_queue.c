/* The group-commit queue shared by the json_file backends. */
#include "core/journal_queue.h"

static void fail_batch(kotte__journal_job *batch, int rc) {
  for (kotte__journal_job *j = batch; j; j = j->next) j->status = rc;
}

static void work_cb(uv_work_t *w) {
  kotte__journal_queue *q = w->data;
  uv_mutex_lock(&q->mu);
  kotte__journal_job *batch = q->head;
  q->head = q->tail = NULL;
  uv_mutex_unlock(&q->mu);
  q->batch = batch;

  int rc = kotte__journal_lock(q->journal);
  if (rc != 0) {
    fail_batch(batch, rc);
    return;
  }
  kotte__journal_buf b = { NULL, 0, 0, 0 };
  size_t lines = 0;
  int sync = 0;
  for (kotte__journal_job *j = batch; j; j = j->next) sync |= q->ops->run(q->ctx, j, &b, &lines);
  /* One append and at most one fdatasync for the whole batch: this is what
   * makes concurrent writers cheaper than one fsync each. */
  rc = kotte__journal_append(q->journal, &b, lines, sync);
  kotte__journal_buf_free(&b);
  if (rc != 0) {
    /* Nothing in this batch may be acknowledged as written. Reads that
     * succeeded are still true answers, but keep it simple and honest:
     * the whole batch reports the I/O error. */
    fail_batch(batch, rc);
  } else {
    kotte__journal_maybe_compact(q->journal);
  }
  kotte__journal_unlock(q->journal);
}

static void start_work(kotte__journal_queue *q);

/* The last step of a free: nothing of @p q may be touched after destroy. */
static void finish(kotte__journal_queue *q) {
  uv_mutex_destroy(&q->mu);
  q->ops->destroy(q->ctx);
}

static void after_work(uv_work_t *w, int uv_status) {
  (void)uv_status; /* the work is never cancelled */
  kotte__journal_queue *q = w->data;
  kotte__journal_job *j = q->batch;
  q->batch = NULL;
  q->in_deliver = 1;
  while (j) {
    kotte__journal_job *next = j->next; /* deliver frees j */
    q->ops->deliver(j);
    j = next;
  }
  q->in_deliver = 0;
  q->working = 0;
  if (q->free_asked) {
    finish(q);
    return;
  }
  uv_mutex_lock(&q->mu);
  int more = q->head != NULL;
  uv_mutex_unlock(&q->mu);
  if (more) start_work(q);
}

static void start_work(kotte__journal_queue *q) {
  q->working = 1;
  q->work.data = q;
  if (uv_queue_work(q->loop, &q->work, work_cb, after_work) != 0) {
    /* Cannot happen with valid arguments; leave the jobs queued for the
     * next submit rather than hang in `working`. */
    q->working = 0;
    kotte__log(KOTTE_LOG_ERROR, "json_file %s backend: uv_queue_work failed",
               q->journal->ops->noun);
  }
}

int kotte__journal_queue_init(kotte__journal_queue *q, uv_loop_t *loop, kotte__journal *journal,
                              const kotte__journal_queue_ops *ops, void *ctx) {
  if (uv_mutex_init(&q->mu) != 0) return KOTTE_EINTERNAL;
  q->ops = ops;
  q->ctx = ctx;
  q->journal = journal;
  q->loop = loop;
  q->head = q->tail = q->batch = NULL;
  q->working = q->in_deliver = q->free_asked = 0;
  return 0;
}

void kotte__journal_queue_submit(kotte__journal_queue *q, kotte__journal_job *job) {
  job->next = NULL;
  uv_mutex_lock(&q->mu);
  if (q->tail) q->tail->next = job;
  else q->head = job;
  q->tail = job;
  uv_mutex_unlock(&q->mu);
  /* While a batch is out, after_work starts the next one. */
  if (!q->working) start_work(q);
}

void kotte__journal_queue_free(kotte__journal_queue *q) {
  /* Called from inside a delivery (a user freed the store in a callback)
   * or with a batch in flight: finish after it. */
  if (q->in_deliver || q->working) {
    q->free_asked = 1;
    return;
  }
  finish(q);
}
