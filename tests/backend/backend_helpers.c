/* The store fixtures' shared environment (backend_helpers.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_helpers.h"

const char *bh_postgresql_conninfo(void) {
  const char *ci = getenv("KOTTE_TEST_PG_CONNINFO");
  return ci && *ci ? ci : NULL;
}

typedef struct sql_call {
  int done, status;
} sql_call;

static void on_sql(int status, const kotte_pg_result *res, void *ud) {
  sql_call *c = ud;
  (void)res;
  c->done = 1;
  c->status = status;
}

static void empty_table(bh_env *e, const char *table) {
  char sql[128];
  snprintf(sql, sizeof sql, "DELETE FROM %s", table);
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  sql_call c = { 0, 0 };
  q.sql = sql;
  assert_int_equal(kotte_pg_pool_query(e->pool, &q, on_sql, &c), 0);
  while (!c.done) uv_run(&e->loop, UV_RUN_ONCE);
  assert_int_equal(c.status, 0);
}

unsigned int bh_pg_pipeline_depth = 1;

void bh_env_open(bh_env *e, int kind, const char *file, const char *table) {
  memset(e, 0, sizeof *e);
  assert_int_equal(uv_loop_init(&e->loop), 0);
  e->kind = kind;
  if (kind == BH_POSTGRESQL) {
    kotte_pg_pool_options po = KOTTE_PG_POOL_OPTIONS_INIT;
    po.conninfo = bh_postgresql_conninfo();
    po.min_size = 1;
    po.pipeline_depth = bh_pg_pipeline_depth;
    assert_non_null(po.conninfo);
    assert_int_equal(kotte_pg_pool_new(&e->pool, &e->loop, &po), 0);
    empty_table(e, table);
  }
  if (kind == BH_JSON_FILE) {
    snprintf(e->dir, sizeof e->dir, "/tmp/kotte-test-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->path, sizeof e->path, "%s/%s", e->dir, file);
  }
}

void bh_env_settle(bh_env *e) { uv_run(&e->loop, UV_RUN_DEFAULT); }

void bh_env_close(bh_env *e) {
  if (e->pool) {
    kotte_pg_pool_free(e->pool);
    e->pool = NULL;
    uv_run(&e->loop, UV_RUN_DEFAULT); /* until the pool's handles are closed */
  }
  assert_int_equal(e->inline_callbacks, 0);
  assert_int_equal(uv_loop_close(&e->loop), 0);
  if (e->kind == BH_JSON_FILE) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
    assert_int_equal(system(cmd), 0);
  }
}

int bh_finish(bh_env *e, const int *calls, int rc) {
  e->in_start = 0;
  if (rc != 0) {
    assert_int_equal(*calls, 0); /* a failed start never calls back */
    return rc;
  }
  while (*calls == 0) uv_run(&e->loop, UV_RUN_ONCE);
  uv_run(&e->loop, UV_RUN_NOWAIT); /* a second callback would come now */
  assert_int_equal(*calls, 1);
  return 0;
}
