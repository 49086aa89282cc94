/* The PostgreSQL session backend's cache across "replicas": store A with
 * the cache, and changes made elsewhere (store B on a pool of its own, or
 * plain SQL from another connection, as another process would). A never
 * answers from its cache what another replica deleted or changed once the
 * NOTIFY arrived; while its listener is down (killed with
 * pg_terminate_backend, a server restart, a failover to a promoted
 * standby) it answers from the database, and after the listener is back
 * it serves nothing it cached before. */
#include <libpq-fe.h>
#include <stdlib.h>
#include <unistd.h>

#include "pg_servers.h"

static const char *conninfo;
static const unsigned char secret[] = "session-cache-tests-secret-0123456789";

#define N_KEPT 10
#define N_DOOMED 10

typedef struct replica {
  kotte_pg_pool *pool;
  kotte_session_store *store;
  kotte_session_backend *be;
} replica;

typedef struct rig {
  uv_loop_t loop;
  replica a, b;
  char kept[N_KEPT][KOTTE_SESSION_ID_LEN + 1];
  char doomed[N_DOOMED][KOTTE_SESSION_ID_LEN + 1];
} rig;

static void replica_open(rig *r, replica *x, const char *ci, int cache) {
  kotte_pg_pool_options po = KOTTE_PG_POOL_OPTIONS_INIT;
  po.conninfo = ci;
  po.reconnect_max_ms = 500;
  po.connect_timeout_ms = 2000;
  assert_int_equal(kotte_pg_pool_new(&x->pool, &r->loop, &po), 0);
  kotte_session_pg_options so = KOTTE_SESSION_PG_OPTIONS_INIT;
  so.cache = cache;
  assert_int_equal(kotte_session_backend_postgresql_new_v2(&x->be, x->pool, secret,
                                                           sizeof secret - 1, &so), 0);
  assert_int_equal(kotte_session_store_new(&x->store, &r->loop, x->be, NULL), 0);
}

static void replica_close(replica *x) {
  kotte_session_store_free(x->store);
  kotte_pg_pool_free(x->pool);
}

static void tick(uv_timer_t *t) { (void)t; }

static kotte_session_pg_cache_stats cstats(replica *x) {
  kotte_session_pg_cache_stats s = { .version = KOTTE_SESSION_PG_CACHE_STATS_VERSION };
  assert_int_equal(kotte_session_backend_postgresql_cache_stats(x->be, &s), 0);
  return s;
}

/* Runs the loop until @p pred holds, at most @p ms. */
static int wait_until(rig *r, int (*pred)(rig *), unsigned int ms) {
  uv_timer_t t;
  uv_timer_init(&r->loop, &t);
  uv_timer_start(&t, tick, 5, 5);
  uint64_t end = uv_now(&r->loop) + ms;
  int ok;
  while (!(ok = pred(r)) && uv_now(&r->loop) < end) uv_run(&r->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&r->loop, UV_RUN_NOWAIT);
  return ok;
}

static int a_live(rig *r) { return cstats(&r->a).live; }
static int a_not_live(rig *r) { return !cstats(&r->a).live; }

typedef struct sess_call {
  int done, status;
  kotte_session *s;
} sess_call;

static void on_sess(int status, kotte_session *s, void *ud) {
  sess_call *c = ud;
  c->done = 1;
  c->status = status;
  c->s = s;
}
static void on_status(int status, void *ud) {
  sess_call *c = ud;
  c->done = 1;
  c->status = status;
}
static void on_count(int status, uint64_t n, void *ud) {
  (void)n;
  on_status(status, ud);
}

static void wait_call(rig *r, sess_call *c) {
  uv_timer_t t;
  uv_timer_init(&r->loop, &t);
  uv_timer_start(&t, tick, 5, 5);
  while (!c->done) uv_run(&r->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&r->loop, UV_RUN_NOWAIT);
}

/* A's answer for @p id: 0 with its data in @p data, or the error. */
static int a_get(rig *r, const char *id, char *data, size_t n) {
  sess_call c = { 0 };
  assert_int_equal(kotte_session_get(r->a.store, id, on_sess, &c), 0);
  wait_call(r, &c);
  if (c.status == 0 && data) snprintf(data, n, "%s", kotte_session_data(c.s));
  kotte_session_free(c.s);
  return c.status;
}

static void create_on(rig *r, replica *x, const char *user, char id[KOTTE_SESSION_ID_LEN + 1]) {
  sess_call c = { 0 };
  assert_int_equal(kotte_session_create(x->store, user, "{\"v\":0}", on_sess, &c), 0);
  wait_call(r, &c);
  assert_int_equal(c.status, 0);
  snprintf(id, KOTTE_SESSION_ID_LEN + 1, "%s", kotte_session_id(c.s));
  kotte_session_free(c.s);
}

/* Both replicas on @p ci; A caches every session (each read twice: the
 * second is a hit). */
static void rig_open(rig *r, const char *ci) {
  memset(r, 0, sizeof *r);
  assert_int_equal(uv_loop_init(&r->loop), 0);
  replica_open(r, &r->a, ci, 1);
  replica_open(r, &r->b, ci, 0);
  char probe[KOTTE_SESSION_ID_LEN + 1];
  assert_int_equal(kotte_token_generate(probe), 0);
  assert_int_equal(a_get(r, probe, NULL, 0), KOTTE_ENOTFOUND); /* starts A's listener */
  assert_true(wait_until(r, a_live, 10000));
  for (int i = 0; i < N_KEPT; i++) create_on(r, &r->b, "kept", r->kept[i]);
  for (int i = 0; i < N_DOOMED; i++) create_on(r, &r->b, "doomed", r->doomed[i]);
  uint64_t hits0 = cstats(&r->a).hits;
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < N_KEPT; i++) assert_int_equal(a_get(r, r->kept[i], NULL, 0), 0);
    for (int i = 0; i < N_DOOMED; i++) assert_int_equal(a_get(r, r->doomed[i], NULL, 0), 0);
  }
  assert_int_equal(cstats(&r->a).hits - hits0, N_KEPT + N_DOOMED); /* the second round */
}

static void rig_close(rig *r) {
  replica_close(&r->a);
  replica_close(&r->b);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&r->loop), 0);
}

/* Plain SQL from a connection of its own (another process would do the same). */
static void sql_elsewhere(const char *ci, const char *sql) {
  PGconn *c = PQconnectdb(ci);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  PGresult *res = PQexec(c, sql);
  if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
    fail_msg("%s: %s", sql, PQerrorMessage(c));
  PQclear(res);
  PQfinish(c);
}

/* Every doomed session reads as gone on A, every kept one as alive. */
static void a_sees_the_deletes(rig *r) {
  for (int i = 0; i < N_DOOMED; i++) assert_int_equal(a_get(r, r->doomed[i], NULL, 0), KOTTE_ENOTFOUND);
  for (int i = 0; i < N_KEPT; i++) assert_int_equal(a_get(r, r->kept[i], NULL, 0), 0);
}

static uint64_t invalidations;
static int a_heard(rig *r) { return cstats(&r->a).invalidations >= invalidations; }

static void changes_on_another_replica_reach_the_cache(void **state) {
  (void)state;
  rig r;
  rig_open(&r, conninfo);
  uint64_t inv0 = cstats(&r.a).invalidations;
  /* B: an update, a regenerate, a logout, a revoke of a user */
  sess_call c = { 0 };
  assert_int_equal(kotte_session_update(r.b.store, r.kept[0], "{\"v\":1}", on_sess, &c), 0);
  wait_call(&r, &c);
  assert_int_equal(c.status, 0);
  kotte_session_free(c.s);
  memset(&c, 0, sizeof c);
  assert_int_equal(kotte_session_regenerate(r.b.store, r.kept[1], on_sess, &c), 0);
  wait_call(&r, &c);
  assert_int_equal(c.status, 0);
  char moved[KOTTE_SESSION_ID_LEN + 1];
  snprintf(moved, sizeof moved, "%s", kotte_session_id(c.s));
  kotte_session_free(c.s);
  memset(&c, 0, sizeof c);
  assert_int_equal(kotte_session_delete(r.b.store, r.doomed[0], on_status, &c), 0);
  wait_call(&r, &c);
  assert_int_equal(c.status, 0);
  memset(&c, 0, sizeof c);
  assert_int_equal(kotte_session_delete_user(r.b.store, "doomed", on_count, &c), 0);
  wait_call(&r, &c);
  assert_int_equal(c.status, 0);
  /* once A heard of them (one notification per row: 1 + 1 + 1 + 9) ... */
  invalidations = inv0 + 12;
  assert_true(wait_until(&r, a_heard, 5000));
  /* ... A answers none of them from its cache */
  char data[64];
  assert_int_equal(a_get(&r, r.kept[0], data, sizeof data), 0);
  assert_string_equal(data, "{\"v\":1}");
  assert_int_equal(a_get(&r, r.kept[1], NULL, 0), KOTTE_ENOTFOUND);
  assert_int_equal(a_get(&r, moved, NULL, 0), 0);
  for (int i = 0; i < N_DOOMED; i++) assert_int_equal(a_get(&r, r.doomed[i], NULL, 0), KOTTE_ENOTFOUND);
  /* and its own writes never leave it a stale copy */
  memset(&c, 0, sizeof c);
  assert_int_equal(kotte_session_update(r.a.store, r.kept[2], "{\"v\":2}", on_sess, &c), 0);
  wait_call(&r, &c);
  kotte_session_free(c.s);
  assert_int_equal(a_get(&r, r.kept[2], data, sizeof data), 0);
  assert_string_equal(data, "{\"v\":2}");
  memset(&c, 0, sizeof c);
  assert_int_equal(kotte_session_delete(r.a.store, r.kept[2], on_status, &c), 0);
  wait_call(&r, &c);
  assert_int_equal(a_get(&r, r.kept[2], NULL, 0), KOTTE_ENOTFOUND);
  rig_close(&r);
}

/* pg_terminate_backend on A's listener, then deletes by another process
 * whose notifications A can no longer hear: A, without running its loop in
 * between, answers from the database (the first read finds the end of the
 * connection on the socket), and again once the listener is back. */
static void a_killed_listener_never_leaves_a_stale_read(void **state) {
  (void)state;
  rig r;
  rig_open(&r, conninfo);
  /* A's listener is the one connection whose last command was its LISTEN
   * or a ping (an empty query); pg_terminate_backend(pid, 5000) returns
   * once that backend is gone */
  sql_elsewhere(conninfo, "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE "
                          "datname = current_database() AND pid <> pg_backend_pid() AND "
                          "(query = '' OR query LIKE 'LISTEN %')");
  sql_elsewhere(conninfo, "DELETE FROM kotte_sessions WHERE user_id = 'doomed'");
  uint64_t bypassed0 = cstats(&r.a).bypassed;
  a_sees_the_deletes(&r);
  assert_true(cstats(&r.a).bypassed > bypassed0);
  assert_true(wait_until(&r, a_live, 10000));
  a_sees_the_deletes(&r);
  rig_close(&r);
}

/* The server restarts; deletes by another process come while A's listener
 * is away or just back: none is served from the cache. */
static void a_server_restart_never_leaves_a_stale_read(void **state) {
  (void)state;
  server s;
  server_start(&s, "start");
  char ci[512];
  snprintf(ci, sizeof ci, "host=127.0.0.1 port=%s dbname=kotte user=kotte_app", s.port);
  rig r;
  rig_open(&r, ci);
  server_cmd("stop-server", &s, "fast");
  assert_true(wait_until(&r, a_not_live, 10000));
  server_cmd("start-server", &s, NULL);
  sql_elsewhere(ci, "DELETE FROM kotte_sessions WHERE user_id = 'doomed'");
  a_sees_the_deletes(&r);
  assert_true(wait_until(&r, a_live, 15000));
  a_sees_the_deletes(&r);
  rig_close(&r);
  server_cmd("stop", &s, NULL);
}

/* Failover to a promoted standby: the listener follows, and the cache
 * serves nothing from before the failover. */
static void a_failover_empties_the_cache_and_the_listener_follows(void **state) {
  (void)state;
  server p, sb;
  char ci[512], new_primary[512];
  server_start_pair(&p, &sb, ci, sizeof ci);
  snprintf(new_primary, sizeof new_primary, "host=127.0.0.1 port=%s dbname=kotte user=kotte_app",
           sb.port);
  rig r;
  rig_open(&r, ci);
  uint64_t ups0 = cstats(&r.a).ups;
  server_cmd("stop-server", &p, "fast");
  assert_true(wait_until(&r, a_not_live, 10000));
  server_cmd("promote", &sb, NULL);
  sql_elsewhere(new_primary, "DELETE FROM kotte_sessions WHERE user_id = 'doomed'");
  a_sees_the_deletes(&r);
  assert_true(wait_until(&r, a_live, 20000));
  assert_true(cstats(&r.a).ups > ups0);
  a_sees_the_deletes(&r);
  /* and it hears the new primary */
  uint64_t inv0 = cstats(&r.a).invalidations;
  for (int i = 0; i < N_KEPT; i++) assert_int_equal(a_get(&r, r.kept[i], NULL, 0), 0);
  sql_elsewhere(new_primary, "DELETE FROM kotte_sessions WHERE user_id = 'kept'");
  invalidations = inv0 + N_KEPT;
  assert_true(wait_until(&r, a_heard, 5000));
  for (int i = 0; i < N_KEPT; i++) assert_int_equal(a_get(&r, r.kept[i], NULL, 0), KOTTE_ENOTFOUND);
  rig_close(&r);
  server_cmd("stop", &sb, NULL);
  server_cmd("stop", &p, NULL);
}

int main(void) {
  conninfo = pg_conninfo_or_skip("test_pg_session_cache");
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(changes_on_another_replica_reach_the_cache),
    cmocka_unit_test(a_killed_listener_never_leaves_a_stale_read),
    cmocka_unit_test(a_server_restart_never_leaves_a_stale_read),
    cmocka_unit_test(a_failover_empties_the_cache_and_the_listener_follows),
  };
  return cmocka_run_group_tests_name("pg session cache", tests, NULL, NULL);
}
