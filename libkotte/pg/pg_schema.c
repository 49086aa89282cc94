/* The schema check: is the database's libkotte schema (the newest version
 * recorded in kotte_schema_migrations) at least the one this libkotte
 * needs? Asked once when a store opens, so that a database that was never
 * migrated, or migrated by an older libkotte, is named as such with its
 * remedy, instead of failing a user's first login with a bare SQLSTATE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "pg/pg_diag.h"
#include "pg/pg_internal.h"

typedef struct check {
  kotte_pg_schema_cb cb;
  void *userdata;
} check;

/* Writes the detail of a missing or older schema; returns KOTTE_ESCHEMA. */
static int refuse(int found) {
  if (found <= 0)
    return kotte__fail(KOTTE_ESCHEMA,
                       "the database has no libkotte schema (kotte_schema_migrations not found: "
                       "version found none, version needed %d): " KOTTE__PG_MIGRATE_HINT,
                       KOTTE_PG_SCHEMA_VERSION);
  return kotte__fail(KOTTE_ESCHEMA,
                     "the database schema is at version %d, this libkotte needs version %d: "
                     KOTTE__PG_MIGRATE_HINT, found, KOTTE_PG_SCHEMA_VERSION);
}

static void on_version(int status, const kotte_pg_result *res, void *ud) {
  check c = *(check *)ud;
  kotte__free(ud);
  int found = -1;
  if (status == KOTTE_EDB && strcmp(kotte_pg_result_sqlstate(res), "42P01") == 0) {
    found = 0; /* no kotte_schema_migrations at all */
    status = refuse(found);
  } else if (status != 0) {
    status = kotte__pg_fail(status, "libkotte schema check", res);
  } else {
    found = atoi(kotte_pg_result_value(res, 0, 0));
    status = found >= KOTTE_PG_SCHEMA_VERSION ? 0 : refuse(found);
  }
  if (status == 0) kotte__clear_detail();
  c.cb(status, found, c.userdata);
}

int kotte_pg_schema_check(kotte_pg_pool *pool, kotte_pg_schema_cb cb, void *userdata) {
  kotte__clear_detail();
  if (pool == NULL || cb == NULL) return KOTTE_EINVAL;
  check *c = kotte__malloc(sizeof *c);
  if (c == NULL) return KOTTE_ENOMEM;
  c->cb = cb;
  c->userdata = userdata;
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  q.sql = "SELECT coalesce(max(version), 0) FROM kotte_schema_migrations";
  q.flags = KOTTE_PG_IDEMPOTENT;
  int rc = kotte_pg_pool_query(pool, &q, on_version, c);
  if (rc != 0) kotte__free(c);
  return rc;
}

/* ---- blocking ------------------------------------------------------------ */

typedef struct schema_call {
  kotte__sync base; /* first */
  kotte_pg_pool *pool;
} schema_call;

static void on_sync_version(int status, int version, void *ud) {
  kotte__sync_complete(ud, status, NULL, version < 0 ? 0 : (uint64_t)version);
}

static int start(kotte__sync *s) {
  return kotte_pg_schema_check(((schema_call *)s)->pool, on_sync_version, s);
}

int kotte_pg_schema_check_sync(kotte_pg_pool *pool, int *version, int timeout_ms) {
  kotte__clear_detail();
  if (version) *version = -1;
  if (pool == NULL) return KOTTE_EINVAL;
  if (pool->rt == NULL)
    return kotte__fail(KOTTE_EINVAL, "kotte_pg_schema_check_sync: the pool was not opened on a "
                                     "runtime (kotte_pg_pool_open)");
  schema_call *c = kotte__sync_new(sizeof *c, start);
  if (c == NULL) return KOTTE_ENOMEM;
  c->pool = pool;
  uint64_t found = 0;
  int rc = kotte__sync_run(pool->rt, &c->base, timeout_ms, NULL, &found);
  if (version && (rc == 0 || rc == KOTTE_ESCHEMA)) *version = (int)found;
  return rc;
}

int kotte__pg_schema_verify(kotte_pg_pool *pool) {
  if (pool == NULL || pool->rt == NULL) return 0;
  int rc = kotte_pg_schema_check_sync(pool, NULL, -1);
  if (rc == KOTTE_ESCHEMA) return rc;
  kotte__clear_detail();
  return 0;
}
