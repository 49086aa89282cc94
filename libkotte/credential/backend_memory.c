/* The memory credential backend: the shared index, used from the store's
 * loop thread only. Operations complete synchronously; the store defers
 * the callbacks to the next loop turn. Results are copied before the
 * callback, because the store may call the backend again from inside it. */
#include "credential/credential_table.h"

typedef struct mem_backend {
  kotte_cred_backend base; /* first: the store sees only this */
  kotte__cred_table table;
} mem_backend;

#define MEM(be) (&((mem_backend *)(be))->table)

/* Answers with a copy of @p n records (or the error). */
static void answer_list(int rc, const kotte_cred_record *recs, size_t n,
                        kotte_cred_backend_list_cb cb, void *ctx) {
  kotte_cred_record *copy = NULL;
  if (rc == 0) rc = kotte__cred_records_copy(recs, n, &copy);
  cb(rc, rc == 0 ? copy : NULL, rc == 0 ? n : 0, ctx);
  kotte__cred_records_free(copy, rc == 0 ? n : 0);
}

static void answer_entry(int rc, const kotte__cred_entry *e, kotte_cred_backend_record_cb cb,
                         void *ctx) {
  kotte_cred_record r, *copy = NULL;
  if (rc == 0) {
    kotte__cred_table_record(e, &r);
    rc = kotte__cred_records_copy(&r, 1, &copy);
  }
  cb(rc, rc == 0 ? copy : NULL, ctx);
  kotte__cred_records_free(copy, 1);
}

static int mem_insert(kotte_cred_backend *be, const kotte_cred_record *rec,
                      kotte_cred_backend_status_cb cb, void *ctx) {
  cb(kotte__cred_table_insert(MEM(be), rec, NULL), ctx);
  return 0;
}

static int mem_get(kotte_cred_backend *be, const char *user_id, const char *id,
                   kotte_cred_backend_record_cb cb, void *ctx) {
  kotte__cred_entry *e = kotte__cred_table_find(MEM(be), user_id, id);
  answer_entry(e ? 0 : KOTTE_ENOTFOUND, e, cb, ctx);
  return 0;
}

static int mem_list(kotte_cred_backend *be, const char *user_id, kotte_cred_backend_list_cb cb,
                    void *ctx) {
  kotte_cred_record *recs;
  size_t n;
  int rc = kotte__cred_table_list_user(MEM(be), user_id, &recs, &n);
  answer_list(rc, recs, n, cb, ctx);
  kotte__free(recs);
  return 0;
}

static int mem_update(kotte_cred_backend *be, const char *user_id, const char *id,
                      const kotte_cred_patch *patch, kotte_cred_backend_record_cb cb,
                      void *ctx) {
  kotte__cred_entry *e = NULL;
  int rc = kotte__cred_table_update(MEM(be), user_id, id, patch, &e);
  answer_entry(rc, e, cb, ctx);
  return 0;
}

static int mem_remove(kotte_cred_backend *be, const char *user_id, const char *id,
                      kotte_cred_backend_count_cb cb, void *ctx) {
  cb(0, (uint64_t)kotte__cred_table_remove(MEM(be), user_id, id), ctx);
  return 0;
}

static int mem_scan_stale(kotte_cred_backend *be, const char *key_id, const char *after_id,
                          unsigned int limit, kotte_cred_backend_list_cb cb, void *ctx) {
  kotte_cred_record *recs;
  size_t n;
  int rc = kotte__cred_table_scan_stale(MEM(be), key_id, after_id, limit, &recs, &n);
  answer_list(rc, recs, n, cb, ctx);
  kotte__free(recs);
  return 0;
}

static int mem_count_keys(kotte_cred_backend *be, kotte_cred_backend_keys_cb cb, void *ctx) {
  kotte_cred_key_count *counts;
  size_t n;
  int rc = kotte__cred_table_key_counts(MEM(be), &counts, &n);
  cb(rc, rc == 0 ? counts : NULL, rc == 0 ? n : 0, ctx);
  kotte__free(counts);
  return 0;
}

static void mem_free(kotte_cred_backend *be) {
  kotte__cred_table_clear(MEM(be));
  kotte__free(be);
}

/* Zeroes the struct, sets the version (kotte_cred_backend_init() cannot fail
 * for this header's version) and the methods. */
static void mem_init(kotte_cred_backend *be) {
  (void)kotte_cred_backend_init(be, KOTTE_CRED_BACKEND_VERSION);
  be->name = "memory";
  be->insert = mem_insert;
  be->get = mem_get;
  be->list = mem_list;
  be->update = mem_update;
  be->remove = mem_remove;
  be->scan_stale = mem_scan_stale;
  be->count_keys = mem_count_keys;
  be->free = mem_free;
}

int kotte_cred_backend_memory_new(kotte_cred_backend **out) {
  kotte__clear_detail();
  if (out == NULL) return KOTTE_EINVAL;
  *out = NULL;
  mem_backend *m = kotte__calloc(1, sizeof *m);
  if (m == NULL) return KOTTE_ENOMEM;
  mem_init(&m->base);
  kotte__cred_table_init(&m->table);
  *out = &m->base;
  return 0;
}
