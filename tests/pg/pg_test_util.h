/* Helpers for the PostgreSQL suites: the conninfo from tests/pg/pg.sh, a
 * loop-driven "run one query to completion", and the skip rule (exit 77
 * with a notice when no server was given). */
#ifndef KOTTE_TEST_PG_UTIL_H
#define KOTTE_TEST_PG_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <kotte.h>
#include <kotte/pg.h>

#define PG_SKIP 77

/* The application-role conninfo, or exits 77 (ctest: skipped) with a notice. */
static inline const char *pg_conninfo_or_skip(const char *suite) {
  const char *ci = getenv("KOTTE_TEST_PG_CONNINFO");
  if (ci == NULL || *ci == '\0') {
    printf("%s: skipped: KOTTE_TEST_PG_CONNINFO is not set "
           "(tests/suites.d/20-postgresql.sh starts a server and sets it)\n", suite);
    exit(PG_SKIP);
  }
  return ci;
}

static inline const char *pg_env(const char *name) {
  const char *v = getenv(name);
  return v ? v : "";
}

typedef struct pg_call {
  int done;
  int status;
  char sqlstate[6];
  int ntuples;
  char value[512]; /* first row, first column (text) */
  uint64_t affected;
} pg_call;

static inline void pg_call_cb(int status, const kotte_pg_result *res, void *ud) {
  pg_call *c = ud;
  c->done++;
  c->status = status;
  snprintf(c->sqlstate, sizeof c->sqlstate, "%s", kotte_pg_result_sqlstate(res));
  c->ntuples = kotte_pg_result_ntuples(res);
  snprintf(c->value, sizeof c->value, "%s", kotte_pg_result_value(res, 0, 0));
  c->affected = kotte_pg_result_affected(res);
}

static inline void pg_wait(uv_loop_t *loop, const int *done, int n) {
  while (*done < n) uv_run(loop, UV_RUN_ONCE);
}

/* Runs @p sql (text parameters) and waits for its callback. */
static inline int pg_run(kotte_pg_pool *pool, pg_call *c, unsigned int flags, int timeout_ms,
                         const char *sql, int n, const char *const *values) {
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  q.sql = sql;
  q.nparams = n;
  q.values = values;
  q.flags = flags;
  q.timeout_ms = timeout_ms;
  memset(c, 0, sizeof *c);
  int rc = kotte_pg_pool_query(pool, &q, pg_call_cb, c);
  if (rc != 0) return rc;
  assert_int_equal(c->done, 0); /* never inline */
  pg_wait(kotte_pg_pool_loop(pool), &c->done, 1);
  return c->status;
}

/* Frees the pool and runs the loop until everything is released. */
static inline void pg_pool_close(kotte_pg_pool *pool, uv_loop_t *loop) {
  kotte_pg_pool_free(pool);
  uv_run(loop, UV_RUN_DEFAULT);
}

static inline kotte_pg_pool_stats pg_stats(kotte_pg_pool *pool) {
  kotte_pg_pool_stats s;
  memset(&s, 0, sizeof s);
  s.version = KOTTE_PG_STATS_VERSION;
  assert_int_equal(kotte_pg_pool_get_stats(pool, &s), 0);
  return s;
}

#endif
