/* The json_file backend: the shared index, kept in step with a journal
 * file. Operations queue up on the loop thread and are applied in batches
 * on the libuv thread pool with one append and one fdatasync each (group
 * commit, core/journal_queue.h); results are delivered on the loop thread
 * in submission order. This file holds what is specific to sessions: the
 * jobs, how each one changes the table and the journal, and its callback.
 *
 * Ids never reach the table or the file: the worker keys both by the id's
 * keyed hash and keeps the id only sealed, for lists (session/session_journal.h);
 * results carry the id the caller passed in (or, for a list, the opened
 * seal). */
#include <sodium.h>
#include <stddef.h>
#include <string.h>

#include "core/journal_queue.h"
#include "session/session_journal.h"

typedef enum job_kind {
  J_PUT, J_GET, J_UPDATE, J_REMOVE, J_RENAME, J_LIST, J_REMOVE_USER, J_PURGE, J_CHECK
} job_kind;

typedef struct job job;
struct job {
  kotte__journal_job link; /* next, and the result status */
  job_kind kind;
  void *ctx;
  kotte_session_backend_record_cb record_cb;
  kotte_session_backend_count_cb count_cb;
  kotte_session_backend_list_cb list_cb;
  kotte_session_backend_status_cb status_cb;
  /* arguments */
  char id[KOTTE_SESSION_ID_LEN + 1];
  char new_id[KOTTE_SESSION_ID_LEN + 1];
  char *user_id;
  char *data; /* put: data; update: patch */
  size_t data_len;
  kotte_session_record rec; /* put: times */
  int flag;                 /* put: replace; get: slide */
  kotte_time touch;         /* get with flag 2: the touch interval (get_touch) */
  kotte_time now;
  size_t max_size;
  unsigned int limit;
  /* results */
  uint64_t count;
  kotte_session_record *out; /* deep copies: `n_out` records */
  size_t n_out;
};

#define JOB(j) ((job *)((char *)(j) - offsetof(job, link)))

typedef struct jf_backend {
  kotte_session_backend base; /* first */
  kotte__journal_queue queue;
  kotte__session_table table; /* worker only (and the loader before any work) */
  kotte__session_journal journal;
  kotte__id_keys keys; /* sealing and opening: worker only */
} jf_backend;

#define JF(be) ((jf_backend *)(be))

/* ---- deep copies for results ------------------------------------------- */

static int copy_out(job *jb, const kotte_session_record *recs, size_t n) {
  jb->out = kotte__calloc(n ? n : 1, sizeof *jb->out);
  if (jb->out == NULL) return KOTTE_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    kotte_session_record *o = &jb->out[i];
    *o = recs[i];
    o->id = kotte__strdup(recs[i].id);
    o->user_id = kotte__strdup(recs[i].user_id);
    o->data = kotte__strndup(recs[i].data, recs[i].data_len);
    jb->n_out = i + 1;
    if (!o->id || !o->user_id || !o->data) return KOTTE_ENOMEM;
  }
  return 0;
}

/* The entry as a result under the caller's id @p token (e->id is its hash). */
static int copy_entry(job *jb, const kotte__session_entry *e, const char *token) {
  kotte_session_record r;
  kotte__session_table_record(e, &r);
  r.id = token;
  return copy_out(jb, &r, 1);
}

/* A user's live records with their ids opened from the seals; a record
 * this key did not seal (another secret wrote it) is not listed. */
static int list_user(jf_backend *jf, job *jb) {
  kotte_session_record *recs;
  size_t n, m = 0;
  int rc = kotte__session_table_list_user(&jf->table, jb->user_id, jb->now, &recs, &n);
  if (rc != 0) return rc;
  char(*ids)[KOTTE_SESSION_ID_LEN + 1] = n ? kotte__calloc(n, sizeof *ids) : NULL;
  if (n && ids == NULL) rc = KOTTE_ENOMEM;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    const kotte__session_entry *e = kotte__session_table_find(&jf->table, recs[i].id);
    if (e == NULL || e->sealed == NULL ||
        kotte__id_open(&jf->keys, e->sealed, KOTTE__ID_SEALED_LEN, e->id, ids[m]) != 0)
      continue;
    recs[m] = recs[i];
    recs[m].id = ids[m];
    m++;
  }
  if (rc == 0) rc = copy_out(jb, recs, m);
  if (ids) {
    sodium_memzero(ids, n * sizeof *ids);
    kotte__free(ids);
  }
  kotte__free(recs);
  return rc;
}

static void job_free(job *jb) {
  for (size_t i = 0; i < jb->n_out; i++) {
    kotte__free((char *)jb->out[i].id);
    kotte__free((char *)jb->out[i].user_id);
    kotte__free((char *)jb->out[i].data);
  }
  kotte__free(jb->out);
  kotte__free(jb->user_id);
  kotte__free(jb->data);
  kotte__free(jb);
}

/* ---- the worker --------------------------------------------------------- */

typedef struct purge_ctx {
  kotte__journal_buf *buf;
  size_t *lines;
} purge_ctx;

static void purge_visit(const kotte__session_entry *e, void *ctx) {
  purge_ctx *p = ctx;
  kotte__session_journal_del(p->buf, e->id);
  (*p->lines)++;
}

/* Applies one job to the table and writes its journal lines into @p b.
 * Returns 1 if the job must be durable before it is acknowledged. */
static int run_job(void *ctx, kotte__journal_job *j, kotte__journal_buf *b, size_t *lines) {
  job *jb = JOB(j);
  jf_backend *jf = ctx;
  kotte__session_table *t = &jf->table;
  kotte__session_entry *e = NULL;
  int removed = 0;
  char hash[KOTTE__ID_HASH_LEN + 1], new_hash[KOTTE__ID_HASH_LEN + 1];
  unsigned char *sealed = NULL;
  if (jb->id[0]) kotte__id_hash(&jf->keys, jb->id, hash);
  switch (jb->kind) {
  case J_PUT: {
    kotte_session_record r = jb->rec;
    r.id = hash;
    r.user_id = jb->user_id;
    r.data = jb->data;
    r.data_len = jb->data_len;
    /* sealed first: nothing may fail once the table has changed */
    if ((sealed = kotte__session_journal_seal(&jf->keys, jb->id, hash)) == NULL) {
      jb->link.status = KOTTE_ENOMEM;
      return 0;
    }
    jb->link.status = kotte__session_table_put(t, &r, jb->flag, jb->now, &e);
    if (jb->link.status != 0) {
      kotte__free(sealed);
      return 0;
    }
    kotte__session_journal_attach(e, &sealed);
    kotte__session_journal_put(b, NULL, e);
    (*lines)++;
    jb->link.status = copy_entry(jb, e, jb->id);
    return 1;
  }
  case J_GET: {
    int slid = jb->flag == 1;
    jb->link.status = jb->flag == 2 ? kotte__session_table_get_touch(t, hash, jb->now, jb->touch,
                                                                     &e, &removed, &slid)
                                    : kotte__session_table_get(t, hash, jb->now, jb->flag, &e,
                                                               &removed);
    if (removed) {
      kotte__session_journal_del(b, hash);
      (*lines)++;
    }
    if (jb->link.status != 0) return 0;
    if (slid) {
      kotte__session_journal_touch(b, e); /* a lost slide only shortens a session: no fsync */
      (*lines)++;
    }
    jb->link.status = copy_entry(jb, e, jb->id);
    return 0;
  }
  case J_UPDATE:
    jb->link.status =
        kotte__session_table_update(t, hash, jb->now, jb->data, jb->data_len, jb->max_size, &e);
    if (jb->link.status != 0) return 0;
    kotte__session_journal_put(b, NULL, e);
    (*lines)++;
    jb->link.status = copy_entry(jb, e, jb->id);
    return 1;
  case J_REMOVE:
    jb->count = (uint64_t)kotte__session_table_remove(t, hash);
    jb->link.status = 0;
    if (jb->count == 0) return 0;
    kotte__session_journal_del(b, hash);
    (*lines)++;
    return 1;
  case J_RENAME:
    kotte__id_hash(&jf->keys, jb->new_id, new_hash);
    if ((sealed = kotte__session_journal_seal(&jf->keys, jb->new_id, new_hash)) == NULL) {
      jb->link.status = KOTTE_ENOMEM;
      return 0;
    }
    jb->link.status = kotte__session_table_rename(t, hash, new_hash, jb->now, &e);
    if (jb->link.status != 0) {
      kotte__free(sealed);
      return 0;
    }
    kotte__session_journal_attach(e, &sealed);
    kotte__session_journal_put(b, hash, e);
    (*lines)++;
    jb->link.status = copy_entry(jb, e, jb->new_id);
    return 1;
  case J_LIST:
    jb->link.status = list_user(jf, jb);
    return 0;
  case J_REMOVE_USER:
    jb->count = kotte__session_table_remove_user(t, jb->user_id);
    jb->link.status = 0;
    if (jb->count == 0) return 0;
    kotte__session_journal_delu(b, jb->user_id);
    (*lines)++;
    return 1;
  case J_PURGE: {
    purge_ctx p = { b, lines };
    jb->count = kotte__session_table_purge(t, jb->now, jb->limit, purge_visit, &p);
    jb->link.status = 0;
    return jb->count > 0;
  }
  case J_CHECK:
    /* the lock (and so the replay) succeeded; after a failed write, the
     * batch's append of a nop record says whether writing works again */
    jb->link.status = 0;
    return kotte__journal_check(&jf->journal.file, b, lines);
  }
  jb->link.status = KOTTE_EINTERNAL;
  return 0;
}

/* ---- delivery ----------------------------------------------------------- */

static void deliver_job(kotte__journal_job *j) {
  job *jb = JOB(j);
  int st = j->status;
  switch (jb->kind) {
  case J_PUT: case J_GET: case J_UPDATE: case J_RENAME:
    jb->record_cb(st, st == 0 ? jb->out : NULL, jb->ctx);
    break;
  case J_LIST:
    jb->list_cb(st, st == 0 ? jb->out : NULL, st == 0 ? jb->n_out : 0, jb->ctx);
    break;
  case J_REMOVE: case J_REMOVE_USER: case J_PURGE:
    jb->count_cb(st, st == 0 ? jb->count : 0, jb->ctx);
    break;
  case J_CHECK:
    jb->status_cb(st, jb->ctx);
    break;
  }
  job_free(jb);
}

static int submit(jf_backend *jf, job *jb) {
  kotte__journal_queue_submit(&jf->queue, &jb->link);
  return 0;
}

static job *job_new(job_kind kind, void *ctx) {
  job *jb = kotte__calloc(1, sizeof *jb);
  if (jb) {
    jb->kind = kind;
    jb->ctx = ctx;
  }
  return jb;
}

/* ---- vtable ------------------------------------------------------------- */

static int jf_put(kotte_session_backend *be, const kotte_session_record *rec, int replace,
                  kotte_session_backend_record_cb cb, void *ctx) {
  job *jb = job_new(J_PUT, ctx);
  if (jb == NULL) return KOTTE_ENOMEM;
  jb->record_cb = cb;
  memcpy(jb->id, rec->id, KOTTE_SESSION_ID_LEN);
  jb->user_id = kotte__strdup(rec->user_id);
  jb->data = kotte__strndup(rec->data, rec->data_len);
  jb->data_len = rec->data_len;
  jb->rec = *rec;
  jb->flag = replace;
  jb->now = rec->last_activity;
  if (!jb->user_id || !jb->data) {
    job_free(jb);
    return KOTTE_ENOMEM;
  }
  return submit(JF(be), jb);
}

static int jf_get(kotte_session_backend *be, const char *id, kotte_time now, int slide,
                  kotte_session_backend_record_cb cb, void *ctx) {
  job *jb = job_new(J_GET, ctx);
  if (jb == NULL) return KOTTE_ENOMEM;
  jb->record_cb = cb;
  memcpy(jb->id, id, KOTTE_SESSION_ID_LEN);
  jb->now = now;
  jb->flag = slide;
  return submit(JF(be), jb);
}

/* A get whose slide is written (unsynced, as every slide) only once the
 * touch interval has passed: inside it the journal does not grow. */
static int jf_get_touch(kotte_session_backend *be, const char *id, kotte_time now,
                        kotte_time touch, kotte_session_backend_record_cb cb, void *ctx) {
  job *jb = job_new(J_GET, ctx);
  if (jb == NULL) return KOTTE_ENOMEM;
  jb->record_cb = cb;
  memcpy(jb->id, id, KOTTE_SESSION_ID_LEN);
  jb->now = now;
  jb->flag = 2;
  jb->touch = touch;
  return submit(JF(be), jb);
}

static int jf_update(kotte_session_backend *be, const char *id, kotte_time now,
                     const char *patch, size_t patch_len, size_t max,
                     kotte_session_backend_record_cb cb, void *ctx) {
  job *jb = job_new(J_UPDATE, ctx);
  if (jb == NULL) return KOTTE_ENOMEM;
  jb->record_cb = cb;
  memcpy(jb->id, id, KOTTE_SESSION_ID_LEN);
  jb->data = kotte__strndup(patch, patch_len);
  jb->data_len = patch_len;
  jb->now = now;
  jb->max_size = max;
  if (jb->data == NULL) {
    job_free(jb);
    return KOTTE_ENOMEM;
  }
  return submit(JF(be), jb);
}

static int jf_remove(kotte_session_backend *be, const char *id,
                     kotte_session_backend_count_cb cb, void *ctx) {
  job *jb = job_new(J_REMOVE, ctx);
  if (jb == NULL) return KOTTE_ENOMEM;
  jb->count_cb = cb;
  memcpy(jb->id, id, KOTTE_SESSION_ID_LEN);
  return submit(JF(be), jb);
}

static int jf_rename(kotte_session_backend *be, const char *old_id, const char *new_id,
                     kotte_time now, kotte_session_backend_record_cb cb, void *ctx) {
  job *jb = job_new(J_RENAME, ctx);
  if (jb == NULL) return KOTTE_ENOMEM;
  jb->record_cb = cb;
  memcpy(jb->id, old_id, KOTTE_SESSION_ID_LEN);
  memcpy(jb->new_id, new_id, KOTTE_SESSION_ID_LEN);
  jb->now = now;
  return submit(JF(be), jb);
}

static int jf_list_user(kotte_session_backend *be, const char *user_id, kotte_time now,
                        kotte_session_backend_list_cb cb, void *ctx) {
  job *jb = job_new(J_LIST, ctx);
  if (jb == NULL) return KOTTE_ENOMEM;
  jb->list_cb = cb;
  jb->user_id = kotte__strdup(user_id);
  jb->now = now;
  if (jb->user_id == NULL) {
    job_free(jb);
    return KOTTE_ENOMEM;
  }
  return submit(JF(be), jb);
}

static int jf_remove_user(kotte_session_backend *be, const char *user_id,
                          kotte_session_backend_count_cb cb, void *ctx) {
  job *jb = job_new(J_REMOVE_USER, ctx);
  if (jb == NULL) return KOTTE_ENOMEM;
  jb->count_cb = cb;
  jb->user_id = kotte__strdup(user_id);
  if (jb->user_id == NULL) {
    job_free(jb);
    return KOTTE_ENOMEM;
  }
  return submit(JF(be), jb);
}

static int jf_purge(kotte_session_backend *be, kotte_time now, unsigned int limit,
                    kotte_session_backend_count_cb cb, void *ctx) {
  job *jb = job_new(J_PURGE, ctx);
  if (jb == NULL) return KOTTE_ENOMEM;
  jb->count_cb = cb;
  jb->now = now;
  jb->limit = limit;
  return submit(JF(be), jb);
}

static int jf_check(kotte_session_backend *be, kotte_session_backend_status_cb cb, void *ctx) {
  job *jb = job_new(J_CHECK, ctx);
  if (jb == NULL) return KOTTE_ENOMEM;
  jb->status_cb = cb;
  return submit(JF(be), jb);
}

static void jf_destroy(void *ctx) {
  jf_backend *jf = ctx;
  kotte__session_table_clear(&jf->table);
  kotte__session_journal_close(&jf->journal);
  kotte__id_keys_free(&jf->keys);
  kotte__free(jf);
}

static void jf_free(kotte_session_backend *be) { kotte__journal_queue_free(&JF(be)->queue); }

static const kotte_session_backend jf_vtable = {
  .version = KOTTE_SESSION_BACKEND_VERSION,
  .name = "json_file",
  .put = jf_put,
  .get = jf_get,
  .update = jf_update,
  .remove = jf_remove,
  .rename = jf_rename,
  .list_user = jf_list_user,
  .remove_user = jf_remove_user,
  .purge = jf_purge,
  .free = jf_free,
  .check = jf_check,
  .get_touch = jf_get_touch,
};

static const kotte__journal_queue_ops jf_queue_ops = {
  .run = run_job,
  .deliver = deliver_job,
  .destroy = jf_destroy,
};

int kotte_session_backend_json_file_new(kotte_session_backend **out, uv_loop_t *loop,
                                        const char *path, const unsigned char *secret,
                                        size_t secret_len) {
  kotte__clear_detail();
  if (out == NULL) return KOTTE_EINVAL;
  *out = NULL;
  if (loop == NULL || path == NULL || path[0] == '\0') return KOTTE_EINVAL;
  if (kotte__init() != 0) return KOTTE_EINTERNAL;
  jf_backend *jf = kotte__calloc(1, sizeof *jf);
  if (jf == NULL) return KOTTE_ENOMEM;
  int rc = kotte__id_keys_init(&jf->keys, secret, secret_len, "json_file");
  if (rc != 0) {
    kotte__free(jf);
    return rc;
  }
  kotte__session_table_init(&jf->table);
  rc = kotte__session_journal_open(&jf->journal, path, &jf->table, &jf->keys);
  if (rc != 0) {
    kotte__id_keys_free(&jf->keys);
    kotte__free(jf);
    return rc;
  }
  rc = kotte__journal_queue_init(&jf->queue, loop, &jf->journal.file, &jf_queue_ops, jf);
  if (rc != 0) {
    jf_destroy(jf);
    return rc;
  }
  jf->base = jf_vtable;
  *out = &jf->base;
  return 0;
}
