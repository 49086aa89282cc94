#include "session_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static kotte_time test_clock(void *ctx) { return ((fx *)ctx)->now; }

int64_t fx_touch_interval_s = KOTTE_SESSION_TOUCH_DEFAULT;
int fx_pg_cache = 0;

int fx_variant_reset(void **state) {
  (void)state;
  fx_touch_interval_s = KOTTE_SESSION_TOUCH_DEFAULT;
  fx_pg_cache = 0;
  return 0;
}
int fx_variant_touch0(void **state) {
  fx_variant_reset(state);
  fx_touch_interval_s = 0;
  return 0;
}
int fx_variant_cache(void **state) {
  fx_variant_reset(state);
  fx_pg_cache = 1;
  return 0;
}

/* The key every PostgreSQL and json_file backend of the suite derives its
 * keys from. */
static const unsigned char pg_secret[] = "conformance-suite-session-secret";

const char *fx_postgresql_conninfo(void) {
  const char *ci = getenv("KOTTE_TEST_PG_CONNINFO");
  return ci && *ci ? ci : NULL;
}

kotte_session_backend *fx_backend(fx *f) {
  kotte_session_backend *be = NULL;
  int rc = f->kind == FX_MEMORY   ? kotte_session_backend_memory_new(&be)
           : f->kind == FX_POSTGRESQL
               ? kotte_session_backend_postgresql_new(&be, f->pool, pg_secret, sizeof pg_secret - 1)
               : kotte_session_backend_json_file_new(&be, &f->loop, f->path, pg_secret,
                                                     sizeof pg_secret - 1);
  assert_int_equal(rc, 0);
  return be;
}

static void close_store(fx *f) {
  if (f->store == NULL) return;
  kotte_session_store_free(f->store);
  f->store = NULL;
  uv_run(&f->loop, UV_RUN_DEFAULT); /* until the store's handles are closed */
}

void fx_reopen(fx *f) {
  close_store(f);
  kotte_session_backend *be = fx_backend(f);
  assert_int_equal(kotte_session_store_new(&f->store, &f->loop, be, &f->opts), 0);
}

typedef struct sql_call {
  int done, status;
} sql_call;

static void on_sql(int status, const kotte_pg_result *res, void *ud) {
  sql_call *c = ud;
  c->done = 1;
  c->status = status;
}

/* Each test starts from an empty table (kotte_app may DELETE, not TRUNCATE). */
static void empty_table(fx *f) {
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  sql_call c = { 0, 0 };
  q.sql = "DELETE FROM kotte_sessions";
  assert_int_equal(kotte_pg_pool_query(f->pool, &q, on_sql, &c), 0);
  while (!c.done) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(c.status, 0);
}

static int setup(void **state, int kind) {
  fx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->kind = kind;
  f->now = 1700000000LL * SEC;
  kotte_session_options o = KOTTE_SESSION_OPTIONS_INIT;
  o.clock = test_clock;
  o.clock_ctx = f;
  o.touch_interval_s = fx_touch_interval_s;
  f->opts = o;
  if (kind == FX_POSTGRESQL) {
    kotte_pg_pool_options po = KOTTE_PG_POOL_OPTIONS_INIT;
    po.conninfo = fx_postgresql_conninfo();
    po.min_size = 1;
    assert_non_null(po.conninfo);
    assert_int_equal(kotte_pg_pool_new(&f->pool, &f->loop, &po), 0);
    empty_table(f);
  }
  if (kind == FX_JSON_FILE) {
    snprintf(f->dir, sizeof f->dir, "/tmp/kotte-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/sessions.journal", f->dir);
  }
  fx_reopen(f);
  *state = f;
  return 0;
}

int fx_setup_memory(void **state) { return setup(state, FX_MEMORY); }
int fx_setup_json_file(void **state) { return setup(state, FX_JSON_FILE); }
int fx_setup_postgresql(void **state) { return setup(state, FX_POSTGRESQL); }

int fx_teardown(void **state) {
  fx *f = *state;
  close_store(f);
  if (f->pool) {
    kotte_pg_pool_free(f->pool);
    f->pool = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT); /* until the pool's handles are closed */
  }
  assert_int_equal(f->inline_callbacks, 0);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  if (f->kind == FX_JSON_FILE) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
  }
  free(f);
  return 0;
}

/* One pending call's results. */
typedef struct call {
  fx *f;
  int calls;
  int status;
  kotte_session *session;
  kotte_session_list *list;
  uint64_t count;
} call;

static void seen(call *c) {
  if (c->f->in_start) c->f->inline_callbacks++;
  c->calls++;
}
static void on_session(int st, kotte_session *s, void *ud) {
  call *c = ud;
  seen(c);
  c->status = st;
  c->session = s;
}
static void on_status(int st, void *ud) {
  call *c = ud;
  seen(c);
  c->status = st;
}
static void on_count(int st, uint64_t n, void *ud) {
  call *c = ud;
  seen(c);
  c->status = st;
  c->count = n;
}
static void on_list(int st, kotte_session_list *l, void *ud) {
  call *c = ud;
  seen(c);
  c->status = st;
  c->list = l;
}

/* Waits for the single callback; the start call returned @p rc. */
static int finish(fx *f, call *c, int rc) {
  f->in_start = 0;
  if (rc != 0) {
    assert_int_equal(c->calls, 0); /* a failed start never calls back */
    return rc;
  }
  while (c->calls == 0) uv_run(&f->loop, UV_RUN_ONCE);
  /* Let anything stray run, then check there was exactly one callback. */
  uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(c->calls, 1);
  return c->status;
}

#define START(f) ((f)->in_start = 1)

static int session_result(call *c, int rc, kotte_session **out) {
  if (out) *out = c->session;
  else kotte_session_free(c->session);
  if (rc != 0) assert_null(c->session);
  return rc;
}

int fx_create(fx *f, const char *user, const char *data, kotte_session **out) {
  call c = { .f = f };
  START(f);
  int rc = finish(f, &c, kotte_session_create(f->store, user, data, on_session, &c));
  return session_result(&c, rc, out);
}

int fx_get(fx *f, const char *id, kotte_session **out) {
  call c = { .f = f };
  START(f);
  int rc = finish(f, &c, kotte_session_get(f->store, id, on_session, &c));
  return session_result(&c, rc, out);
}

int fx_update(fx *f, const char *id, const char *patch, kotte_session **out) {
  call c = { .f = f };
  START(f);
  int rc = finish(f, &c, kotte_session_update(f->store, id, patch, on_session, &c));
  return session_result(&c, rc, out);
}

int fx_set(fx *f, const char *id, const char *user, const char *data, int64_t ttl,
           kotte_session **out) {
  call c = { .f = f };
  START(f);
  int rc = finish(f, &c, kotte_session_set(f->store, id, user, data, ttl, on_session, &c));
  return session_result(&c, rc, out);
}

int fx_delete(fx *f, const char *id) {
  call c = { .f = f };
  START(f);
  return finish(f, &c, kotte_session_delete(f->store, id, on_status, &c));
}

int fx_check(fx *f) {
  call c = { .f = f };
  START(f);
  return finish(f, &c, kotte_session_store_check(f->store, on_status, &c));
}

int fx_touch(fx *f, const char *id) {
  call c = { .f = f };
  START(f);
  return finish(f, &c, kotte_session_touch(f->store, id, on_status, &c));
}

int fx_regenerate(fx *f, const char *id, kotte_session **out) {
  call c = { .f = f };
  START(f);
  int rc = finish(f, &c, kotte_session_regenerate(f->store, id, on_session, &c));
  return session_result(&c, rc, out);
}

int fx_list(fx *f, const char *user, kotte_session_list **out) {
  call c = { .f = f };
  START(f);
  int rc = finish(f, &c, kotte_session_list_user(f->store, user, on_list, &c));
  *out = c.list;
  return rc;
}

int fx_delete_user(fx *f, const char *user, uint64_t *count) {
  call c = { .f = f };
  START(f);
  int rc = finish(f, &c, kotte_session_delete_user(f->store, user, on_count, &c));
  *count = c.count;
  return rc;
}

int fx_purge(fx *f, uint64_t *count) {
  call c = { .f = f };
  START(f);
  int rc = finish(f, &c, kotte_session_purge_expired(f->store, on_count, &c));
  *count = c.count;
  return rc;
}

void fx_new_session(fx *f, const char *user, const char *data,
                    char id[KOTTE_SESSION_ID_LEN + 1]) {
  kotte_session *s;
  assert_int_equal(fx_create(f, user, data, &s), 0);
  memcpy(id, kotte_session_id(s), KOTTE_SESSION_ID_LEN + 1);
  kotte_session_free(s);
}
