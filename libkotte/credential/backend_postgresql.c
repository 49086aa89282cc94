/* The PostgreSQL credential backend: table kotte_credentials through a
 * kotte_pg_pool, exactly the one statement per method that
 * kotte/sys/credential_backend.h names, binary parameters and results. It
 * stores the store's sealed blobs as they come and never sees a key. */
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "credential/credential_internal.h"
#include "kotte/pg.h"
#include "kotte/sys/credential_backend.h"
#include "pg/pg_diag.h"
#include "pg/pg_params.h"

#define T_BOOL 16u
#define T_BYTEA 17u
#define T_INT4 23u
#define T_TEXT 25u
#define T_TSTZ 1184u
#define T_UUID 2950u

/* The sealed blobs are in encrypted_username / encrypted_password (named so
 * since migration 0004: a DBA reading the table sees that they are not
 * plaintext). */
#define COLS "id, user_id, name, host, port, database, sslmode, encrypted_username, " \
             "encrypted_password, key_id, created_at, updated_at"

enum { C_INSERT, C_GET, C_LIST, C_UPDATE, C_REMOVE, C_SCAN, C_COUNT_KEYS, C_COUNT };

static const struct {
  const char *sql;
  int n;
  unsigned int types[14];
} STMTS[C_COUNT] = {
  [C_INSERT] = { "INSERT INTO kotte_credentials (" COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
                 "$9, $10, $11, $12)",
                 12, { T_UUID, T_TEXT, T_TEXT, T_TEXT, T_INT4, T_TEXT, T_TEXT, T_BYTEA, T_BYTEA,
                       T_TEXT, T_TSTZ, T_TSTZ } },
  [C_GET] = { "SELECT " COLS " FROM kotte_credentials WHERE id = $1 AND user_id = $2",
              2, { T_UUID, T_TEXT } },
  /* the store never reads blobs from a list: they stay in the table */
  [C_LIST] = { "SELECT id, user_id, name, host, port, database, sslmode, NULL::bytea, NULL::bytea, "
               "key_id, created_at, updated_at FROM kotte_credentials WHERE user_id = $1 "
               "ORDER BY created_at, id",
               1, { T_TEXT } },
  /* a NULL value leaves the column as it is; a NULL expectation checks nothing */
  [C_UPDATE] = { "UPDATE kotte_credentials SET name = coalesce($3, name), host = coalesce($4, host), "
                 "port = coalesce($5, port), database = coalesce($6, database), "
                 "sslmode = coalesce($7, sslmode), "
                 "encrypted_username = coalesce($8, encrypted_username), "
                 "encrypted_password = coalesce($9, encrypted_password), "
                 "key_id = coalesce($10, key_id), updated_at = coalesce($11, updated_at) "
                 "WHERE id = $1 AND user_id = $2 AND ($12::text IS NULL OR key_id = $12) "
                 "AND ($13::bytea IS NULL OR encrypted_username = $13) "
                 "AND ($14::bytea IS NULL OR encrypted_password = $14) RETURNING " COLS,
                 14, { T_UUID, T_TEXT, T_TEXT, T_TEXT, T_INT4, T_TEXT, T_TEXT, T_BYTEA, T_BYTEA,
                       T_TEXT, T_TSTZ, T_TEXT, T_BYTEA, T_BYTEA } },
  [C_REMOVE] = { "DELETE FROM kotte_credentials WHERE id = $1 AND user_id = $2", 2, { T_UUID, T_TEXT } },
  [C_SCAN] = { "SELECT " COLS " FROM kotte_credentials WHERE key_id <> $1 AND ($2::uuid IS NULL "
               "OR id > $2) ORDER BY id LIMIT $3",
               3, { T_TEXT, T_UUID, T_INT4 } },
  [C_COUNT_KEYS] = { "SELECT key_id, count(*) FROM kotte_credentials GROUP BY key_id ORDER BY key_id",
                     0, { 0 } },
};

typedef struct pg_cred_backend {
  kotte_cred_backend base; /* first: the store sees only this */
  kotte_pg_pool *pool;
  kotte_pg_stmt *stmts[C_COUNT];
  int prepared;
} pg_cred_backend;

typedef enum { K_STATUS, K_RECORD, K_LIST, K_COUNT, K_KEYS } kind;

typedef struct op {
  int stmt;
  kind kind;
  int cas;
  void *cb;
  void *ctx;
} op;

/* ---- encoding ---------------------------------------------------------------- */

/* text, or a uuid in its text form (the server parses it) */
static void p_text(kotte__pg_params *p, const char *s) {
  if (s == NULL) {
    kotte__pg_p_null(p);
    return;
  }
  p->values[p->n] = s;
  p->lengths[p->n] = 0;
  p->formats[p->n++] = 0;
}

static void uuid_text(const char *b, char out[KOTTE_CRED_ID_LEN + 1]) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *)b;
  size_t j = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[j++] = '-';
    out[j++] = hex[u[i] >> 4];
    out[j++] = hex[u[i] & 15];
  }
  out[j] = '\0';
}

/* One row (COLS order) as a record; @p id receives the uuid text. */
static void decode(const kotte_pg_result *r, int row, kotte_cred_record *rec,
                   char id[KOTTE_CRED_ID_LEN + 1]) {
  uuid_text(kotte_pg_result_value(r, row, 0), id);
  rec->id = id;
  rec->user_id = kotte_pg_result_value(r, row, 1);
  rec->name = kotte_pg_result_value(r, row, 2);
  rec->host = kotte_pg_result_value(r, row, 3);
  rec->port = (int)kotte__pg_get_be(kotte_pg_result_value(r, row, 4), 4);
  rec->database = kotte_pg_result_value(r, row, 5);
  rec->sslmode = kotte_pg_result_value(r, row, 6);
  for (int k = 0; k < 2; k++) {
    int col = 7 + k;
    const unsigned char *blob = kotte_pg_result_is_null(r, row, col)
                                    ? NULL
                                    : (const unsigned char *)kotte_pg_result_value(r, row, col);
    size_t len = blob ? (size_t)kotte_pg_result_length(r, row, col) : 0;
    if (k == 0) {
      rec->username = blob;
      rec->username_len = len;
    } else {
      rec->password = blob;
      rec->password_len = len;
    }
  }
  rec->key_id = kotte_pg_result_value(r, row, 9);
  rec->created_at = kotte__pg_get_time(kotte_pg_result_value(r, row, 10));
  rec->updated_at = kotte__pg_get_time(kotte_pg_result_value(r, row, 11));
}

/* ---- running statements -------------------------------------------------------- */

static int map_error(int status, const kotte_pg_result *res) {
  if (status != KOTTE_EDB) return kotte__pg_fail(status, "postgresql credential backend", res);
  const char *code = kotte_pg_result_sqlstate(res);
  if (strcmp(code, "23505") == 0) return KOTTE_EEXISTS; /* id, or (user_id, name) */
  if (strcmp(code, "23514") == 0 || strcmp(code, "22P02") == 0) return KOTTE_EINVAL;
  return kotte__pg_fail(status, "postgresql credential backend", res);
}

static void on_result(int status, const kotte_pg_result *res, void *ud) {
  op *o = ud;
  int rc = map_error(status, res);
  switch (o->kind) {
  case K_STATUS:
    ((kotte_cred_backend_status_cb)o->cb)(rc, o->ctx);
    break;
  case K_COUNT:
    ((kotte_cred_backend_count_cb)o->cb)(rc, rc == 0 ? kotte_pg_result_affected(res) : 0, o->ctx);
    break;
  case K_RECORD: {
    kotte_cred_record rec;
    char id[KOTTE_CRED_ID_LEN + 1];
    if (rc == 0 && kotte_pg_result_ntuples(res) == 0)
      rc = o->cas ? KOTTE_ECONFLICT : KOTTE_ENOTFOUND;
    if (rc == 0) decode(res, 0, &rec, id);
    ((kotte_cred_backend_record_cb)o->cb)(rc, rc == 0 ? &rec : NULL, o->ctx);
    break;
  }
  case K_LIST: {
    int n = rc == 0 ? kotte_pg_result_ntuples(res) : 0;
    kotte_cred_record *recs = n ? kotte__calloc((size_t)n, sizeof *recs) : NULL;
    char(*ids)[KOTTE_CRED_ID_LEN + 1] = n ? kotte__calloc((size_t)n, sizeof *ids) : NULL;
    if (n && (recs == NULL || ids == NULL)) rc = KOTTE_ENOMEM;
    for (int i = 0; rc == 0 && i < n; i++) decode(res, i, &recs[i], ids[i]);
    ((kotte_cred_backend_list_cb)o->cb)(rc, rc == 0 ? recs : NULL, rc == 0 ? (size_t)n : 0, o->ctx);
    kotte__free(recs);
    kotte__free(ids);
    break;
  }
  case K_KEYS: {
    int n = rc == 0 ? kotte_pg_result_ntuples(res) : 0;
    kotte_cred_key_count *c = n ? kotte__calloc((size_t)n, sizeof *c) : NULL;
    if (n && c == NULL) rc = KOTTE_ENOMEM;
    for (int i = 0; rc == 0 && i < n; i++) {
      c[i].key_id = kotte_pg_result_value(res, i, 0);
      c[i].count = (uint64_t)kotte__pg_get_be(kotte_pg_result_value(res, i, 1), 8);
    }
    ((kotte_cred_backend_keys_cb)o->cb)(rc, rc == 0 ? c : NULL, rc == 0 ? (size_t)n : 0, o->ctx);
    kotte__free(c);
    break;
  }
  }
  kotte__free(o);
}

static int run(pg_cred_backend *b, int stmt, kind k, int cas, void *cb, void *ctx,
               const kotte__pg_params *p, unsigned int flags) {
  if (!b->prepared) {
    for (int i = 0; i < C_COUNT; i++) {
      int rc = kotte_pg_pool_prepare(b->pool, &b->stmts[i], STMTS[i].sql, STMTS[i].n, STMTS[i].types);
      if (rc != 0) return rc;
    }
    b->prepared = 1;
  }
  op *o = kotte__calloc(1, sizeof *o);
  if (o == NULL) return KOTTE_ENOMEM;
  *o = (op){ stmt, k, cas, cb, ctx };
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  q.stmt = b->stmts[stmt];
  q.nparams = p->n;
  q.values = p->values;
  q.lengths = p->lengths;
  q.formats = p->formats;
  q.flags = flags | KOTTE_PG_BINARY_RESULT;
  int rc = kotte_pg_pool_query(b->pool, &q, on_result, o);
  if (rc != 0) kotte__free(o);
  return rc;
}

#define PGC(be) ((pg_cred_backend *)(be))

/* ---- the vtable ------------------------------------------------------------------ */

static int pgc_insert(kotte_cred_backend *be, const kotte_cred_record *r,
                      kotte_cred_backend_status_cb cb, void *ctx) {
  kotte__pg_params p = { 0 };
  p_text(&p, r->id);
  p_text(&p, r->user_id);
  p_text(&p, r->name);
  p_text(&p, r->host);
  kotte__pg_p_int4(&p, r->port);
  p_text(&p, r->database);
  p_text(&p, r->sslmode);
  kotte__pg_p_bytes(&p, r->username, r->username_len);
  kotte__pg_p_bytes(&p, r->password, r->password_len);
  p_text(&p, r->key_id);
  kotte__pg_p_time(&p, r->created_at);
  kotte__pg_p_time(&p, r->updated_at);
  return run(PGC(be), C_INSERT, K_STATUS, 0, (void *)cb, ctx, &p, 0);
}

static int pgc_get(kotte_cred_backend *be, const char *user_id, const char *id,
                   kotte_cred_backend_record_cb cb, void *ctx) {
  kotte__pg_params p = { 0 };
  p_text(&p, id);
  p_text(&p, user_id);
  return run(PGC(be), C_GET, K_RECORD, 0, (void *)cb, ctx, &p, KOTTE_PG_IDEMPOTENT);
}

static int pgc_list(kotte_cred_backend *be, const char *user_id, kotte_cred_backend_list_cb cb,
                    void *ctx) {
  kotte__pg_params p = { 0 };
  p_text(&p, user_id);
  return run(PGC(be), C_LIST, K_LIST, 0, (void *)cb, ctx, &p, KOTTE_PG_IDEMPOTENT);
}

static int pgc_update(kotte_cred_backend *be, const char *user_id, const char *id,
                      const kotte_cred_patch *x, kotte_cred_backend_record_cb cb, void *ctx) {
  kotte__pg_params p = { 0 };
  unsigned int s = x->set;
  p_text(&p, id);
  p_text(&p, user_id);
  p_text(&p, (s & KOTTE_CRED_SET_NAME) ? x->name : NULL);
  p_text(&p, (s & KOTTE_CRED_SET_HOST) ? x->host : NULL);
  if (s & KOTTE_CRED_SET_PORT) kotte__pg_p_int4(&p, x->port);
  else kotte__pg_p_null(&p);
  p_text(&p, (s & KOTTE_CRED_SET_DATABASE) ? x->database : NULL);
  p_text(&p, (s & KOTTE_CRED_SET_SSLMODE) ? x->sslmode : NULL);
  kotte__pg_p_bytes(&p,
                    (s & KOTTE_CRED_SET_USERNAME)
                        ? (x->username ? x->username : (const unsigned char *)"")
                        : NULL,
                    x->username_len);
  kotte__pg_p_bytes(&p,
                    (s & KOTTE_CRED_SET_PASSWORD)
                        ? (x->password ? x->password : (const unsigned char *)"")
                        : NULL,
                    x->password_len);
  p_text(&p, (s & KOTTE_CRED_SET_KEY_ID) ? x->key_id : NULL);
  if (s & KOTTE_CRED_SET_UPDATED_AT) kotte__pg_p_time(&p, x->updated_at);
  else kotte__pg_p_null(&p);
  p_text(&p, x->expect_key_id);
  kotte__pg_p_bytes(&p, x->expect_username, x->expect_username_len);
  kotte__pg_p_bytes(&p, x->expect_password, x->expect_password_len);
  int cas = x->expect_key_id || x->expect_username || x->expect_password;
  /* the same values twice give the same row; a compare-and-swap does not */
  return run(PGC(be), C_UPDATE, K_RECORD, cas, (void *)cb, ctx, &p, cas ? 0 : KOTTE_PG_IDEMPOTENT);
}

static int pgc_remove(kotte_cred_backend *be, const char *user_id, const char *id,
                      kotte_cred_backend_count_cb cb, void *ctx) {
  kotte__pg_params p = { 0 };
  p_text(&p, id);
  p_text(&p, user_id);
  return run(PGC(be), C_REMOVE, K_COUNT, 0, (void *)cb, ctx, &p, 0);
}

static int pgc_scan_stale(kotte_cred_backend *be, const char *key_id, const char *after_id,
                          unsigned int limit, kotte_cred_backend_list_cb cb, void *ctx) {
  kotte__pg_params p = { 0 };
  p_text(&p, key_id);
  p_text(&p, after_id);
  kotte__pg_p_int4(&p, limit > INT32_MAX ? INT32_MAX : (int64_t)limit);
  return run(PGC(be), C_SCAN, K_LIST, 0, (void *)cb, ctx, &p, KOTTE_PG_IDEMPOTENT);
}

static int pgc_count_keys(kotte_cred_backend *be, kotte_cred_backend_keys_cb cb, void *ctx) {
  kotte__pg_params p = { 0 };
  return run(PGC(be), C_COUNT_KEYS, K_KEYS, 0, (void *)cb, ctx, &p, KOTTE_PG_IDEMPOTENT);
}

static void pgc_free(kotte_cred_backend *be) { kotte__free(be); }

/* Zeroes the struct, sets the version (kotte_cred_backend_init() cannot fail
 * for this header's version) and the methods. */
static void pgc_init(kotte_cred_backend *be) {
  (void)kotte_cred_backend_init(be, KOTTE_CRED_BACKEND_VERSION);
  be->name = "postgresql";
  be->insert = pgc_insert;
  be->get = pgc_get;
  be->list = pgc_list;
  be->update = pgc_update;
  be->remove = pgc_remove;
  be->scan_stale = pgc_scan_stale;
  be->count_keys = pgc_count_keys;
  be->free = pgc_free;
}

kotte_pg_pool *kotte__cred_backend_pg_pool(const kotte_cred_backend *be) {
  return be && be->free == pgc_free ? ((const pg_cred_backend *)be)->pool : NULL;
}

int kotte_cred_backend_postgresql_new(kotte_cred_backend **out, kotte_pg_pool *pool) {
  kotte__clear_detail();
  if (out == NULL) return KOTTE_EINVAL;
  *out = NULL;
  if (pool == NULL) return kotte__fail(KOTTE_EINVAL, "postgresql credential backend: no pool");
  pg_cred_backend *b = kotte__calloc(1, sizeof *b);
  if (b == NULL) return KOTTE_ENOMEM;
  pgc_init(&b->base);
  b->pool = pool;
  *out = &b->base;
  return 0;
}
