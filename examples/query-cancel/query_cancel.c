/*
 * kotte-query-cancel: the query registry and a cancel across processes,
 * from C (include/kotte/query.h, docs/query-cancel.md).
 *
 *   kotte-query-cancel CONNINFO run REQUEST_ID USER [SECONDS]
 *       a "replica" that runs SELECT pg_sleep(SECONDS) (default 60) and
 *       registers it; it cancels it with pg_cancel_backend() when any
 *       replica asks, and exits when the query ended.
 *   kotte-query-cancel CONNINFO cancel REQUEST_ID USER
 *       another process (another replica) asks to cancel it, and prints
 *       the answer: cancelled, not found, forbidden (another user), ...
 *
 * Try it on a database migrated with kotte-migrate:
 *   kotte-query-cancel "dbname=kotte" run q1 alice 60 &
 *   kotte-query-cancel "dbname=kotte" cancel q1 bob     # forbidden
 *   kotte-query-cancel "dbname=kotte" cancel q1 alice   # cancelled; "run" prints 57014
 *
 * "run" owns a libuv loop and uses the asynchronous API; "cancel" uses a
 * runtime and the blocking facade.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kotte.h>

typedef struct replica {
  uv_loop_t loop;
  kotte_pg_pool *pool;  /* the registry's, and the cancel's pg_cancel_backend() */
  kotte_pg_pool *query; /* one connection: the query a user may cancel */
  kotte_query_registry *reg;
  uv_timer_t wait;
  const char *rid, *user, *seconds;
  int pid;
  int rc;
} replica;

static void free_pools(uv_timer_t *t) {
  replica *r = t->data;
  kotte_pg_pool_free(r->query);
  kotte_pg_pool_free(r->pool);
  uv_close((uv_handle_t *)t, NULL);
}

/* The registry goes first; what it still sends (the answer to the replica
 * that asked for the cancel, the delete of this replica's rows) runs on
 * the next loop turns, on the pool, which a free would cut short: so the
 * pools go a moment later. (A server frees them at shutdown; a registry
 * on a runtime, kotte_query_registry_open(), returns from its free only
 * once all of it went out.) */
static void finish(replica *r, int rc) {
  r->rc = rc;
  kotte_query_registry_free(r->reg);
  uv_timer_stop(&r->wait);
  uv_timer_start(&r->wait, free_pools, 500, 0);
}

/* ---- the owner's cancel handler ------------------------------------------ */

static void on_cancelled(int status, const kotte_pg_result *res, void *req) {
  int ok = status == 0 && strcmp(kotte_pg_result_value(res, 0, 0), "t") == 0;
  kotte_query_cancel_done(req, ok ? 0 : status != 0 ? status : KOTTE_ENOTFOUND);
}

/* Runs on the loop for a cancel asked here or by another process: cancels
 * with a live connection of this process, answers when that is done. */
static void on_cancel(kotte_query_cancel_req *req, const char *rid, const char *user, int pid,
                      void *ud) {
  replica *r = ud;
  char p[16];
  snprintf(p, sizeof p, "%d", pid);
  const char *v[] = { p };
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  q.sql = "SELECT pg_cancel_backend($1::int)";
  q.nparams = 1;
  q.values = v;
  printf("run: %s's cancel of %s arrived; cancelling backend %d\n", user, rid, pid);
  if (kotte_pg_pool_query(r->pool, &q, on_cancelled, req) != 0)
    kotte_query_cancel_done(req, KOTTE_EDB);
}

/* ---- the query ------------------------------------------------------------ */

static void on_unregistered(int status, void *ud) { finish(ud, 0); }

static void on_query_end(int status, const kotte_pg_result *res, void *ud) {
  replica *r = ud;
  if (status == 0) printf("run: %s finished\n", r->rid);
  else printf("run: %s ended: %s (SQLSTATE %s)\n", r->rid, kotte_strerror(status),
              kotte_pg_result_sqlstate(res));
  fflush(stdout);
  /* a cancelled query was unregistered by the cancel; unregister anyway */
  if (kotte_query_unregister(r->reg, r->rid, on_unregistered, r) != 0) finish(r, 0);
}

static void on_registered(int status, void *ud) {
  replica *r = ud;
  if (status != 0) {
    fprintf(stderr, "run: register: %s: %s\n", kotte_strerror(status), kotte_error_detail());
    finish(r, 1);
    return;
  }
  const char *v[] = { r->seconds };
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  q.sql = "SELECT pg_sleep($1::float8)";
  q.nparams = 1;
  q.values = v;
  q.timeout_ms = -1;
  kotte_pg_pool_query(r->query, &q, on_query_end, r); /* same connection as the pid */
  printf("run: %s of %s registered as replica %s, backend %d\n", r->rid, r->user,
         kotte_query_registry_replica_id(r->reg), r->pid);
  fflush(stdout);
}

static void on_pid(int status, const kotte_pg_result *res, void *ud) {
  replica *r = ud;
  if (status != 0) {
    fprintf(stderr, "run: %s: %s\n", kotte_strerror(status), kotte_error_detail());
    finish(r, 1);
    return;
  }
  r->pid = atoi(kotte_pg_result_value(res, 0, 0));
  kotte_query_register(r->reg, r->rid, r->user, r->pid, on_registered, r);
}

/* Other processes can reach this one once its listener is up. */
static void wait_ready(uv_timer_t *t) {
  replica *r = t->data;
  if (!kotte_query_registry_ready(r->reg)) return;
  uv_timer_stop(t);
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  q.sql = "SELECT pg_backend_pid()";
  kotte_pg_pool_query(r->query, &q, on_pid, r);
}

static int run(const char *conninfo, const char *rid, const char *user, const char *seconds) {
  replica r;
  memset(&r, 0, sizeof r);
  r.rid = rid;
  r.user = user;
  r.seconds = seconds;
  uv_loop_init(&r.loop);
  kotte_pg_pool_options po = KOTTE_PG_POOL_OPTIONS_INIT;
  po.conninfo = conninfo;
  kotte_query_options qo = KOTTE_QUERY_OPTIONS_INIT;
  qo.on_cancel = on_cancel;
  qo.cancel_userdata = &r;
  int rc = kotte_pg_pool_new(&r.pool, &r.loop, &po);
  po.max_size = 1;
  if (rc == 0) rc = kotte_pg_pool_new(&r.query, &r.loop, &po);
  if (rc == 0) rc = kotte_query_registry_new(&r.reg, &r.loop, r.pool, &qo);
  if (rc != 0) {
    fprintf(stderr, "run: %s: %s\n", kotte_strerror(rc), kotte_error_detail());
    return 1;
  }
  uv_timer_init(&r.loop, &r.wait);
  r.wait.data = &r;
  uv_timer_start(&r.wait, wait_ready, 0, 20);
  uv_run(&r.loop, UV_RUN_DEFAULT);
  uv_loop_close(&r.loop);
  return r.rc;
}

/* ---- another process asks ---------------------------------------------------- */

static int cancel(const char *conninfo, const char *rid, const char *user) {
  kotte_runtime *rt;
  kotte_pg_pool *pool = NULL;
  kotte_query_registry *reg = NULL;
  kotte_pg_pool_options po = KOTTE_PG_POOL_OPTIONS_INIT;
  po.conninfo = conninfo;
  int rc = kotte_runtime_new(&rt, NULL);
  if (rc == 0) rc = kotte_pg_pool_open(&pool, rt, &po);
  if (rc == 0) rc = kotte_query_registry_open(&reg, rt, pool, NULL);
  /* its own listener must be up to hear the owner's answer */
  for (int i = 0; rc == 0 && i < 500 && !kotte_query_registry_ready(reg); i++) uv_sleep(10);
  if (rc == 0) {
    uint64_t t0 = uv_hrtime();
    rc = kotte_query_cancel_sync(reg, rid, user, -1);
    printf("cancel: %s (%s) after %.1f ms\n", rc == 0 ? "cancelled" : kotte_err_name(rc),
           rc == 0 ? "the owner cancelled it" : kotte_error_detail(),
           (uv_hrtime() - t0) / 1e6);
  } else {
    fprintf(stderr, "cancel: %s: %s\n", kotte_strerror(rc), kotte_error_detail());
  }
  kotte_query_registry_free(reg);
  kotte_pg_pool_free(pool);
  kotte_runtime_free(rt);
  return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc >= 5 && strcmp(argv[2], "run") == 0)
    return run(argv[1], argv[3], argv[4], argc > 5 ? argv[5] : "60");
  if (argc == 5 && strcmp(argv[2], "cancel") == 0) return cancel(argv[1], argv[3], argv[4]);
  fprintf(stderr, "usage: %s CONNINFO run REQUEST_ID USER [SECONDS]\n"
                  "       %s CONNINFO cancel REQUEST_ID USER\n", argv[0], argv[0]);
  return 2;
}
