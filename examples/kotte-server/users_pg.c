/* Users from Kotte's kotte_users table (id bigserial, username citext,
 * password_hash bcrypt "$2b$..."), through libkotte's asynchronous pool.
 * The hash is checked with libxcrypt's crypt_rn() on the thread pool (see
 * users.c); the seed and the `user` subcommand use plain blocking libpq,
 * before any loop runs. */
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sodium.h>

#include <kotte.h>
#include <kotte/pg.h>

#include "log.h"
#include "pgconn.h"
#include "users_internal.h"
#include "users_pg.h"

#define BCRYPT_COST 12 /* Python bcrypt's default, which Kotte uses */

typedef struct pg_impl {
  kotte_pg_pool *pool;
  kotte_pg_stmt *by_name, *by_id, *touch, *ping;
  char dummy[128]; /* a bcrypt hash of random bytes, for unknown users */
} pg_impl;

typedef struct pg_op {
  ks_users *u;
  ks_user_cb cb;
  void *ud;
  char *password;
  char user_id[32];
} pg_op;

int ks_bcrypt_hash(const char *password, char *out, size_t cap) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2b$", BCRYPT_COST, NULL, 0, salt, sizeof salt) == NULL) return -1;
  struct crypt_data *cd = calloc(1, sizeof *cd);
  if (cd == NULL) return -1;
  const char *h = crypt_rn(password, salt, cd, sizeof *cd);
  int rc = -1;
  if (h && h[0] != '*' && strlen(h) < cap) {
    memcpy(out, h, strlen(h) + 1);
    rc = 0;
  }
  sodium_memzero(cd, sizeof *cd);
  free(cd);
  return rc;
}

static void op_free(pg_op *op) {
  if (op->password) {
    sodium_memzero(op->password, strlen(op->password));
    free(op->password);
  }
  free(op);
}

static int submit(ks_users *u, const kotte_pg_stmt *st, int n, const char *const *values,
                  kotte_pg_result_cb cb, void *ud) {
  pg_impl *p = u->impl;
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  q.stmt = st;
  q.nparams = n;
  q.values = values;
  q.flags = KOTTE_PG_IDEMPOTENT;
  int rc = kotte_pg_pool_query(p->pool, &q, cb, ud);
  if (rc == 0) ks__users_hold(u);
  return rc;
}

static void on_touched(int status, const kotte_pg_result *res, void *ud) {
  (void)res;
  ks_users *u = ud;
  if (status != 0 && status != KOTTE_ECANCELED)
    ks_logf(KOTTE_LOG_WARN, "users_touch_failed", "could not record the login time: %s",
            kotte_strerror(status));
  ks__users_release(u);
}

static void on_checked(int result, const char *user_id, const char *username, void *ud) {
  pg_op *op = ud;
  ks_users *u = op->u;
  if (result == KS_USER_OK && !u->closing) {
    const char *v[1] = {user_id};
    /* Kotte records last_login_at; the answer does not wait for it */
    submit(u, ((pg_impl *)u->impl)->touch, 1, v, on_touched, u);
  }
  op->cb(result, user_id, username, op->ud);
  op_free(op);
}

static void on_by_name(int status, const kotte_pg_result *res, void *ud) {
  pg_op *op = ud;
  ks_users *u = op->u;
  pg_impl *p = u->impl;
  if (status != 0) {
    op->cb(status, NULL, NULL, op->ud);
    op_free(op);
  } else if (kotte_pg_result_ntuples(res) == 0) {
    ks__users_check(u, KS_HASH_BCRYPT, p->dummy, 0, NULL, NULL, op->password, on_checked, op);
  } else {
    const char *id = kotte_pg_result_value(res, 0, 0);
    const char *name = kotte_pg_result_value(res, 0, 1);
    const char *hash = kotte_pg_result_value(res, 0, 2);
    if (strncmp(hash, "$2", 2) == 0)
      ks__users_check(u, KS_HASH_BCRYPT, hash, 1, id, name, op->password, on_checked, op);
    else if (strncmp(hash, "$argon2id$", 10) == 0)
      ks__users_check(u, KS_HASH_ARGON2ID, hash, 1, id, name, op->password, on_checked, op);
    else /* not a hash we know: never a match, same cost */
      ks__users_check(u, KS_HASH_BCRYPT, p->dummy, 0, NULL, NULL, op->password, on_checked, op);
  }
  ks__users_release(u);
}

static void pg_verify(ks_users *u, const char *username, const char *password, ks_user_cb cb,
                      void *ud) {
  pg_op *op = calloc(1, sizeof *op);
  if (op == NULL || (op->password = strdup(password)) == NULL) {
    free(op);
    ks__users_defer(u, KOTTE_ENOMEM, NULL, NULL, cb, ud);
    return;
  }
  op->u = u;
  op->cb = cb;
  op->ud = ud;
  const char *v[1] = {username};
  int rc = submit(u, ((pg_impl *)u->impl)->by_name, 1, v, on_by_name, op);
  if (rc != 0) {
    op_free(op);
    ks__users_defer(u, rc, NULL, NULL, cb, ud);
  }
}

static void on_by_id(int status, const kotte_pg_result *res, void *ud) {
  pg_op *op = ud;
  if (status != 0)
    op->cb(status, NULL, NULL, op->ud);
  else if (kotte_pg_result_ntuples(res) == 0)
    op->cb(KS_USER_DENIED, NULL, NULL, op->ud);
  else
    op->cb(KS_USER_OK, kotte_pg_result_value(res, 0, 0), kotte_pg_result_value(res, 0, 1), op->ud);
  ks_users *u = op->u;
  op_free(op);
  ks__users_release(u);
}

static void pg_lookup(ks_users *u, const char *user_id, ks_user_cb cb, void *ud) {
  /* ids are bigserial numbers; anything else (a file user's name) is no user here */
  size_t n = strlen(user_id);
  if (n == 0 || n > 19 || strspn(user_id, "0123456789") != n) {
    ks__users_defer(u, KS_USER_DENIED, NULL, NULL, cb, ud);
    return;
  }
  pg_op *op = calloc(1, sizeof *op);
  if (op == NULL) {
    ks__users_defer(u, KOTTE_ENOMEM, NULL, NULL, cb, ud);
    return;
  }
  op->u = u;
  op->cb = cb;
  op->ud = ud;
  memcpy(op->user_id, user_id, n + 1);
  const char *v[1] = {op->user_id};
  int rc = submit(u, ((pg_impl *)u->impl)->by_id, 1, v, on_by_id, op);
  if (rc != 0) {
    op_free(op);
    ks__users_defer(u, rc, NULL, NULL, cb, ud);
  }
}

static void on_ping(int status, const kotte_pg_result *res, void *ud) {
  (void)res;
  pg_op *op = ud;
  ks_users *u = op->u;
  op->cb(status, NULL, NULL, op->ud);
  op_free(op);
  ks__users_release(u);
}

static void pg_ping(ks_users *u, ks_user_cb cb, void *ud) {
  pg_op *op = calloc(1, sizeof *op);
  if (op == NULL) {
    ks__users_defer(u, KOTTE_ENOMEM, NULL, NULL, cb, ud);
    return;
  }
  op->u = u;
  op->cb = cb;
  op->ud = ud;
  int rc = submit(u, ((pg_impl *)u->impl)->ping, 0, NULL, on_ping, op);
  if (rc != 0) {
    op_free(op);
    ks__users_defer(u, rc, NULL, NULL, cb, ud);
  }
}

static void pg_free(ks_users *u) { free(u->impl); }

static const ks_users_ops pg_ops = {"postgresql", pg_verify, pg_lookup, pg_ping, pg_free};

/* ---- blocking: seed and the `user` subcommand ----------------------------- */

static PGconn *connect_blocking(const ks_config *cfg, char *err, size_t errlen) {
  char *ci = ks_pg_conninfo(cfg);
  if (ci == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  PGconn *c = PQconnectdb(ci);
  ks_pg_conninfo_free(ci);
  if (c == NULL || PQstatus(c) != CONNECTION_OK) {
    /* libpq's message names host and port, never the password */
    snprintf(err, errlen, "cannot connect to PostgreSQL: %s",
             c ? PQerrorMessage(c) : "out of memory");
    size_t n = strlen(err);
    while (n && (err[n - 1] == '\n' || err[n - 1] == ' ')) err[--n] = '\0';
    PQfinish(c);
    return NULL;
  }
  return c;
}

static int exec_ok(PGconn *c, PGresult *r, const char *what, char *err, size_t errlen) {
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return 0;
  const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  snprintf(err, errlen, "%s failed (SQLSTATE %s): %s", what, state ? state : "?",
           PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
               ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
               : PQerrorMessage(c));
  return -1;
}

int ks_users_pg_put(const ks_config *cfg, const char *username, const char *password, int replace,
                    char *err, size_t errlen) {
  char hash[128];
  if (ks_bcrypt_hash(password, hash, sizeof hash) != 0) {
    snprintf(err, errlen, "bcrypt hashing failed");
    return -1;
  }
  PGconn *c = connect_blocking(cfg, err, errlen);
  if (c == NULL) return -1;
  const char *v[2] = {username, hash};
  PGresult *r =
      PQexecParams(c,
                   replace ? "UPDATE kotte_users SET password_hash = $2 WHERE username = $1"
                           : "INSERT INTO kotte_users (username, password_hash) VALUES ($1, $2) "
                             "ON CONFLICT (username) DO NOTHING",
                   2, NULL, v, NULL, NULL, 0);
  int rc = exec_ok(c, r, replace ? "UPDATE kotte_users" : "INSERT INTO kotte_users", err, errlen);
  if (rc == 0 && strcmp(PQcmdTuples(r), "1") != 0) {
    snprintf(err, errlen, replace ? "no user %s" : "user %s already exists", username);
    rc = -1;
  }
  PQclear(r);
  PQfinish(c);
  sodium_memzero(hash, sizeof hash);
  return rc;
}

int ks_users_pg_list(const ks_config *cfg, FILE *out, char *err, size_t errlen) {
  PGconn *c = connect_blocking(cfg, err, errlen);
  if (c == NULL) return -1;
  PGresult *r = PQexec(c, "SELECT id, username FROM kotte_users ORDER BY id");
  int rc = exec_ok(c, r, "SELECT FROM kotte_users", err, errlen);
  for (int i = 0; rc == 0 && i < PQntuples(r); i++)
    fprintf(out, "%s\t%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
  PQclear(r);
  PQfinish(c);
  return rc;
}

/* Kotte's seed_admin(): when kotte_users is empty, the user admin with
 * ADMIN_PASSWORD (default "admin"; refused in production). A database that
 * does not answer is only logged: readiness reports it. */
static void seed_admin(const ks_config *cfg) {
  char err[512];
  PGconn *c = connect_blocking(cfg, err, sizeof err);
  if (c == NULL) {
    ks_log(KOTTE_LOG_WARN, "users_seed_skipped", NULL, err);
    return;
  }
  PGresult *r = PQexec(c, "SELECT count(*) FROM kotte_users");
  if (exec_ok(c, r, "SELECT count(*) FROM kotte_users", err, sizeof err) != 0) {
    ks_log(KOTTE_LOG_WARN, "users_seed_skipped", NULL, err);
  } else if (strcmp(PQgetvalue(r, 0, 0), "0") == 0) {
    const char *pw = getenv("ADMIN_PASSWORD");
    if ((pw == NULL || *pw == '\0') && cfg->production) {
      ks_logf(KOTTE_LOG_ERROR, "users_seed_skipped",
              "kotte_users is empty and ENVIRONMENT=production refuses the default admin "
              "password: set ADMIN_PASSWORD or add users with `kotte-server user add`");
    } else {
      if (pw == NULL || *pw == '\0') {
        pw = "admin";
        ks_logf(KOTTE_LOG_WARN, "default_admin_password",
                "default admin password in use; set ADMIN_PASSWORD");
      }
      PQfinish(c);
      c = NULL;
      if (ks_users_pg_put(cfg, "admin", pw, 0, err, sizeof err) == 0)
        ks_logf(KOTTE_LOG_INFO, "users_seeded", "seeded the user admin into kotte_users");
      else
        ks_log(KOTTE_LOG_WARN, "users_seed_skipped", NULL, err);
    }
  }
  PQclear(r);
  PQfinish(c);
}

int ks_users_open_pg(ks_users **out, uv_loop_t *loop, kotte_pg_pool *pool, const ks_config *cfg,
                     char *err, size_t errlen) {
  *out = NULL;
  seed_admin(cfg);
  ks_users *u = calloc(1, sizeof *u);
  pg_impl *p = calloc(1, sizeof *p);
  if (u == NULL || p == NULL) goto oom;
  p->pool = pool;
  u->impl = p;
  unsigned char rnd[16];
  char pw[33];
  randombytes_buf(rnd, sizeof rnd);
  sodium_bin2hex(pw, sizeof pw, rnd, sizeof rnd);
  if (ks_bcrypt_hash(pw, p->dummy, sizeof p->dummy) != 0) goto oom;
  if (kotte_pg_pool_prepare(pool, &p->by_name,
                            "SELECT id::text, username::text, password_hash FROM kotte_users "
                            "WHERE username = $1",
                            1, NULL) != 0 ||
      kotte_pg_pool_prepare(
          pool, &p->by_id, "SELECT id::text, username::text FROM kotte_users WHERE id = $1::bigint",
          1, NULL) != 0 ||
      kotte_pg_pool_prepare(pool, &p->touch,
                            "UPDATE kotte_users SET last_login_at = now() WHERE id = $1::bigint", 1,
                            NULL) != 0 ||
      kotte_pg_pool_prepare(pool, &p->ping, "SELECT 1", 0, NULL) != 0) {
    snprintf(err, errlen, "could not prepare the users statements");
    free(p);
    free(u);
    return -1;
  }
  if (ks__users_init(u, loop, &pg_ops, cfg->max_password_checks) != 0) goto oom;
  *out = u;
  return 0;
oom:
  free(p);
  free(u);
  snprintf(err, errlen, "out of memory");
  return -1;
}
