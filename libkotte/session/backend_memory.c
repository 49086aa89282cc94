/* The memory backend: the shared index behind a mutex. Operations complete
 * synchronously; the store defers the callbacks to the next loop turn. */
#include "session/session_table.h"

typedef struct mem_backend {
  kotte_session_backend base; /* first: the store sees only this */
  uv_mutex_t mu;
  kotte__session_table table;
} mem_backend;

#define MEM(be) ((mem_backend *)(be))

/* Answers with the entry (or the error) while the lock is still held, since
 * the record points into the table, then unlocks. */
static int reply_unlock(mem_backend *m, int rc, const kotte__session_entry *e,
                        kotte_session_backend_record_cb cb, void *ctx) {
  kotte_session_record out;
  if (rc == 0) kotte__session_table_record(e, &out);
  cb(rc, rc == 0 ? &out : NULL, ctx);
  uv_mutex_unlock(&m->mu);
  return 0;
}

static int mem_put(kotte_session_backend *be, const kotte_session_record *rec, int replace,
                   kotte_session_backend_record_cb cb, void *ctx) {
  kotte__session_entry *e = NULL;
  uv_mutex_lock(&MEM(be)->mu);
  /* rec->last_activity is "now" for the liveness check of an old record */
  int rc = kotte__session_table_put(&MEM(be)->table, rec, replace, rec->last_activity, &e);
  return reply_unlock(MEM(be), rc, e, cb, ctx);
}

static int mem_get(kotte_session_backend *be, const char *id, kotte_time now, int slide,
                   kotte_session_backend_record_cb cb, void *ctx) {
  kotte__session_entry *e = NULL;
  uv_mutex_lock(&MEM(be)->mu);
  int rc = kotte__session_table_get(&MEM(be)->table, id, now, slide, &e, NULL);
  return reply_unlock(MEM(be), rc, e, cb, ctx);
}

static int mem_get_touch(kotte_session_backend *be, const char *id, kotte_time now,
                         kotte_time touch, kotte_session_backend_record_cb cb, void *ctx) {
  kotte__session_entry *e = NULL;
  int slid;
  uv_mutex_lock(&MEM(be)->mu);
  int rc = kotte__session_table_get_touch(&MEM(be)->table, id, now, touch, &e, NULL, &slid);
  return reply_unlock(MEM(be), rc, e, cb, ctx);
}

static int mem_update(kotte_session_backend *be, const char *id, kotte_time now,
                      const char *patch, size_t patch_len, size_t max,
                      kotte_session_backend_record_cb cb, void *ctx) {
  kotte__session_entry *e = NULL;
  uv_mutex_lock(&MEM(be)->mu);
  int rc = kotte__session_table_update(&MEM(be)->table, id, now, patch, patch_len, max, &e);
  return reply_unlock(MEM(be), rc, e, cb, ctx);
}

static int mem_remove(kotte_session_backend *be, const char *id,
                      kotte_session_backend_count_cb cb, void *ctx) {
  uv_mutex_lock(&MEM(be)->mu);
  int n = kotte__session_table_remove(&MEM(be)->table, id);
  uv_mutex_unlock(&MEM(be)->mu);
  cb(0, (uint64_t)n, ctx);
  return 0;
}

static int mem_rename(kotte_session_backend *be, const char *old_id, const char *new_id,
                      kotte_time now, kotte_session_backend_record_cb cb, void *ctx) {
  kotte__session_entry *e = NULL;
  uv_mutex_lock(&MEM(be)->mu);
  int rc = kotte__session_table_rename(&MEM(be)->table, old_id, new_id, now, &e);
  return reply_unlock(MEM(be), rc, e, cb, ctx);
}

static int mem_list_user(kotte_session_backend *be, const char *user_id, kotte_time now,
                         kotte_session_backend_list_cb cb, void *ctx) {
  kotte_session_record *recs;
  size_t n;
  uv_mutex_lock(&MEM(be)->mu);
  int rc = kotte__session_table_list_user(&MEM(be)->table, user_id, now, &recs, &n);
  cb(rc, recs, n, ctx);
  uv_mutex_unlock(&MEM(be)->mu);
  kotte__free(recs);
  return 0;
}

static int mem_remove_user(kotte_session_backend *be, const char *user_id,
                           kotte_session_backend_count_cb cb, void *ctx) {
  uv_mutex_lock(&MEM(be)->mu);
  uint64_t n = kotte__session_table_remove_user(&MEM(be)->table, user_id);
  uv_mutex_unlock(&MEM(be)->mu);
  cb(0, n, ctx);
  return 0;
}

static int mem_purge(kotte_session_backend *be, kotte_time now, unsigned int limit,
                     kotte_session_backend_count_cb cb, void *ctx) {
  uv_mutex_lock(&MEM(be)->mu);
  uint64_t n = kotte__session_table_purge(&MEM(be)->table, now, limit, NULL, NULL);
  uv_mutex_unlock(&MEM(be)->mu);
  cb(0, n, ctx);
  return 0;
}

static void mem_free(kotte_session_backend *be) {
  kotte__session_table_clear(&MEM(be)->table);
  uv_mutex_destroy(&MEM(be)->mu);
  kotte__free(be);
}

static const kotte_session_backend mem_vtable = {
  .version = KOTTE_SESSION_BACKEND_VERSION,
  .name = "memory",
  .put = mem_put,
  .get = mem_get,
  .update = mem_update,
  .remove = mem_remove,
  .rename = mem_rename,
  .list_user = mem_list_user,
  .remove_user = mem_remove_user,
  .purge = mem_purge,
  .free = mem_free,
  .get_touch = mem_get_touch,
};

int kotte_session_backend_memory_new(kotte_session_backend **out) {
  kotte__clear_detail();
  if (out == NULL) return KOTTE_EINVAL;
  *out = NULL;
  mem_backend *m = kotte__calloc(1, sizeof *m);
  if (m == NULL) return KOTTE_ENOMEM;
  if (uv_mutex_init(&m->mu) != 0) {
    kotte__free(m);
    return KOTTE_EINTERNAL;
  }
  kotte__session_table_init(&m->table);
  m->base = mem_vtable;
  *out = &m->base;
  return 0;
}
