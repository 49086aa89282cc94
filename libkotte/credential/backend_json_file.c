/* The json_file credential backend: the shared index kept in step with a
 * journal file. Operations queue up on the loop thread and are applied in
 * batches on the libuv thread pool with one append and one fdatasync each
 * (group commit, core/journal_queue.h); results are delivered on the loop
 * thread in submission order. This file holds what is specific to
 * credentials: the jobs, how each one changes the table and the journal,
 * and its callback. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/journal_queue.h"
#include "credential/credential_journal.h"

typedef enum job_kind { J_INSERT, J_GET, J_LIST, J_UPDATE, J_REMOVE, J_SCAN, J_COUNT, J_CHECK } job_kind;

typedef struct job job;
struct job {
  kotte__journal_job link; /* next, and the result status */
  job_kind kind;
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
  uint64_t count;
  kotte_cred_record *out; /* deep copies: n_out records */
  size_t n_out;
  kotte_cred_key_count *keys; /* key_id strings owned by the job */
  size_t n_keys;
};

#define JOB(j) ((job *)((char *)(j) - offsetof(job, link)))

typedef struct jf_backend {
  kotte_cred_backend base; /* first */
  kotte__journal_queue queue;
  kotte__cred_table table; /* worker only (and the loader before any work) */
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
  kotte__cred_records_free(jb->rec, 1);
  kotte__cred_records_free(jb->out, jb->n_out);
  for (size_t i = 0; i < jb->n_keys; i++) kotte__free((char *)jb->keys[i].key_id);
  kotte__free(jb->keys);
  patch_free(&jb->patch);
  kotte__free(jb->user_id);
  kotte__free(jb);
}

/* Results are copied out of the table: the worker may change it again
 * before the loop thread delivers them. */
static int copy_entry(job *jb, const kotte__cred_entry *e) {
  kotte_cred_record r;
  kotte__cred_table_record(e, &r);
  int rc = kotte__cred_records_copy(&r, 1, &jb->out);
  if (rc == 0) jb->n_out = 1;
  return rc;
}

static int copy_records(job *jb, kotte_cred_record *recs, size_t n, int rc) {
  if (rc == 0) rc = kotte__cred_records_copy(recs, n, &jb->out);
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
static int run_job(void *ctx, kotte__journal_job *j, kotte__journal_buf *b, size_t *lines) {
  job *jb = JOB(j);
  kotte__cred_table *t = &((jf_backend *)ctx)->table;
  kotte__cred_entry *e = NULL;
  switch (jb->kind) {
  case J_INSERT:
    jb->link.status = kotte__cred_table_insert(t, jb->rec, &e);
    if (jb->link.status != 0) return 0;
    kotte__cred_journal_put(b, e);
    (*lines)++;
    return 1;
  case J_GET:
    e = kotte__cred_table_find(t, jb->user_id, jb->id);
    jb->link.status = e ? copy_entry(jb, e) : KOTTE_ENOTFOUND;
    return 0;
  case J_LIST: {
    kotte_cred_record *recs;
    size_t n;
    int rc = kotte__cred_table_list_user(t, jb->user_id, &recs, &n);
    jb->link.status = copy_records(jb, recs, n, rc);
    return 0;
  }
  case J_UPDATE:
    jb->link.status = kotte__cred_table_update(t, jb->user_id, jb->id, &jb->patch, &e);
    if (jb->link.status != 0) return 0;
    kotte__cred_journal_put(b, e);
    (*lines)++;
    jb->link.status = copy_entry(jb, e);
    return 1;
  case J_REMOVE:
    jb->count = (uint64_t)kotte__cred_table_remove(t, jb->user_id, jb->id);
    jb->link.status = 0;
    if (jb->count == 0) return 0;
    kotte__cred_journal_del(b, jb->id);
    (*lines)++;
    return 1;
  case J_SCAN: {
    kotte_cred_record *recs;
    size_t n;
    int rc = kotte__cred_table_scan_stale(t, jb->key_id, jb->after[0] ? jb->after : NULL, jb->limit,
                                          &recs, &n);
    jb->link.status = copy_records(jb, recs, n, rc);
    return 0;
  }
  case J_COUNT: {
    kotte_cred_key_count *counts;
    size_t n;
    int rc = kotte__cred_table_key_counts(t, &counts, &n);
    jb->link.status = copy_keys(jb, counts, n, rc);
    return 0;
  }
  case J_CHECK:
    /* the lock (and so the replay) succeeded; after a failed write, the
     * batch's append of a nop record says whether writing works again */
    jb->link.status = 0;
    return kotte__journal_check(&((jf_backend *)ctx)->journal, b, lines);
  }
  jb->link.status = KOTTE_EINTERNAL;
  return 0;
}

/* ---- delivery ----------------------------------------------------------- */

static void deliver_job(kotte__journal_job *j) {
  job *jb = JOB(j);
  int st = j->status;
  switch (jb->kind) {
  case J_INSERT:
  case J_CHECK: jb->status_cb(st, jb->ctx); break;
  case J_GET:
  case J_UPDATE: jb->record_cb(st, st == 0 ? jb->out : NULL, jb->ctx); break;
  case J_LIST:
  case J_SCAN: jb->list_cb(st, st == 0 ? jb->out : NULL, st == 0 ? jb->n_out : 0, jb->ctx); break;
  case J_REMOVE: jb->count_cb(st, st == 0 ? jb->count : 0, jb->ctx); break;
  case J_COUNT: jb->keys_cb(st, st == 0 ? jb->keys : NULL, st == 0 ? jb->n_keys : 0, jb->ctx); break;
  }
  job_free(jb);
}

static int submit(jf_backend *jf, job *jb) {
  kotte__journal_queue_submit(&jf->queue, &jb->link);
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
  if (kotte__cred_records_copy(rec, 1, &jb->rec) != 0) {
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

static int jf_check(kotte_cred_backend *be, kotte_cred_backend_status_cb cb, void *ctx) {
  job *jb = job_new(J_CHECK, ctx, NULL, NULL);
  if (jb == NULL) return KOTTE_ENOMEM;
  jb->status_cb = cb;
  return submit(JF(be), jb);
}

static void jf_destroy(void *ctx) {
  jf_backend *jf = ctx;
  kotte__cred_table_clear(&jf->table);
  kotte__journal_close(&jf->journal);
  kotte__free(jf);
}

static void jf_free(kotte_cred_backend *be) { kotte__journal_queue_free(&JF(be)->queue); }

/* Zeroes the struct, sets the version (kotte_cred_backend_init() cannot fail
 * for this header's version) and the methods. */
static void jf_init(kotte_cred_backend *be) {
  (void)kotte_cred_backend_init(be, KOTTE_CRED_BACKEND_VERSION);
  be->name = "json_file";
  be->insert = jf_insert;
  be->get = jf_get;
  be->list = jf_list;
  be->update = jf_update;
  be->remove = jf_remove;
  be->scan_stale = jf_scan_stale;
  be->count_keys = jf_count_keys;
  be->free = jf_free;
  be->check = jf_check;
}

static const kotte__journal_queue_ops jf_queue_ops = {
  .run = run_job,
  .deliver = deliver_job,
  .destroy = jf_destroy,
};

int kotte_cred_backend_json_file_new(kotte_cred_backend **out, uv_loop_t *loop,
                                     const char *path) {
  kotte__clear_detail();
  if (out == NULL) return KOTTE_EINVAL;
  *out = NULL;
  if (loop == NULL || path == NULL || path[0] == '\0') return KOTTE_EINVAL;
  if (kotte__init() != 0) return KOTTE_EINTERNAL;
  jf_backend *jf = kotte__calloc(1, sizeof *jf);
  if (jf == NULL) return KOTTE_ENOMEM;
  kotte__cred_table_init(&jf->table);
  int rc = kotte__cred_journal_open(&jf->journal, path, &jf->table);
  if (rc != 0) {
    kotte__free(jf);
    return rc;
  }
  rc = kotte__journal_queue_init(&jf->queue, loop, &jf->journal, &jf_queue_ops, jf);
  if (rc != 0) {
    jf_destroy(jf);
    return rc;
  }
  jf_init(&jf->base);
  *out = &jf->base;
  return 0;
}
