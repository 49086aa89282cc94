/* The json_file credential backend: the shared index kept in step with a
 * journal file. Operations queue up on the loop thread; one libuv
 * thread-pool work item at a time takes the whole queue, applies it under
 * the file lock with a single append and a single fdatasync (group
 * commit), and the results are delivered on the loop thread in submission
 * order. Mirrors the session json_file backend. */
#include <stdio.h>
#include <string.h>

#include "credential/cred_journal.h"

typedef enum job_kind { J_INSERT, J_GET, J_LIST, J_UPDATE, J_REMOVE, J_SCAN, J_COUNT } job_kind;

typedef struct job job;
struct job {
  job_kind kind;
  job *next;
  void *ctx;
  kotte_cred_backend_status_cb status_cb;
  kotte_cred_backend_record_cb record_cb;
  kotte_cred_backend_list_cb list_cb;
  kotte_cred_backend_count_cb count_cb;
  kotte_cred_backend_keys_cb keys_cb;
  /* arguments (deep copies) */
  kotte_cred_record *rec; /* insert: one record */
  char *user_id;
  char id[KOTTE_CRED_ID_LEN + 1];
  char after[KOTTE_CRED_ID_LEN + 1]; /* scan: "" = from the start */
  char key_id[KOTTE_KEY_ID_LEN + 1];
  unsigned int limit;
  kotte_cred_patch patch; /* update: strings and blobs owned by the job */
  /* results */
  int status;
  uint64_t count;
  kotte_cred_record *out; /* deep copies: n_out records */
  size_t n_out;
  kotte_cred_key_count *keys; /* key_id strings owned by the job */
  size_t n_keys;
};

typedef struct jf_backend {
  kotte_cred_backend base; /* first */
  uv_loop_t *loop;
  uv_work_t work;
  uv_mutex_t mu; /* guards `queue` (loop thread and worker) */
  job *queue, *queue_tail;
  job *batch;     /* owned by the worker while it runs, then by after_work */
  int working;    /* loop thread only */
  int in_deliver; /* loop thread only: re-entrancy guard for free() */
  int free_asked; /* loop thread only */
  ct_table table; /* worker only (and the loader before any work) */
  kotte__journal journal;
} jf_backend;

#define JF(be) ((jf_backend *)(be))

/* ---- jobs --------------------------------------------------------------- */

static void patch_free(kotte_cred_patch *p) {
  kotte__free((char *)p->name);
  kotte__free((char *)p->host);
  kotte__free((char *)p->database);
  kotte__free((char *)p->sslmode);
  kotte__free((char *)p->key_id);
  kotte__free((char *)p->expect_key_id);
  kotte__free((unsigned char *)p->username);
  kotte__free((unsigned char *)p->password);
  kotte__free((unsigned char *)p->expect_username);
  kotte__free((unsigned char *)p->expect_password);
}

static int str_copy(const char **dst, const char *src) {
  if (src == NULL) return 0;
  return (*dst = kotte__strdup(src)) == NULL ? -1 : 0;
}

static int blob_copy(const unsigned char **dst, const unsigned char *src, size_t n) {
  if (src == NULL) return 0;
  unsigned char *d = kotte__malloc(n ? n : 1);
  if (d == NULL) return -1;
  memcpy(d, src, n);
  *dst = d;
  return 0;
}

static int patch_copy(kotte_cred_patch *d, const kotte_cred_patch *s) {
  *d = *s;
  d->name = d->host = d->database = d->sslmode = d->key_id = d->expect_key_id = NULL;
  d->username = d->password = d->expect_username = d->expect_password = NULL;
  if (str_copy(&d->name, s->name) || str_copy(&d->host, s->host) ||
      str_copy(&d->database, s->database) || str_copy(&d->sslmode, s->sslmode) ||
      str_copy(&d->key_id, s->key_id) || str_copy(&d->expect_key_id, s->expect_key_id) ||
      blob_copy(&d->username, s->username, s->username_len) ||
      blob_copy(&d->password, s->password, s->password_len) ||
      blob_copy(&d->expect_username, s->expect_username, s->expect_username_len) ||
      blob_copy(&d->expect_password, s->expect_password, s->expect_password_len)) {
    patch_free(d);
    return KOTTE_ENOMEM;
  }
  return 0;
}

static void job_free(job *jb) {
  ct_records_free(jb->rec, 1);
  ct_records_free(jb->out, jb->n_out);
  for (size_t i = 0; i < jb->n_keys; i++) kotte__free((char *)jb->keys[i].key_id);
  kotte__free(jb->keys);
  patch_free(&jb->patch);
  kotte__free(jb->user_id);
  kotte__free(jb);
}

/* Results are copied out of the table: the worker may change it again
 * before the loop thread delivers them. */
static int copy_entry(job *jb, const ct_entry *e) {
  kotte_cred_record r;
  ct_record(e, &r);
  int rc = ct_records_copy(&r, 1, &jb->out);
  if (rc == 0) jb->n_out = 1;
  return rc;
}

static int copy_records(job *jb, kotte_cred_record *recs, size_t n, int rc) {
  if (rc == 0) rc = ct_records_copy(recs, n, &jb->out);
  if (rc == 0) jb->n_out = n;
  kotte__free(recs);
  return rc;
}

static int copy_keys(job *jb, kotte_cred_key_count *counts, size_t n, int rc) {
  if (rc == 0) {
    jb->keys = kotte__calloc(n ? n : 1, sizeof *jb->keys);
    if (jb->keys == NULL) rc = KOTTE_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
      jb->keys[i].count = counts[i].count;
      jb->keys[i].key_id = kotte__strdup(counts[i].key_id);
      jb->n_keys = i + 1;
      if (jb->keys[i].key_id == NULL) rc = KOTTE_ENOMEM;
    }
  }
  kotte__free(counts);
  return rc;
}

/* ---- the worker --------------------------------------------------------- */

/* Applies one job to the table and writes its journal lines into @p b.
 * Returns 1 if the job must be durable before it is acknowledged. */
static int run_job(jf_backend *jf, job *jb, kotte__journal_buf *b, size_t *lines) {
  ct_table *t = &jf->table;
  ct_entry *e = NULL;
  switch (jb->kind) {
  case J_INSERT:
    jb->status = ct_insert(t, jb->rec, &e);
    if (jb->status != 0) return 0;
    cj_buf_put(b, e);
    (*lines)++;
    return 1;
  case J_GET:
    e = ct_find(t, jb->user_id, jb->id);
    jb->status = e ? copy_entry(jb, e) : KOTTE_ENOTFOUND;
    return 0;
  case J_LIST: {
    kotte_cred_record *recs;
    size_t n;
    int rc = ct_list_user(t, jb->user_id, &recs, &n);
    jb->status = copy_records(jb, recs, n, rc);
    return 0;
  }
  case J_UPDATE:
    jb->status = ct_update(t, jb->user_id, jb->id, &jb->patch, &e);
    if (jb->status != 0) return 0;
    cj_buf_put(b, e);
    (*lines)++;
    jb->status = copy_entry(jb, e);
    return 1;
  case J_REMOVE:
    jb->count = (uint64_t)ct_remove(t, jb->user_id, jb->id);
    jb->status = 0;
    if (jb->count == 0) return 0;
    cj_buf_del(b, jb->id);
    (*lines)++;
    return 1;
  case J_SCAN: {
    kotte_cred_record *recs;
    size_t n;
    int rc = ct_scan_stale(t, jb->key_id, jb->after[0] ? jb->after : NULL, jb->limit, &recs, &n);
    jb->status = copy_records(jb, recs, n, rc);
    return 0;
  }
  case J_COUNT: {
    kotte_cred_key_count *counts;
    size_t n;
    int rc = ct_key_counts(t, &counts, &n);
    jb->status = copy_keys(jb, counts, n, rc);
    return 0;
  }
  }
  jb->status = KOTTE_EINTERNAL;
  return 0;
}

static void work_cb(uv_work_t *w) {
  jf_backend *jf = w->data;
  uv_mutex_lock(&jf->mu);
  job *batch = jf->queue;
  jf->queue = jf->queue_tail = NULL;
  uv_mutex_unlock(&jf->mu);
  jf->batch = batch;

  int rc = kotte__journal_lock(&jf->journal);
  if (rc != 0) {
    for (job *jb = batch; jb; jb = jb->next) jb->status = rc;
    return;
  }
  kotte__journal_buf b = { NULL, 0, 0, 0 };
  size_t lines = 0;
  int sync = 0;
  for (job *jb = batch; jb; jb = jb->next) sync |= run_job(jf, jb, &b, &lines);
  rc = kotte__journal_append(&jf->journal, &b, lines, sync);
  kotte__journal_buf_free(&b);
  if (rc != 0) {
    /* Nothing in this batch may be acknowledged as written; as in the
     * session backend, the whole batch reports the I/O error. */
    for (job *jb = batch; jb; jb = jb->next) jb->status = rc;
  } else {
    kotte__journal_maybe_compact(&jf->journal);
  }
  kotte__journal_unlock(&jf->journal);
}

static void start_work(jf_backend *jf);
static void jf_destroy(jf_backend *jf);

static void deliver_job(job *jb) {
  int st = jb->status;
  switch (jb->kind) {
  case J_INSERT: jb->status_cb(st, jb->ctx); break;
  case J_GET:
  case J_UPDATE: jb->record_cb(st, st == 0 ? jb->out : NULL, jb->ctx); break;
  case J_LIST:
  case J_SCAN: jb->list_cb(st, st == 0 ? jb->out : NULL, st == 0 ? jb->n_out : 0, jb->ctx); break;
  case J_REMOVE: jb->count_cb(st, st == 0 ? jb->count : 0, jb->ctx); break;
  case J_COUNT: jb->keys_cb(st, st == 0 ? jb->keys : NULL, st == 0 ? jb->n_keys : 0, jb->ctx); break;
  }
}

static void after_work(uv_work_t *w, int uv_status) {
  (void)uv_status;
  jf_backend *jf = w->data;
  job *jb = jf->batch;
  jf->batch = NULL;
  jf->in_deliver = 1;
  while (jb) {
    job *next = jb->next;
    deliver_job(jb);
    job_free(jb);
    jb = next;
  }
  jf->in_deliver = 0;
  jf->working = 0;
  if (jf->free_asked) {
    jf_destroy(jf);
    return;
  }
  uv_mutex_lock(&jf->mu);
  int more = jf->queue != NULL;
  uv_mutex_unlock(&jf->mu);
  if (more) start_work(jf);
}

static void start_work(jf_backend *jf) {
  jf->working = 1;
  jf->work.data = jf;
  if (uv_queue_work(jf->loop, &jf->work, work_cb, after_work) != 0) {
    jf->working = 0;
    kotte__log(KOTTE_LOG_ERROR, "json_file credential backend: uv_queue_work failed");
  }
}

static int submit(jf_backend *jf, job *jb) {
  uv_mutex_lock(&jf->mu);
  if (jf->queue_tail) jf->queue_tail->next = jb;
  else jf->queue = jb;
  jf->queue_tail = jb;
  uv_mutex_unlock(&jf->mu);
  if (!jf->working) start_work(jf);
  return 0;
}

static job *job_new(job_kind kind, void *ctx, const char *user_id, const char *id) {
  job *jb = kotte__calloc(1, sizeof *jb);
  if (jb == NULL) return NULL;
  jb->kind = kind;
  jb->ctx = ctx;
  if (user_id && (jb->user_id = kotte__strdup(user_id)) == NULL) {
    kotte__free(jb);
    return NULL;
  }
  if (id) snprintf(jb->id, sizeof jb->id, "%s", id);
  return jb;
}

/* ---- vtable ------------------------------------------------------------- */

static int jf_insert(kotte_cred_backend *be, const kotte_cred_record *rec,
                     kotte_cred_backend_status_cb cb, void *ctx) {
  job *jb = job_new(J_INSERT, ctx, NULL, NULL);
  if (jb == NULL) return KOTTE_ENOMEM;
  jb->status_cb = cb;
  if (ct_records_copy(rec, 1, &jb->rec) != 0) {
    job_free(jb);
    return KOTTE_ENOMEM;
  }
  return submit(JF(be), jb);
}

static int jf_get(kotte_cred_backend *be, const char *user_id, const char *id,
                  kotte_cred_backend_record_cb cb, void *ctx) {
  job *jb = job_new(J_GET, ctx, user_id, id);
  if (jb == NULL) return KOTTE_ENOMEM;
  jb->record_cb = cb;
  return submit(JF(be), jb);
}

static int jf_list(kotte_cred_backend *be, const char *user_id, kotte_cred_backend_list_cb cb,
                   void *ctx) {
  job *jb = job_new(J_LIST, ctx, user_id, NULL);
  if (jb == NULL) return KOTTE_ENOMEM;
  jb->list_cb = cb;
  return submit(JF(be), jb);
}

static int jf_update(kotte_cred_backend *be, const char *user_id, const char *id,
                     const kotte_cred_patch *patch, kotte_cred_backend_record_cb cb, void *ctx) {
  job *jb = job_new(J_UPDATE, ctx, user_id, id);
  if (jb == NULL) return KOTTE_ENOMEM;
  jb->record_cb = cb;
  if (patch_copy(&jb->patch, patch) != 0) {
    memset(&jb->patch, 0, sizeof jb->patch);
    job_free(jb);
    return KOTTE_ENOMEM;
  }
  return submit(JF(be), jb);
}

static int jf_remove(kotte_cred_backend *be, const char *user_id, const char *id,
                     kotte_cred_backend_count_cb cb, void *ctx) {
  job *jb = job_new(J_REMOVE, ctx, user_id, id);
  if (jb == NULL) return KOTTE_ENOMEM;
  jb->count_cb = cb;
  return submit(JF(be), jb);
}

static int jf_scan_stale(kotte_cred_backend *be, const char *key_id, const char *after_id,
                         unsigned int limit, kotte_cred_backend_list_cb cb, void *ctx) {
  job *jb = job_new(J_SCAN, ctx, NULL, NULL);
  if (jb == NULL) return KOTTE_ENOMEM;
  jb->list_cb = cb;
  snprintf(jb->key_id, sizeof jb->key_id, "%s", key_id);
  snprintf(jb->after, sizeof jb->after, "%s", after_id ? after_id : "");
  jb->limit = limit;
  return submit(JF(be), jb);
}

static int jf_count_keys(kotte_cred_backend *be, kotte_cred_backend_keys_cb cb, void *ctx) {
  job *jb = job_new(J_COUNT, ctx, NULL, NULL);
  if (jb == NULL) return KOTTE_ENOMEM;
  jb->keys_cb = cb;
  return submit(JF(be), jb);
}

static void jf_destroy(jf_backend *jf) {
  ct_clear(&jf->table);
  kotte__journal_close(&jf->journal);
  uv_mutex_destroy(&jf->mu);
  kotte__free(jf);
}

static void jf_free(kotte_cred_backend *be) {
  jf_backend *jf = JF(be);
  /* From inside a delivery (a user freed the store in a callback) or with
   * a batch in flight: finish after it. */
  if (jf->in_deliver || jf->working) {
    jf->free_asked = 1;
    return;
  }
  jf_destroy(jf);
}

static const kotte_cred_backend jf_vtable = {
  .version = KOTTE_CRED_BACKEND_VERSION,
  .name = "json_file",
  .insert = jf_insert,
  .get = jf_get,
  .list = jf_list,
  .update = jf_update,
  .remove = jf_remove,
  .scan_stale = jf_scan_stale,
  .count_keys = jf_count_keys,
  .free = jf_free,
};

int kotte_cred_backend_json_file_new(kotte_cred_backend **out, uv_loop_t *loop,
                                     const char *path) {
  if (out == NULL) return KOTTE_EINVAL;
  *out = NULL;
  if (loop == NULL || path == NULL || path[0] == '\0') return KOTTE_EINVAL;
  if (kotte__init() != 0) return KOTTE_EINTERNAL;
  jf_backend *jf = kotte__calloc(1, sizeof *jf);
  if (jf == NULL) return KOTTE_ENOMEM;
  if (uv_mutex_init(&jf->mu) != 0) {
    kotte__free(jf);
    return KOTTE_EINTERNAL;
  }
  ct_init(&jf->table);
  int rc = cj_open(&jf->journal, path, &jf->table);
  if (rc != 0) {
    uv_mutex_destroy(&jf->mu);
    kotte__free(jf);
    return rc;
  }
  jf->loop = loop;
  jf->base = jf_vtable;
  *out = &jf->base;
  return 0;
}
