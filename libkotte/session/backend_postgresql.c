/* The PostgreSQL session backend: table kotte_sessions through a
 * kotte_pg_pool, one statement (one round trip) per operation that finds
 * its live record, binary parameters and results, no read-modify-write in
 * the client. A miss takes a second statement (S_REAP below).
 *
 * The table never holds a usable token: session_id is a keyed BLAKE2b hash
 * of it (base64url, 43 characters), and token_sealed is the token sealed
 * by libkotte's one sealer (keyring/aead.h; associated data: the hash),
 * only so that list_user can hand ids back. Both keys are derived from the
 * caller's secret (keyring/id_keys.h).
 *
 * Data is jsonb: update merges with `data || patch` inside one UPDATE; the
 * size limit is checked in the same statement on the compact text (jsonb's
 * text form without the blanks it adds). jsonb keeps one copy of each key
 * and orders keys by length, then bytes, so the text that comes back may
 * order keys differently from what was stored.
 *
 * Slides (get, update, put over a live row) are meant to be HOT updates:
 * no statement changes an indexed column except by crossing a 5-minute
 * expiry bucket. expires_bucket (sql/migrations/0003) is a column that
 * PostgreSQL generates from expires_at in the same row write, so no
 * statement here writes it and it cannot disagree with expires_at; only the
 * purge reads it. Needs migrations 0002 (token_sealed) and 0003
 * (expires_bucket); on an older schema the statement that needs them fails
 * with SQLSTATE 42703 and a hint to migrate (kotte_pg_schema_check() tells
 * before any statement runs). */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "kotte/pg.h"
#include "kotte/sys/session_backend.h"
#include "pg/pg_diag.h"
#include "session/session_internal.h"
#include "pg/pg_params.h"
#include "keyring/id_keys.h"
#include "session/pg_session_cache.h"
#include "pg/pg_turn.h"

#define HASH_LEN KOTTE__ID_HASH_LEN
#define SEAL_LEN KOTTE__ID_SEALED_LEN
#define PURGE_LOCK_KEY "7725748207127331585" /* pg_try_advisory_xact_lock key of the sweep */

/* OIDs */
#define T_BYTEA 17u
#define T_INT4 23u
#define T_TEXT 25u
#define T_TSTZ 1184u
#define T_JSONB 3802u
#define T_TEXT_ARRAY 1009u

/* Reads gathered into one S_GET_MANY at the most; more start another. */
#define BATCH_MAX 64

#define COLS "user_id, data, created_at, last_activity, expires_at, max_expires_at, idle_timeout_seconds"
/* explicit casts: a client that does not declare parameter types (pgbench)
 * gets the same plan */
#define SLIDE(now) "least(" now "::timestamptz + idle_timeout_seconds * interval '1 second', max_expires_at)"

enum { S_GET_SLIDE, S_GET, S_GET_MANY, S_REAP, S_PUT_NEW, S_PUT_REPLACE, S_UPDATE, S_REMOVE, S_RENAME, S_LIST,
       S_REMOVE_USER, S_PURGE, S_COUNT };

/* The update's size test on the merged document: jsonb's text has a blank
 * after each ':' and ',', so it is never shorter than the compact text;
 * only a document whose jsonb text is over the limit pays for the regular
 * expression that measures the compact form. */
#define FITS(doc) \
  "CASE WHEN octet_length((" doc ")::text) <= $4 THEN true ELSE octet_length(regexp_replace((" \
  doc ")::text, '(\"(?:[^\"\\\\]|\\\\.)*\")| ', '\\1', 'g')) <= $4 END"

/* What S_UPDATE's first column says. */
enum { UPD_DONE = 1, UPD_DEAD = 2, UPD_TOO_BIG = 3, UPD_CHANGED = 4 };
#define UPDATE_TRIES 4 /* runs of an update that meets a row changing under it */

static const struct {
  const char *sql;
  int n;
  unsigned int types[9];
} STMTS[S_COUNT] = {
  /* The hot path is the bare UPDATE: one index probe, no CTE. A miss (no
   * live row) is rare and takes one more statement, S_REAP, which deletes
   * the record if it is there and dead, so that it stays dead even if the
   * clock steps back. Deleting in a CTE of every get instead cost a second
   * index probe and the CTE's machinery: without it, pgbench runs 8-21 %
   * more gets at 8 clients. */
  [S_GET_SLIDE] = { "UPDATE kotte_sessions SET last_activity = $2, expires_at = " SLIDE("$2")
                    " WHERE session_id = $1 AND expires_at >= $2 RETURNING " COLS,
                    2, { T_TEXT, T_TSTZ } },
  [S_GET] = { "SELECT " COLS " FROM kotte_sessions WHERE session_id = $1 AND expires_at >= $2",
              2, { T_TEXT, T_TSTZ } },
  /* The reads inside the touch interval of one loop turn, when the pool
   * pipelines (backend_postgresql.c, "gathered reads"): one Bind/Execute
   * and one executor run for all, the expiry checked by the client on each
   * row as S_GET checks it in its WHERE. */
  [S_GET_MANY] = { "SELECT " COLS ", session_id FROM kotte_sessions WHERE session_id = ANY($1)",
                   1, { T_TEXT_ARRAY } },
  [S_REAP] = { "DELETE FROM kotte_sessions WHERE session_id = $1 AND expires_at < $2", 2,
               { T_TEXT, T_TSTZ } },
  /* A live record under the id blocks a create; a dead one is overwritten. */
  [S_PUT_NEW] = { "INSERT INTO kotte_sessions AS s (session_id, user_id, data, created_at, "
                  "last_activity, expires_at, max_expires_at, idle_timeout_seconds, token_sealed) "
                  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (session_id) DO UPDATE "
                  "SET user_id = excluded.user_id, data = excluded.data, created_at = "
                  "excluded.created_at, last_activity = excluded.last_activity, expires_at = "
                  "excluded.expires_at, max_expires_at = excluded.max_expires_at, "
                  "idle_timeout_seconds = excluded.idle_timeout_seconds, token_sealed = "
                  "excluded.token_sealed WHERE s.expires_at < excluded.last_activity RETURNING " COLS,
                  9, { T_TEXT, T_TEXT, T_JSONB, T_TSTZ, T_TSTZ, T_TSTZ, T_TSTZ, T_INT4, T_BYTEA } },
  /* Replacing a live record keeps its creation time and absolute expiry. */
  [S_PUT_REPLACE] = { "INSERT INTO kotte_sessions AS s (session_id, user_id, data, created_at, "
                      "last_activity, expires_at, max_expires_at, idle_timeout_seconds, "
                      "token_sealed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                      "ON CONFLICT (session_id) DO UPDATE SET user_id = excluded.user_id, "
                      "data = excluded.data, last_activity = excluded.last_activity, "
                      "idle_timeout_seconds = excluded.idle_timeout_seconds, token_sealed = "
                      "excluded.token_sealed, created_at = CASE WHEN s.expires_at >= "
                      "excluded.last_activity THEN s.created_at ELSE excluded.created_at END, "
                      "max_expires_at = CASE WHEN s.expires_at >= excluded.last_activity THEN "
                      "s.max_expires_at ELSE excluded.max_expires_at END, expires_at = CASE WHEN "
                      "s.expires_at >= excluded.last_activity THEN least(excluded.expires_at, "
                      "s.max_expires_at) ELSE excluded.expires_at END RETURNING " COLS,
                      9, { T_TEXT, T_TEXT, T_JSONB, T_TSTZ, T_TSTZ, T_TSTZ, T_TSTZ, T_INT4, T_BYTEA } },
  /* One UPDATE merges and slides a live row whose merged document fits; it
   * re-checks both on the newest version of a row another transaction
   * changed meanwhile, so no merge is lost. When it wrote nothing, the
   * first column says why, from the statement's snapshot, in the same round
   * trip (the sub-select is an InitPlan: it runs only then): absent (NULL),
   * dead (UPD_DEAD: reaped as after a get), too big (UPD_TOO_BIG), or live
   * and fitting in the snapshot, so the row changed under the UPDATE
   * (UPD_CHANGED: deleted, re-put or grown; nothing was written and the
   * update runs again with a new snapshot). The earlier form locked the row
   * in a CTE (SELECT ... FOR UPDATE, which writes a lock record) before
   * updating it: ~20 % more server work per update. */
  [S_UPDATE] = { "WITH upd AS (UPDATE kotte_sessions SET data = data || $3::jsonb, "
                 "last_activity = $2, expires_at = " SLIDE("$2") " WHERE session_id = $1 AND "
                 "expires_at >= $2 AND " FITS("data || $3::jsonb") " RETURNING " COLS ") "
                 "SELECT CASE WHEN upd.user_id IS NOT NULL THEN 1 ELSE (SELECT CASE WHEN "
                 "expires_at < $2 THEN 2 WHEN " FITS("data || $3::jsonb") " THEN 4 ELSE 3 END "
                 "FROM kotte_sessions WHERE session_id = $1) END AS state, upd.* "
                 "FROM (SELECT 1) AS one LEFT JOIN upd ON true",
                 4, { T_TEXT, T_TSTZ, T_JSONB, T_INT4 } },
  [S_REMOVE] = { "DELETE FROM kotte_sessions WHERE session_id = $1", 1, { T_TEXT } },
  [S_RENAME] = { "WITH gone AS (DELETE FROM kotte_sessions WHERE session_id = $1 AND "
                 "expires_at < $3) UPDATE kotte_sessions SET session_id = $2, token_sealed = $4, last_activity = $3, "
                 "expires_at = " SLIDE("$3") " WHERE session_id = $1 AND expires_at >= $3 "
                 "RETURNING " COLS,
                 4, { T_TEXT, T_TEXT, T_TSTZ, T_BYTEA } },
  [S_LIST] = { "SELECT " COLS ", token_sealed, session_id FROM kotte_sessions WHERE user_id = $1 "
               "AND expires_at >= $2 ORDER BY created_at",
               2, { T_TEXT, T_TSTZ } },
  [S_REMOVE_USER] = { "DELETE FROM kotte_sessions WHERE user_id = $1", 1, { T_TEXT } },
  /* One replica sweeps at a time (the others get 0 and stop); rows other
   * transactions hold are skipped, never waited for. Candidates come from
   * the index on expires_bucket (expires_at floored to 5 minutes; there is
   * no index on expires_at, so that slides are HOT updates): every bucket
   * that began before $1, oldest first. Rows of buckets wholly in the past
   * are all expired; those of the bucket holding $1 are kept out by the
   * exact test on expires_at, which FOR UPDATE also re-checks on a row a
   * slide changed meanwhile. */
  [S_PURGE] = { "WITH sweeper AS (SELECT pg_try_advisory_xact_lock(" PURGE_LOCK_KEY ") AS go), "
                "victims AS (SELECT session_id FROM kotte_sessions WHERE expires_bucket < $1 AND "
                "expires_at < $1 AND (SELECT go FROM sweeper) ORDER BY expires_bucket LIMIT $2 "
                "FOR UPDATE SKIP LOCKED) "
                "DELETE FROM kotte_sessions s USING victims v WHERE s.session_id = v.session_id",
                2, { T_TSTZ, T_INT4 } },
};

typedef struct pg_backend {
  kotte_session_backend base; /* first: the store sees only this */
  kotte_pg_pool *pool;
  kotte_pg_stmt *stmts[S_COUNT];
  int prepared;
  /* The row key and the sealed token (keyring/id_keys.h). The hash key,
   * used by every request, stays read-only: two mprotect calls per request
   * (and their TLB shootdowns) cost more than the whole client side. */
  kotte__id_keys keys;
  int use_cache;
  kotte__pg_cache cache; /* backend_postgresql_cache.c; with use_cache only */
  /* gathered reads: on with a pipelining pool (pipeline_depth > 1) */
  int gather;
  struct op *batch; /* this turn's reads, newest first */
  unsigned int batch_n;
  unsigned int batches_out; /* S_GET_MANY sent and not yet answered */
  kotte__pg_turn_hook turn; /* sends them at the end of the turn */
} pg_backend;

#define PGB(be) ((pg_backend *)(be))

typedef enum { CB_RECORD, CB_COUNT, CB_LIST } cb_kind;

typedef struct op {
  pg_backend *be;
  int stmt;
  cb_kind kind;
  kotte_session_backend_record_cb record_cb;
  kotte_session_backend_count_cb count_cb;
  kotte_session_backend_list_cb list_cb;
  void *ctx;
  char id[KOTTE_SESSION_ID_LEN + 1]; /* the token the record is returned under */
  /* what a follow-up statement (S_REAP, or an update run again) needs */
  char hash[HASH_LEN + 1];
  kotte_time now;
  char *patch; /* update: the jsonb parameter (owned) */
  size_t patch_len;
  size_t max_size;
  unsigned int tries;
  int touching;     /* get_touch: S_GET first, S_GET_SLIDE only once the interval passed */
  kotte_time touch; /* its interval (µs; negative: 1 % of the row's idle timeout) */
  uint64_t seq;     /* the cache's sequence when the read was sent */
  int forget;       /* a write: the cache forgets o->hash when it is done */
  char *forget_user; /* remove_user: the cache forgets this user's records when it is done */
  struct op *batch_next; /* gathered reads */
} op;

static void op_free(op *o) {
  kotte__free(o->patch);
  kotte__free(o->forget_user);
  kotte__free(o);
}

/* ---- keys ----------------------------------------------------------------- */

static void hash_id(pg_backend *b, const char *token, char out[HASH_LEN + 1]) {
  kotte__id_hash(&b->keys, token, out);
}

static void seal_token(pg_backend *b, const char *token, const char *hash, unsigned char out[SEAL_LEN]) {
  kotte__id_seal(&b->keys, token, hash, out);
}

static int open_token(pg_backend *b, const unsigned char *blob, int len, const char *hash,
                      char out[KOTTE_SESSION_ID_LEN + 1]) {
  return len < 0 ? KOTTE_EINTEGRITY : kotte__id_open(&b->keys, blob, (size_t)len, hash, out);
}

/* ---- binary encoding ------------------------------------------------------------- */

/* text as its bytes, in binary format */
static void p_text(kotte__pg_params *p, const char *s) { kotte__pg_p_bytes(p, s, strlen(s)); }

/* jsonb's binary form: a version byte, then the text. */
static char *jsonb_param(const char *text, size_t len) {
  char *buf = kotte__malloc(len + 1);
  if (buf == NULL) return NULL;
  buf[0] = 1;
  memcpy(buf + 1, text, len);
  return buf;
}

/* jsonb text without the blanks jsonb adds after ':' and ','. */
static char *compact(const char *s, size_t len, size_t *out_len) {
  char *out = kotte__malloc(len + 1);
  if (out == NULL) return NULL;
  size_t j = 0;
  int in_str = 0, esc = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = s[i];
    if (in_str) {
      if (esc) esc = 0;
      else if (ch == '\\') esc = 1;
      else if (ch == '"') in_str = 0;
    } else if (ch == '"') {
      in_str = 1;
    } else if (ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r') {
      continue;
    }
    out[j++] = ch;
  }
  out[j] = '\0';
  *out_len = j;
  return out;
}

/* Decodes the record columns starting at @p col of @p row. */
static int decode(const kotte_pg_result *res, int row, int col, kotte_session_record *rec,
                  char **data) {
  int n = kotte_pg_result_length(res, row, col + 1);
  const char *j = kotte_pg_result_value(res, row, col + 1);
  if (n < 1 || j[0] != 1) return KOTTE_EINTERNAL;
  size_t len;
  *data = compact(j + 1, (size_t)n - 1, &len);
  if (*data == NULL) return KOTTE_ENOMEM;
  rec->user_id = kotte_pg_result_value(res, row, col);
  rec->data = *data;
  rec->data_len = len;
  rec->created_at = kotte__pg_get_time(kotte_pg_result_value(res, row, col + 2));
  rec->last_activity = kotte__pg_get_time(kotte_pg_result_value(res, row, col + 3));
  rec->expires_at = kotte__pg_get_time(kotte_pg_result_value(res, row, col + 4));
  rec->max_expires_at = kotte__pg_get_time(kotte_pg_result_value(res, row, col + 5));
  rec->idle_timeout = kotte__pg_get_be(kotte_pg_result_value(res, row, col + 6), 4) * 1000000LL;
  return 0;
}

/* ---- running statements ------------------------------------------------------------- */

static int map_error(int status, const kotte_pg_result *res) {
  if (status != KOTTE_EDB) return kotte__pg_fail(status, "postgresql session backend", res);
  const char *code = kotte_pg_result_sqlstate(res);
  if (strcmp(code, "23505") == 0) return KOTTE_EEXISTS;
  if (strcmp(code, "22P02") == 0 || strcmp(code, "22P05") == 0) return KOTTE_EBADJSON;
  if (strcmp(code, "54000") == 0) return KOTTE_ETOOBIG;
  /* SQLSTATE, PostgreSQL's primary message and a hint (pg_diag.c says why
   * nothing else of the server's report) */
  return kotte__pg_fail(status, "postgresql session backend", res);
}

static int send_op(pg_backend *b, op *o, const kotte__pg_params *p, unsigned int flags);
static int send_update(op *o);

/* After a miss: runs S_REAP for @p o's id, whose callback reports
 * KOTTE_ENOTFOUND. 1 (sent), or KOTTE_ENOTFOUND at once when it could not
 * be sent. The miss is the answer either way; the delete is what keeps a
 * dead record dead if the clock steps back, and a record it leaves behind
 * is dead all the same and goes with the next purge. */
static void left_for_purge(int rc, const char *sqlstate) {
  kotte__log(KOTTE_LOG_WARN, "postgresql session backend: a dead record was left for the purge: "
                             "%s %s", kotte_strerror(rc), sqlstate);
}

static int reap_then_not_found(op *o) {
  kotte__pg_params p = { 0 };
  o->stmt = S_REAP;
  p_text(&p, o->hash);
  kotte__pg_p_time(&p, o->now);
  int rc = send_op(o->be, o, &p, KOTTE_PG_IDEMPOTENT); /* deleting a dead row twice deletes it once */
  if (rc == 0) return 1;
  left_for_purge(rc, "");
  return KOTTE_ENOTFOUND;
}

/* Whether the live row of S_GET in @p res needs its slide written. */
static int touch_due(const op *o, const kotte_pg_result *res, int row) {
  kotte_time last = kotte__pg_get_time(kotte_pg_result_value(res, row, 3));
  kotte_time idle = kotte__pg_get_be(kotte_pg_result_value(res, row, 6), 4) * 1000000LL;
  return kotte_session_touch_due(o->touch, last, idle, o->now);
}

static int send_slide(op *o) {
  kotte__pg_params p = { 0 };
  o->stmt = S_GET_SLIDE;
  p_text(&p, o->hash);
  kotte__pg_p_time(&p, o->now);
  return send_op(o->be, o, &p, KOTTE_PG_IDEMPOTENT);
}

/* The outcome of a statement that returns a record: 0 with the record's
 * column offset in @p col, an error, or 1 when a follow-up statement was
 * sent (the op lives on). */
static int record_outcome(op *o, int rc, const kotte_pg_result *res, int *col) {
  *col = 0;
  if (o->stmt == S_REAP) { /* whatever it deleted, the record was not live */
    if (rc != 0) left_for_purge(rc, kotte_pg_result_sqlstate(res));
    return KOTTE_ENOTFOUND;
  }
  if (rc != 0) return rc;
  switch (o->stmt) {
  case S_GET:
    if (kotte_pg_result_ntuples(res) > 0) {
      if (!o->touching || !touch_due(o, res, 0)) return 0;
      /* the interval passed: slide in a second statement, which answers
       * KOTTE_ENOTFOUND should a delete have come in between (logout wins) */
      o->touching = 0;
      rc = send_slide(o);
      return rc == 0 ? 1 : rc;
    }
    return reap_then_not_found(o); /* absent or dead: delete it if dead */
  case S_GET_SLIDE:
    if (kotte_pg_result_ntuples(res) > 0) return 0;
    return reap_then_not_found(o); /* absent or dead: delete it if dead */
  case S_UPDATE:
    if (kotte_pg_result_ntuples(res) != 1) return KOTTE_EINTERNAL;
    if (kotte_pg_result_is_null(res, 0, 0)) return KOTTE_ENOTFOUND; /* absent */
    switch (kotte__pg_get_be(kotte_pg_result_value(res, 0, 0), 4)) {
    case UPD_DONE:
      *col = 1;
      return 0;
    case UPD_TOO_BIG:
      return KOTTE_ETOOBIG;
    case UPD_DEAD:
      return reap_then_not_found(o);
    case UPD_CHANGED:
      if (++o->tries >= UPDATE_TRIES)
        return kotte__fail(KOTTE_ECONFLICT, "postgresql session backend: the session changed "
                                            "under %u updates in a row", o->tries);
      rc = send_update(o);
      return rc == 0 ? 1 : rc;
    default:
      return KOTTE_EINTERNAL;
    }
  default:
    if (kotte_pg_result_ntuples(res) > 0) return 0;
    return o->stmt == S_PUT_NEW ? KOTTE_EEXISTS : KOTTE_ENOTFOUND;
  }
}

/* Answers a record operation: with the record at @p row, @p col of @p res
 * when @p rc is 0, else with @p rc. Frees @p o. */
static void answer_record(op *o, int rc, const kotte_pg_result *res, int row, int col) {
  pg_backend *b = o->be;
  kotte_session_record rec;
  char *data = NULL;
  memset(&rec, 0, sizeof rec);
  if (rc == 0) rc = decode(res, row, col, &rec, &data);
  if (b->use_cache) {
    if (o->forget) kotte__pg_cache_forget(&b->cache, o->hash);
    else if (rc == 0 && (o->stmt == S_GET || o->stmt == S_GET_SLIDE))
      kotte__pg_cache_fill(&b->cache, o->hash, &rec, o->seq);
  }
  rec.id = o->id;
  o->record_cb(rc, rc == 0 ? &rec : NULL, o->ctx);
  if (data) kotte__free(data);
  op_free(o);
}

static void on_result(int status, const kotte_pg_result *res, void *ud) {
  op *o = ud;
  pg_backend *b = o->be;
  /* a failed S_REAP still answers KOTTE_ENOTFOUND: no error detail for it */
  int rc = o->stmt == S_REAP ? status : map_error(status, res);
  if (o->kind == CB_COUNT) {
    if (b->use_cache && o->forget) kotte__pg_cache_forget(&b->cache, o->hash);
    if (b->use_cache && o->forget_user) kotte__pg_cache_forget_user(&b->cache, o->forget_user);
    o->count_cb(rc, rc == 0 ? kotte_pg_result_affected(res) : 0, o->ctx);
  } else if (o->kind == CB_RECORD) {
    int col;
    rc = record_outcome(o, rc, res, &col);
    if (rc == 1) return; /* a follow-up statement reports */
    answer_record(o, rc, res, 0, col);
    return;
  } else {
    int n = rc == 0 ? kotte_pg_result_ntuples(res) : 0;
    kotte_session_record *recs = n ? kotte__calloc((size_t)n, sizeof *recs) : NULL;
    char **datas = n ? kotte__calloc((size_t)n, sizeof *datas) : NULL;
    char(*ids)[KOTTE_SESSION_ID_LEN + 1] = n ? kotte__calloc((size_t)n, sizeof *ids) : NULL;
    if (n && (recs == NULL || datas == NULL || ids == NULL)) rc = KOTTE_ENOMEM;
    size_t m = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
      const unsigned char *blob = (const unsigned char *)kotte_pg_result_value(res, i, 7);
      if (kotte_pg_result_is_null(res, i, 7) ||
          open_token(b, blob, kotte_pg_result_length(res, i, 7), kotte_pg_result_value(res, i, 8),
                     ids[m]) != 0)
        continue; /* a row this key did not seal: not ours to list */
      if ((rc = decode(res, i, 0, &recs[m], &datas[m])) != 0) break;
      recs[m].id = ids[m];
      m++;
    }
    /* oldest first; ties by id, as the other backends order them */
    for (size_t i = 1; i < m; i++)
      for (size_t k = i; k > 0; k--) {
        kotte_session_record *x = &recs[k - 1], *y = &recs[k];
        if (x->created_at < y->created_at ||
            (x->created_at == y->created_at && strcmp(x->id, y->id) <= 0))
          break;
        kotte_session_record t = *x;
        *x = *y;
        *y = t;
      }
    o->list_cb(rc, rc == 0 ? recs : NULL, rc == 0 ? m : 0, o->ctx);
    for (int i = 0; i < n && datas; i++) kotte__free(datas[i]);
    kotte__free(datas);
    kotte__free(recs);
    if (ids) sodium_memzero(ids, (size_t)n * sizeof *ids);
    kotte__free(ids);
  }
  op_free(o);
}

static int prepare_all(pg_backend *b) {
  if (b->prepared) return 0;
  if (b->use_cache) { /* the listener starts on the loop thread, with the first operation */
    int rc = kotte__pg_cache_start(&b->cache);
    if (rc != 0) return rc;
  }
  for (int i = 0; i < S_COUNT; i++) {
    int rc = kotte_pg_pool_prepare(b->pool, &b->stmts[i], STMTS[i].sql, STMTS[i].n, STMTS[i].types);
    if (rc != 0) return rc;
  }
  b->prepared = 1;
  return 0;
}

/* Submits statement @p stmt with binary results; @p cb gets @p ud. */
static int send_stmt(pg_backend *b, int stmt, const kotte__pg_params *p, unsigned int flags,
                     kotte_pg_result_cb cb, void *ud) {
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  q.stmt = b->stmts[stmt];
  q.nparams = p->n;
  q.values = p->values;
  q.lengths = p->lengths;
  q.formats = p->formats;
  q.flags = flags | KOTTE_PG_BINARY_RESULT;
  return kotte_pg_pool_query(b->pool, &q, cb, ud); /* the pool copies the parameters */
}

/* Submits @p o's statement; on failure @p o is still the caller's. */
static int send_op(pg_backend *b, op *o, const kotte__pg_params *p, unsigned int flags) {
  return send_stmt(b, o->stmt, p, flags, on_result, o);
}

/* Submits @p o's statement; on failure @p o is freed. */
static int run(pg_backend *b, op *o, const kotte__pg_params *p, unsigned int flags) {
  int rc = prepare_all(b);
  if (rc == 0) rc = send_op(b, o, p, flags);
  if (rc != 0) op_free(o);
  return rc;
}

static int send_update(op *o) {
  kotte__pg_params p = { 0 };
  p_text(&p, o->hash);
  kotte__pg_p_time(&p, o->now);
  kotte__pg_p_bytes(&p, o->patch, o->patch_len + 1);
  kotte__pg_p_int4(&p, (int64_t)(o->max_size > INT32_MAX ? INT32_MAX : o->max_size));
  /* Merging the same keys twice gives the same data. */
  return send_op(o->be, o, &p, KOTTE_PG_IDEMPOTENT);
}

static op *op_new(pg_backend *b, int stmt, cb_kind kind, void *cb, void *ctx, const char *id) {
  op *o = kotte__calloc(1, sizeof *o);
  if (o == NULL) return NULL;
  o->be = b;
  o->stmt = stmt;
  o->kind = kind;
  if (kind == CB_RECORD) o->record_cb = (kotte_session_backend_record_cb)cb;
  else if (kind == CB_COUNT) o->count_cb = (kotte_session_backend_count_cb)cb;
  else o->list_cb = (kotte_session_backend_list_cb)cb;
  o->ctx = ctx;
  if (id) memcpy(o->id, id, KOTTE_SESSION_ID_LEN);
  return o;
}

/* A write: the cache forgets the key now (a read under way must not fill
 * it) and again when the write is done (a read that came back meanwhile
 * may have filled it with what the write replaced). */
static void forget_now(pg_backend *b, op *o) {
  if (!b->use_cache) return;
  o->forget = 1;
  kotte__pg_cache_forget(&b->cache, o->hash);
}

/* ---- the vtable ------------------------------------------------------------------------ */

static int pg_put(kotte_session_backend *be, const kotte_session_record *rec, int replace,
                  kotte_session_backend_record_cb cb, void *ctx) {
  pg_backend *b = PGB(be);
  int stmt = replace ? S_PUT_REPLACE : S_PUT_NEW;
  op *o = op_new(b, stmt, CB_RECORD, (void *)cb, ctx, rec->id);
  char *json = jsonb_param(rec->data, rec->data_len);
  if (o == NULL || json == NULL) {
    kotte__free(o);
    kotte__free(json);
    return KOTTE_ENOMEM;
  }
  char *hash = o->hash;
  unsigned char sealed[SEAL_LEN];
  hash_id(b, rec->id, hash);
  seal_token(b, rec->id, hash, sealed);
  forget_now(b, o);
  kotte__pg_params p = { 0 };
  p_text(&p, hash);
  p_text(&p, rec->user_id);
  kotte__pg_p_bytes(&p, json, rec->data_len + 1);
  kotte__pg_p_time(&p, rec->created_at);
  kotte__pg_p_time(&p, rec->last_activity);
  kotte__pg_p_time(&p, rec->expires_at);
  kotte__pg_p_time(&p, rec->max_expires_at);
  kotte__pg_p_int4(&p, rec->idle_timeout / 1000000);
  kotte__pg_p_bytes(&p, sealed, SEAL_LEN);
  /* A replace is idempotent; a create is not (a second run would say "exists"). */
  int rc = run(b, o, &p, replace ? KOTTE_PG_IDEMPOTENT : 0);
  kotte__free(json);
  return rc;
}

/* ---- gathered reads ------------------------------------------------------------------
 *
 * With a pipelining pool, the reads inside the touch interval that one loop
 * turn starts (a server's requests of one turn, a benchmark's gets in
 * flight) go as one S_GET_MANY at the end of the turn, just before the
 * pool syncs the turn's batch: the server binds, plans and runs one
 * statement where it ran one per read, which is most of its work for a
 * read. Each read keeps its own answer: its row, checked against its own
 * clock as S_GET's WHERE checks it; a miss or a dead row is reaped as
 * after S_GET; a slide that is due follows as its own statement. A lone
 * read is a one-id S_GET_MANY. */

static void batch_one(op *o, const kotte_pg_result *res, int row) {
  int rc;
  if (row < 0 || kotte__pg_get_time(kotte_pg_result_value(res, row, 4)) < o->now) {
    rc = reap_then_not_found(o); /* absent or dead: delete it if dead */
    if (rc != 1) answer_record(o, rc, NULL, 0, 0);
    return;
  }
  if (o->touching && touch_due(o, res, row)) {
    o->touching = 0;
    rc = send_slide(o);
    if (rc != 0) answer_record(o, rc, NULL, 0, 0);
    return;
  }
  answer_record(o, 0, res, row, 0);
}

static void answer_all(op *ops, int rc) {
  for (op *o = ops, *next; o; o = next) {
    next = o->batch_next;
    o->batch_next = NULL;
    answer_record(o, rc, NULL, 0, 0);
  }
}

static void on_batch(int status, const kotte_pg_result *res, void *ud) {
  op *ops = ud;
  ops->be->batches_out--;
  int rc = map_error(status, res);
  if (rc != 0) {
    answer_all(ops, rc);
    return;
  }
  int nrows = kotte_pg_result_ntuples(res);
  for (op *o = ops, *next; o; o = next) {
    next = o->batch_next;
    o->batch_next = NULL;
    int row = -1;
    for (int i = 0; i < nrows && row < 0; i++)
      if (strcmp(kotte_pg_result_value(res, i, 7), o->hash) == 0) row = i;
    batch_one(o, res, row);
  }
}

static void send_batch(pg_backend *b, op *ops, unsigned int n) {
  /* The hashes as a text[] in PostgreSQL's binary array form (array_recv:
   * dimensions, null flag, element type, length and lower bound, then each
   * element's length and bytes). Written here because libpq has no array
   * encoder, and a text form would need quoting for nothing: the hashes
   * are base64url. */
  size_t len = 20 + (size_t)n * (4 + HASH_LEN);
  unsigned char *buf = kotte__malloc(len);
  if (buf == NULL) {
    answer_all(ops, KOTTE_ENOMEM);
    return;
  }
  kotte__pg_put_be(buf, 1, 4);
  kotte__pg_put_be(buf + 4, 0, 4);
  kotte__pg_put_be(buf + 8, T_TEXT, 4);
  kotte__pg_put_be(buf + 12, n, 4);
  kotte__pg_put_be(buf + 16, 1, 4);
  unsigned char *w = buf + 20;
  for (op *o = ops; o; o = o->batch_next) {
    kotte__pg_put_be(w, HASH_LEN, 4);
    memcpy(w + 4, o->hash, HASH_LEN);
    w += 4 + HASH_LEN;
  }
  kotte__pg_params p = { 0 };
  kotte__pg_p_bytes(&p, buf, len);
  int rc = send_stmt(b, S_GET_MANY, &p, KOTTE_PG_IDEMPOTENT, on_batch, ops);
  kotte__free(buf);
  if (rc == 0)
    b->batches_out++;
  else
    answer_all(ops, rc);
}

/* Sends this turn's reads. One statement for all would leave the pool's
 * other connections idle while the server runs it and the client waits:
 * they are split over the connections that have no gathered reads out
 * (one statement each), so that the server works on one part while the
 * client reads the answer of another. */
static void flush_batch(void *arg) {
  pg_backend *b = arg;
  op *ops = b->batch;
  unsigned int n = b->batch_n;
  b->batch = NULL;
  b->batch_n = 0;
  unsigned int conns = kotte__pg_max_size(b->pool);
  unsigned int parts = conns > b->batches_out ? conns - b->batches_out : 1;
  if (parts > n) parts = n;
  while (ops) {
    unsigned int take = (n + parts - 1) / parts; /* the rest, evenly */
    op *head = ops, *last = ops;
    for (unsigned int i = 1; i < take; i++) last = last->batch_next;
    ops = last->batch_next;
    last->batch_next = NULL;
    send_batch(b, head, take);
    n -= take;
    parts--;
  }
}

/* Adds @p o (prepared, not yet sent) to this turn's reads. */
static void gather(pg_backend *b, op *o) {
  o->batch_next = b->batch;
  b->batch = o;
  if (++b->batch_n >= BATCH_MAX)
    flush_batch(b);
  else
    kotte__pg_at_turn_end(b->pool, &b->turn);
}

static int pg_get(kotte_session_backend *be, const char *id, kotte_time now, int slide,
                  kotte_session_backend_record_cb cb, void *ctx) {
  pg_backend *b = PGB(be);
  op *o = op_new(b, slide ? S_GET_SLIDE : S_GET, CB_RECORD, (void *)cb, ctx, id);
  if (o == NULL) return KOTTE_ENOMEM;
  hash_id(b, id, o->hash);
  o->now = now;
  kotte__pg_params p = { 0 };
  p_text(&p, o->hash);
  kotte__pg_p_time(&p, now);
  return run(b, o, &p, KOTTE_PG_IDEMPOTENT);
}

/* A read inside the touch interval is one SELECT; a slide due takes a
 * second statement (once per interval per session). */
static int pg_get_touch(kotte_session_backend *be, const char *id, kotte_time now,
                        kotte_time touch, kotte_session_backend_record_cb cb, void *ctx) {
  pg_backend *b = PGB(be);
  op *o = op_new(b, S_GET, CB_RECORD, (void *)cb, ctx, id);
  if (o == NULL) return KOTTE_ENOMEM;
  hash_id(b, id, o->hash);
  o->now = now;
  o->touching = 1;
  o->touch = touch;
  if (b->use_cache && b->prepared) {
    kotte_session_record rec;
    if (kotte__pg_cache_get(&b->cache, o->hash, now, touch, &rec) == 0) {
      rec.id = id; /* answered now: the store defers the callback */
      cb(0, &rec, ctx);
      op_free(o);
      return 0;
    }
    o->seq = b->cache.seq;
  }
  if (b->gather) {
    int rc = prepare_all(b);
    if (rc != 0) {
      op_free(o);
      return rc;
    }
    gather(b, o);
    return 0;
  }
  kotte__pg_params p = { 0 };
  p_text(&p, o->hash);
  kotte__pg_p_time(&p, now);
  return run(b, o, &p, KOTTE_PG_IDEMPOTENT);
}

static int pg_update(kotte_session_backend *be, const char *id, kotte_time now, const char *patch,
                     size_t patch_len, size_t max_size, kotte_session_backend_record_cb cb,
                     void *ctx) {
  pg_backend *b = PGB(be);
  op *o = op_new(b, S_UPDATE, CB_RECORD, (void *)cb, ctx, id);
  if (o == NULL) return KOTTE_ENOMEM;
  o->patch = jsonb_param(patch, patch_len);
  if (o->patch == NULL) {
    op_free(o);
    return KOTTE_ENOMEM;
  }
  hash_id(b, id, o->hash);
  forget_now(b, o);
  o->now = now;
  o->patch_len = patch_len;
  o->max_size = max_size;
  int rc = prepare_all(b);
  if (rc == 0) rc = send_update(o);
  if (rc != 0) op_free(o);
  return rc;
}

static int pg_remove(kotte_session_backend *be, const char *id, kotte_session_backend_count_cb cb,
                     void *ctx) {
  pg_backend *b = PGB(be);
  op *o = op_new(b, S_REMOVE, CB_COUNT, (void *)cb, ctx, NULL);
  if (o == NULL) return KOTTE_ENOMEM;
  hash_id(b, id, o->hash);
  forget_now(b, o);
  kotte__pg_params p = { 0 };
  p_text(&p, o->hash);
  return run(b, o, &p, 0); /* a second run would count 0 */
}

static int pg_rename(kotte_session_backend *be, const char *old_id, const char *new_id,
                     kotte_time now, kotte_session_backend_record_cb cb, void *ctx) {
  pg_backend *b = PGB(be);
  op *o = op_new(b, S_RENAME, CB_RECORD, (void *)cb, ctx, new_id);
  if (o == NULL) return KOTTE_ENOMEM;
  char *old_hash = o->hash, new_hash[HASH_LEN + 1];
  unsigned char sealed[SEAL_LEN];
  hash_id(b, old_id, old_hash);
  hash_id(b, new_id, new_hash);
  forget_now(b, o);
  if (b->use_cache) kotte__pg_cache_forget(&b->cache, new_hash);
  seal_token(b, new_id, new_hash, sealed);
  kotte__pg_params p = { 0 };
  p_text(&p, old_hash);
  p_text(&p, new_hash);
  kotte__pg_p_time(&p, now);
  kotte__pg_p_bytes(&p, sealed, SEAL_LEN);
  return run(b, o, &p, 0);
}

static int pg_list_user(kotte_session_backend *be, const char *user_id, kotte_time now,
                        kotte_session_backend_list_cb cb, void *ctx) {
  pg_backend *b = PGB(be);
  op *o = op_new(b, S_LIST, CB_LIST, (void *)cb, ctx, NULL);
  if (o == NULL) return KOTTE_ENOMEM;
  kotte__pg_params p = { 0 };
  p_text(&p, user_id);
  kotte__pg_p_time(&p, now);
  return run(b, o, &p, KOTTE_PG_IDEMPOTENT);
}

static int pg_remove_user(kotte_session_backend *be, const char *user_id,
                          kotte_session_backend_count_cb cb, void *ctx) {
  pg_backend *b = PGB(be);
  op *o = op_new(b, S_REMOVE_USER, CB_COUNT, (void *)cb, ctx, NULL);
  if (o == NULL) return KOTTE_ENOMEM;
  if (b->use_cache) {
    kotte__pg_cache_forget_user(&b->cache, user_id);
    if ((o->forget_user = kotte__strdup(user_id)) == NULL) {
      op_free(o);
      return KOTTE_ENOMEM;
    }
  }
  kotte__pg_params p = { 0 };
  p_text(&p, user_id);
  return run(b, o, &p, 0);
}

static int pg_purge(kotte_session_backend *be, kotte_time now, unsigned int limit,
                    kotte_session_backend_count_cb cb, void *ctx) {
  pg_backend *b = PGB(be);
  op *o = op_new(b, S_PURGE, CB_COUNT, (void *)cb, ctx, NULL);
  if (o == NULL) return KOTTE_ENOMEM;
  kotte__pg_params p = { 0 };
  kotte__pg_p_time(&p, now);
  kotte__pg_p_int4(&p, limit);
  return run(b, o, &p, KOTTE_PG_IDEMPOTENT);
}

static void pg_free(kotte_session_backend *be) {
  pg_backend *b = PGB(be);
  /* no read can be waiting (the store frees its backend once every
   * operation answered), but the hook may still be listed */
  kotte__pg_turn_hook_cancel(b->pool, &b->turn);
  if (b->use_cache) kotte__pg_cache_free(&b->cache);
  kotte__id_keys_free(&b->keys);
  kotte__free(b);
}

kotte_pg_pool *kotte__session_backend_pg_pool(const kotte_session_backend *be) {
  return be && be->free == pg_free ? PGB(be)->pool : NULL;
}

int kotte_session_backend_postgresql_cache_stats(const kotte_session_backend *be,
                                                 kotte_session_pg_cache_stats *out) {
  if (be == NULL || out == NULL || be->free != pg_free || !PGB(be)->use_cache) return KOTTE_EINVAL;
  if (out->version != KOTTE_SESSION_PG_CACHE_STATS_VERSION) return KOTTE_EVERSION;
  *out = PGB(be)->cache.stats;
  out->live = PGB(be)->cache.live;
  return 0;
}

int kotte_session_backend_postgresql_new(kotte_session_backend **out, kotte_pg_pool *pool,
                                         const unsigned char *secret, size_t secret_len) {
  return kotte_session_backend_postgresql_new_v2(out, pool, secret, secret_len, NULL);
}

int kotte_session_backend_postgresql_new_v2(kotte_session_backend **out, kotte_pg_pool *pool,
                                            const unsigned char *secret, size_t secret_len,
                                            const kotte_session_pg_options *opts) {
  kotte__clear_detail();
  kotte_session_pg_options defaults = KOTTE_SESSION_PG_OPTIONS_INIT;
  if (out == NULL) return KOTTE_EINVAL;
  *out = NULL;
  if (opts == NULL) opts = &defaults;
  if (opts->version != KOTTE_SESSION_PG_OPTIONS_VERSION)
    return kotte__fail(KOTTE_EVERSION, "kotte_session_pg_options.version %u is not supported",
                       opts->version);
  if (pool == NULL)
    return kotte__fail(KOTTE_EINVAL, "postgresql session backend: pool and secret are required");
  if (kotte__init() != 0) return KOTTE_EINTERNAL;
  kotte__id_keys keys;
  int rc = kotte__id_keys_init(&keys, secret, secret_len, "postgresql");
  if (rc != 0) return rc;
  pg_backend *b = kotte__calloc(1, sizeof *b);
  if (b == NULL) {
    kotte__id_keys_free(&keys);
    return KOTTE_ENOMEM;
  }
  b->keys = keys;
  b->pool = pool;
  (void)kotte_session_backend_init(&b->base, KOTTE_SESSION_BACKEND_VERSION);
  b->use_cache = opts->cache != 0;
  if (b->use_cache) kotte__pg_cache_init(&b->cache, pool, opts->cache_max_entries);
  b->gather = kotte__pg_pipeline_depth(pool) > 1;
  b->turn.fn = flush_batch;
  b->turn.arg = b;
  b->base.name = "postgresql";
  b->base.put = pg_put;
  b->base.get = pg_get;
  b->base.update = pg_update;
  b->base.remove = pg_remove;
  b->base.rename = pg_rename;
  b->base.list_user = pg_list_user;
  b->base.remove_user = pg_remove_user;
  b->base.purge = pg_purge;
  b->base.free = pg_free;
  b->base.get_touch = pg_get_touch;
  *out = &b->base;
  return 0;
}
