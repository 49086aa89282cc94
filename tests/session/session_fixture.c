#include "session_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static kotte_time test_clock(void *ctx) { return ((fx *)ctx)->now; }

int64_t fx_touch_interval_s = KOTTE_SESSION_TOUCH_DEFAULT;
int fx_pg_cache = 0;
/* The cache's counters over a group, printed by fx_variant_reset: a group
 * "with the cache" that never hit it would test nothing. */
static kotte_session_pg_cache_stats cache_total;

int fx_variant_reset(void **state) {
  (void)state;
  if (fx_pg_cache) {
    printf("  cache: %llu hits, %llu misses, %llu bypassed\n",
           (unsigned long long)cache_total.hits, (unsigned long long)cache_total.misses,
           (unsigned long long)cache_total.bypassed);
    assert_true(cache_total.hits > 0);
    memset(&cache_total, 0, sizeof cache_total);
  }
  fx_touch_interval_s = KOTTE_SESSION_TOUCH_DEFAULT;
  fx_pg_cache = 0;
  bh_pg_pipeline_depth = 1;
  return 0;
}
int fx_variant_pipelined(void **state) {
  fx_variant_reset(state);
  bh_pg_pipeline_depth = 8; /* and so the backend's gathered reads */
  return 0;
}
int fx_variant_pipelined_cache(void **state) {
  fx_variant_pipelined(state);
  fx_pg_cache = 1;
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

kotte_session_backend *fx_backend(fx *f) {
  kotte_session_backend *be = NULL;
  kotte_session_pg_options po = KOTTE_SESSION_PG_OPTIONS_INIT;
  po.cache = fx_pg_cache;
  int rc = f->env.kind == FX_MEMORY ? kotte_session_backend_memory_new(&be)
           : f->env.kind == FX_POSTGRESQL
               ? kotte_session_backend_postgresql_new_v2(&be, f->env.pool, pg_secret,
                                                         sizeof pg_secret - 1, &po)
               : kotte_session_backend_json_file_new(&be, &f->env.loop, f->env.path, pg_secret,
                                                     sizeof pg_secret - 1);
  assert_int_equal(rc, 0);
  return be;
}

static void close_store(fx *f) {
  if (f->store == NULL) return;
  kotte_session_store_free(f->store);
  f->store = NULL;
  bh_env_settle(&f->env); /* until the store's handles are closed */
}

void fx_reopen(fx *f) {
  close_store(f);
  kotte_session_backend *be = fx_backend(f);
  assert_int_equal(kotte_session_store_new(&f->store, &f->env.loop, be, &f->opts), 0);
  f->be = be;
  if (f->env.kind == FX_POSTGRESQL && fx_pg_cache) fx_wait_cache_live(f);
}

static void tick(uv_timer_t *t) { (void)t; }

void fx_wait_cache_live(fx *f) {
  /* the first operation starts the cache's listener; a referenced timer
   * paces the loop (the listener's own handles do not hold it) */
  assert_int_equal(fx_check(f), 0);
  uv_timer_t t;
  uv_timer_init(&f->env.loop, &t);
  uv_timer_start(&t, tick, 5, 5);
  kotte_session_pg_cache_stats s = { .version = KOTTE_SESSION_PG_CACHE_STATS_VERSION };
  uint64_t end = uv_now(&f->env.loop) + 10000;
  do {
    uv_run(&f->env.loop, UV_RUN_ONCE);
    assert_int_equal(kotte_session_backend_postgresql_cache_stats(f->be, &s), 0);
  } while (!s.live && uv_now(&f->env.loop) < end);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&f->env.loop, UV_RUN_NOWAIT);
  assert_true(s.live);
}

static int setup(void **state, int kind) {
  fx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  bh_env_open(&f->env, kind, "sessions.journal", "kotte_sessions");
  f->now = 1700000000LL * SEC;
  kotte_session_options o = KOTTE_SESSION_OPTIONS_INIT;
  o.clock = test_clock;
  o.clock_ctx = f;
  o.touch_interval_s = fx_touch_interval_s;
  f->opts = o;
  fx_reopen(f);
  *state = f;
  return 0;
}

int fx_setup_memory(void **state) { return setup(state, FX_MEMORY); }
int fx_setup_json_file(void **state) { return setup(state, FX_JSON_FILE); }
int fx_setup_postgresql(void **state) { return setup(state, FX_POSTGRESQL); }

int fx_teardown(void **state) {
  fx *f = *state;
  kotte_session_pg_cache_stats s = { .version = KOTTE_SESSION_PG_CACHE_STATS_VERSION };
  if (f->env.kind == FX_POSTGRESQL && fx_pg_cache && f->store &&
      kotte_session_backend_postgresql_cache_stats(f->be, &s) == 0) {
    cache_total.hits += s.hits;
    cache_total.misses += s.misses;
    cache_total.bypassed += s.bypassed;
  }
  close_store(f);
  bh_env_close(&f->env);
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

static void seen(call *c) { bh_seen(&c->f->env, &c->calls); }
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
  return bh_finish(&f->env, &c->calls, rc) != 0 ? rc : c->status;
}

#define START(f) ((f)->env.in_start = 1)

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
