/* The PostgreSQL pool against a real PostgreSQL 15 (tests/pg/pg.sh). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <libpq-fe.h>

#include "pg_test_util.h"

static const char *conninfo;

typedef struct fx {
  uv_loop_t loop;
  kotte_pg_pool *pool;
  kotte_pg_pool_options opts;
} fx;

static void open_pool(fx *f) { assert_int_equal(kotte_pg_pool_new(&f->pool, &f->loop, &f->opts), 0); }

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  kotte_pg_pool_options o = KOTTE_PG_POOL_OPTIONS_INIT;
  o.conninfo = conninfo;
  o.min_size = 0;
  o.max_size = 4;
  f->opts = o;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  if (f->pool) pg_pool_close(f->pool, &f->loop);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  free(f);
  return 0;
}

static void on_sleep_timer(uv_timer_t *t) { *(int *)t->data = 1; }

/* Runs the loop for @p ms (the pool's handles keep working meanwhile). */
static void run_for(uv_loop_t *loop, int ms) {
  uv_timer_t t;
  int fired = 0;
  uv_timer_init(loop, &t);
  t.data = &fired;
  uv_timer_start(&t, on_sleep_timer, (uint64_t)ms, 0);
  while (!fired) uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
}

#define F fx *f = *state

static void a_query_returns_rows_and_never_calls_back_inline(void **state) {
  F;
  open_pool(f);
  pg_call c;
  const char *v[] = { "41" };
  assert_int_equal(pg_run(f->pool, &c, 0, 0, "SELECT $1::int + 1", 1, v), 0);
  assert_int_equal(c.ntuples, 1);
  assert_string_equal(c.value, "42");
  assert_int_equal(c.done, 1);
}

typedef struct bin_call {
  int done, status;
  int64_t v;
  int len;
} bin_call;

static void on_bin(int status, const kotte_pg_result *res, void *ud) {
  bin_call *b = ud;
  b->done++;
  b->status = status;
  if (status == 0) {
    const unsigned char *p = (const unsigned char *)kotte_pg_result_value(res, 0, 0);
    b->len = kotte_pg_result_length(res, 0, 0);
    uint64_t x = 0;
    for (int i = 0; i < 8 && i < b->len; i++) x = (x << 8) | p[i];
    b->v = (int64_t)x;
  }
}

static void prepared_statements_take_binary_parameters_and_results(void **state) {
  F;
  open_pool(f);
  kotte_pg_stmt *s;
  unsigned int types[] = { 20 }; /* int8 */
  assert_int_equal(kotte_pg_pool_prepare(f->pool, &s, "SELECT $1 * 2", 1, types), 0);
  for (int round = 0; round < 3; round++) { /* prepared once, then reused */
    unsigned char be[8];
    uint64_t x = (uint64_t)(21 + round);
    for (int i = 7; i >= 0; i--, x >>= 8) be[i] = (unsigned char)x;
    const char *values[] = { (const char *)be };
    int lengths[] = { 8 }, formats[] = { 1 };
    kotte_pg_query q = KOTTE_PG_QUERY_INIT;
    q.stmt = s;
    q.nparams = 1;
    q.values = values;
    q.lengths = lengths;
    q.formats = formats;
    q.flags = KOTTE_PG_BINARY_RESULT;
    bin_call b = { 0 };
    assert_int_equal(kotte_pg_pool_query(f->pool, &q, on_bin, &b), 0);
    pg_wait(&f->loop, &b.done, 1);
    assert_int_equal(b.status, 0);
    assert_int_equal(b.len, 8);
    assert_int_equal(b.v, 2 * (21 + round));
  }
}

static void a_server_error_reports_edb_with_its_sqlstate(void **state) {
  F;
  open_pool(f);
  pg_call c;
  assert_int_equal(pg_run(f->pool, &c, 0, 0, "SELECT 1/0", 0, NULL), KOTTE_EDB);
  assert_string_equal(c.sqlstate, "22012");
  assert_int_equal(pg_run(f->pool, &c, 0, 0, "SELECT 1", 0, NULL), 0); /* connection still fine */
}

static void on_connect_sql_runs_on_every_connection(void **state) {
  F;
  f->opts.on_connect_sql = "SET application_name = 'kotte-test'; SET search_path = pg_catalog, public";
  open_pool(f);
  pg_call c;
  assert_int_equal(pg_run(f->pool, &c, 0, 0, "SHOW application_name", 0, NULL), 0);
  assert_string_equal(c.value, "kotte-test");
  assert_int_equal(pg_run(f->pool, &c, 0, 0, "SHOW search_path", 0, NULL), 0);
  assert_string_equal(c.value, "pg_catalog, public");
}

static void a_failing_on_connect_sql_fails_the_connection(void **state) {
  F;
  f->opts.on_connect_sql = "LOAD 'no_such_library_here'";
  f->opts.acquire_timeout_ms = 300;
  open_pool(f);
  pg_call c;
  assert_int_equal(pg_run(f->pool, &c, 0, 0, "SELECT 1", 0, NULL), KOTTE_EPOOLTIMEOUT);
  kotte_pg_pool_stats s = pg_stats(f->pool);
  assert_true(s.connect_failures >= 1);
  assert_int_equal(s.connects, 0);
}

#define N_PIPE 64

static void pipelined_queries_share_round_trips(void **state) {
  F;
  f->opts.max_size = 1;
  f->opts.pipeline_depth = 16;
  open_pool(f);
  pg_call c[N_PIPE];
  char nums[N_PIPE][8];
  int done = 0;
  pg_call warm;
  assert_int_equal(pg_run(f->pool, &warm, 0, 0, "SELECT 1", 0, NULL), 0);
  kotte_pg_pool_stats before = pg_stats(f->pool);
  for (int i = 0; i < N_PIPE; i++) {
    snprintf(nums[i], sizeof nums[i], "%d", i);
    const char *v[] = { nums[i] };
    kotte_pg_query q = KOTTE_PG_QUERY_INIT;
    q.sql = "SELECT $1::int";
    q.nparams = 1;
    q.values = v;
    memset(&c[i], 0, sizeof c[i]);
    assert_int_equal(kotte_pg_pool_query(f->pool, &q, pg_call_cb, &c[i]), 0);
  }
  for (;;) {
    done = 0;
    for (int i = 0; i < N_PIPE; i++) done += c[i].done;
    if (done == N_PIPE) break;
    uv_run(&f->loop, UV_RUN_ONCE);
  }
  for (int i = 0; i < N_PIPE; i++) {
    assert_int_equal(c[i].status, 0);
    assert_string_equal(c[i].value, nums[i]);
  }
  kotte_pg_pool_stats s = pg_stats(f->pool);
  printf("  %d pipelined queries in %llu round trips on %u connection(s)\n", N_PIPE,
         (unsigned long long)(s.batches - before.batches), s.open);
  assert_true(s.batches - before.batches <= N_PIPE / 4);
}

/* In a batch, a failing query rolls back the others with it; the pool runs
 * them again, so every successful insert is there afterwards. */
static void a_failure_inside_a_batch_does_not_lose_the_others(void **state) {
  F;
  f->opts.max_size = 1;
  f->opts.pipeline_depth = 16;
  open_pool(f);
  pg_call c;
  assert_int_equal(pg_run(f->pool, &c, 0, 0, "DELETE FROM kotte_sessions WHERE user_id = 'pool-batch'", 0, NULL), 0);
  enum { N = 10 };
  pg_call calls[N];
  char ids[N][16];
  for (int i = 0; i < N; i++) {
    snprintf(ids[i], sizeof ids[i], "batch-%d", i);
    const char *v[] = { ids[i] };
    kotte_pg_query q = KOTTE_PG_QUERY_INIT;
    q.sql = i == 4 ? "SELECT 1/0"
                   : "INSERT INTO kotte_sessions (session_id, user_id, created_at, last_activity, "
                     "expires_at, max_expires_at, idle_timeout_seconds) VALUES ($1, 'pool-batch', "
                     "now(), now(), now(), now(), 1)";
    q.nparams = i == 4 ? 0 : 1;
    q.values = i == 4 ? NULL : v;
    memset(&calls[i], 0, sizeof calls[i]);
    assert_int_equal(kotte_pg_pool_query(f->pool, &q, pg_call_cb, &calls[i]), 0);
  }
  for (int i = 0; i < N; i++) pg_wait(&f->loop, &calls[i].done, 1);
  for (int i = 0; i < N; i++) assert_int_equal(calls[i].status, i == 4 ? KOTTE_EDB : 0);
  assert_string_equal(calls[4].sqlstate, "22012");
  assert_int_equal(pg_run(f->pool, &c, 0, 0, "SELECT count(*) FROM kotte_sessions WHERE user_id = 'pool-batch'", 0, NULL), 0);
  assert_string_equal(c.value, "9");
  assert_int_equal(pg_run(f->pool, &c, 0, 0, "DELETE FROM kotte_sessions WHERE user_id = 'pool-batch'", 0, NULL), 0);
}

static void waiting_longer_than_the_acquire_timeout_fails_with_epooltimeout(void **state) {
  F;
  f->opts.max_size = 1;
  f->opts.acquire_timeout_ms = 200;
  open_pool(f);
  pg_call busy = { 0 }, waiter = { 0 };
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  q.sql = "SELECT pg_sleep(1)";
  assert_int_equal(kotte_pg_pool_query(f->pool, &q, pg_call_cb, &busy), 0);
  run_for(&f->loop, 50); /* the sleeper has the only connection */
  uint64_t t0 = uv_now(&f->loop);
  q.sql = "SELECT 1";
  assert_int_equal(kotte_pg_pool_query(f->pool, &q, pg_call_cb, &waiter), 0);
  pg_wait(&f->loop, &waiter.done, 1);
  uint64_t waited = uv_now(&f->loop) - t0;
  assert_int_equal(waiter.status, KOTTE_EPOOLTIMEOUT);
  assert_true(waited >= 150 && waited < 900);
  pg_wait(&f->loop, &busy.done, 1);
  assert_int_equal(busy.status, 0);
  assert_int_equal(pg_stats(f->pool).pool_timeouts, 1);
}

static void more_waiters_than_allowed_are_refused_at_once(void **state) {
  F;
  f->opts.max_size = 1;
  f->opts.max_waiters = 2;
  open_pool(f);
  pg_call c[4];
  memset(c, 0, sizeof c);
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  q.sql = "SELECT pg_sleep(0.2)";
  assert_int_equal(kotte_pg_pool_query(f->pool, &q, pg_call_cb, &c[0]), 0);
  run_for(&f->loop, 50);
  q.sql = "SELECT 1";
  assert_int_equal(kotte_pg_pool_query(f->pool, &q, pg_call_cb, &c[1]), 0);
  assert_int_equal(kotte_pg_pool_query(f->pool, &q, pg_call_cb, &c[2]), 0);
  assert_int_equal(kotte_pg_pool_query(f->pool, &q, pg_call_cb, &c[3]), KOTTE_ETOOMANYWAITERS);
  for (int i = 0; i < 3; i++) pg_wait(&f->loop, &c[i].done, 1);
  for (int i = 0; i < 3; i++) assert_int_equal(c[i].status, 0);
  run_for(&f->loop, 20);
  assert_int_equal(c[3].done, 0); /* a refused query never calls back */
  kotte_pg_pool_stats s = pg_stats(f->pool);
  assert_int_equal(s.waiter_rejections, 1);
  assert_int_equal(s.waiting, 0);
}

static void a_query_past_its_timeout_is_canceled_on_the_server(void **state) {
  F;
  f->opts.max_size = 1;
  open_pool(f);
  pg_call c;
  uint64_t t0 = uv_now(&f->loop);
  assert_int_equal(pg_run(f->pool, &c, 0, 300, "SELECT pg_sleep(30) /* kotte-cancel-probe */", 0, NULL),
                   KOTTE_ETIMEDOUT);
  uint64_t took = uv_now(&f->loop) - t0;
  assert_true(took >= 250 && took < 1500);
  /* The server stopped the statement: the connection serves the next query
   * well before pg_sleep(30) would have ended. */
  t0 = uv_now(&f->loop);
  assert_int_equal(pg_run(f->pool, &c, 0, 5000, "SELECT count(*) FROM pg_stat_activity "
                                               "WHERE query LIKE '%kotte-cancel-probe%' "
                                               "AND state = 'active' AND pid <> pg_backend_pid()",
                          0, NULL), 0);
  assert_string_equal(c.value, "0");
  assert_true(uv_now(&f->loop) - t0 < 3000);
  kotte_pg_pool_stats s = pg_stats(f->pool);
  assert_int_equal(s.query_timeouts, 1);
  assert_int_equal(s.cancels_sent, 1);
}

static int closed_port(void) {
  /* a port nothing listens on: bind, read the number, close */
  uv_loop_t l;
  uv_tcp_t t;
  struct sockaddr_in a;
  int port = 0, len = sizeof a;
  uv_loop_init(&l);
  uv_tcp_init(&l, &t);
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_bind(&t, (const struct sockaddr *)&a, 0);
  uv_tcp_getsockname(&t, (struct sockaddr *)&a, &len);
  port = ntohs(a.sin_port);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&l, UV_RUN_DEFAULT);
  uv_loop_close(&l);
  return port;
}

static void a_multi_host_conninfo_skips_a_dead_host(void **state) {
  F;
  char ci[512];
  snprintf(ci, sizeof ci, "host=127.0.0.1,127.0.0.1 port=%d,%s dbname=kotte user=kotte_app "
                          "target_session_attrs=read-write",
           closed_port(), pg_env("KOTTE_TEST_PG_PORT"));
  f->opts.conninfo = ci;
  open_pool(f);
  pg_call c;
  assert_int_equal(pg_run(f->pool, &c, 0, 0, "SELECT inet_server_port()", 0, NULL), 0);
  assert_string_equal(c.value, pg_env("KOTTE_TEST_PG_PORT"));
  assert_int_equal(pg_stats(f->pool).connects, 1);
}

/* A port that completes the TCP handshake and then never says a word: it
 * listens but never accepts, so libpq waits for the server's first message
 * forever (as with a hung server or dropped packets). */
static int silent_port(int *fd_out) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 64), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  *fd_out = fd;
  return ntohs(a.sin_port);
}

static void a_silent_first_host_is_passed_over_after_a_connect_timeout(void **state) {
  F;
  int fd;
  char ci[512];
  /* the silent host first (the port list turns with the hosts) */
  snprintf(ci, sizeof ci, "host=127.0.0.1,127.0.0.1 port=%d,%s dbname=kotte user=kotte_app",
           silent_port(&fd), pg_env("KOTTE_TEST_PG_PORT"));
  f->opts.conninfo = ci;
  f->opts.connect_timeout_ms = 300;
  f->opts.reconnect_min_ms = 20;
  f->opts.acquire_timeout_ms = 8000;
  open_pool(f);
  pg_call c;
  assert_int_equal(pg_run(f->pool, &c, 0, 0, "SELECT inet_server_port()", 0, NULL), 0);
  assert_string_equal(c.value, pg_env("KOTTE_TEST_PG_PORT"));
  kotte_pg_pool_stats st = pg_stats(f->pool);
  assert_true(st.connect_failures >= 1); /* the attempt that waited on the silent host */
  assert_int_equal(st.connects, 1);
  /* and again later: the pool stays on the host that answers */
  assert_int_equal(pg_run(f->pool, &c, 0, 0, "SELECT 1", 0, NULL), 0);
  close(fd);
}

/* Connection attempts under way together that fail together (a server
 * shutting down for a restart refuses them all at once; here: a role that
 * does not exist) are one step of the reconnect backoff, not one step each:
 * the next attempt comes after about reconnect_min_ms, not after
 * reconnect_max_ms, so the pool is back soon after a quick restart. */
static void attempts_failing_together_are_one_backoff_step(void **state) {
  F;
  char ci[512];
  snprintf(ci, sizeof ci, "%s user=kotte_no_such_role", conninfo);
  f->opts.conninfo = ci;
  f->opts.max_size = 8;
  f->opts.acquire_timeout_ms = 30000;
  open_pool(f);
  static pg_call c[8]; /* static: the teardown's free calls back */
  memset(c, 0, sizeof c);
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  q.sql = "SELECT 1";
  for (int i = 0; i < 8; i++) assert_int_equal(kotte_pg_pool_query(f->pool, &q, pg_call_cb, &c[i]), 0);
  assert_int_equal(pg_stats(f->pool).connecting, 8); /* eight attempts at once */
  kotte_pg_pool_state st;
  st.version = KOTTE_PG_POOL_STATE_VERSION;
  uint64_t t0 = uv_hrtime();
  do {
    run_for(&f->loop, 1);
    assert_int_equal(kotte_pg_pool_get_state(f->pool, &st), 0);
  } while ((st.failures < 8 || st.connecting > 0) && uv_hrtime() - t0 < 5000000000ull);
  printf("  8 attempts failed together: %u failures, next attempt in %u ms (%s)\n", st.failures,
         st.retry_in_ms, st.last_error);
  assert_int_equal(st.failures, 8);
  assert_int_equal(st.failing, 1);
  assert_true(st.retry_in_ms <= f->opts.reconnect_min_ms);
}

static void an_invalid_conninfo_is_refused_without_echoing_it(void **state) {
  F;
  f->opts.conninfo = "host=x password=hunter2 nonsense";
  assert_int_equal(kotte_pg_pool_new(&f->pool, &f->loop, &f->opts), KOTTE_EINVAL);
  assert_null(strstr(kotte_error_detail(), "hunter2"));
  f->opts.conninfo = conninfo;
  f->opts.version = 99;
  assert_int_equal(kotte_pg_pool_new(&f->pool, &f->loop, &f->opts), KOTTE_EVERSION);
  f->opts.version = KOTTE_PG_POOL_OPTIONS_VERSION;
  f->opts.max_size = 0;
  assert_int_equal(kotte_pg_pool_new(&f->pool, &f->loop, &f->opts), KOTTE_EINVAL);
  assert_null(f->pool);
}

/* The connection is killed while a query runs: an idempotent query runs
 * once more on a fresh connection, any other reports the failure. */
static void a_lost_connection_retries_idempotent_queries_once(void **state) {
  F;
  f->opts.max_size = 2;
  open_pool(f);
  for (int idem = 0; idem < 2; idem++) {
    pg_call victim = { 0 }, killer;
    kotte_pg_query q = KOTTE_PG_QUERY_INIT;
    q.sql = "SELECT pg_sleep(0.4) /* kotte-kill-probe */";
    q.flags = idem ? KOTTE_PG_IDEMPOTENT : 0;
    assert_int_equal(kotte_pg_pool_query(f->pool, &q, pg_call_cb, &victim), 0);
    run_for(&f->loop, 150);
    assert_int_equal(pg_run(f->pool, &killer, 0, 0,
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE query LIKE '%kotte-kill-probe%' AND pid <> pg_backend_pid()",
                            0, NULL), 0);
    assert_string_equal(killer.value, "1");
    pg_wait(&f->loop, &victim.done, 1);
    assert_int_equal(victim.status, idem ? 0 : KOTTE_EDB);
  }
  kotte_pg_pool_stats s = pg_stats(f->pool);
  assert_int_equal(s.connections_lost, 2);
  assert_int_equal(s.retries, 1);
  assert_true(s.reconnects >= 1);
}

/* Ends the server session of backend @p pid from a connection of its own
 * and returns once that backend has exited (its FATAL 57P01 and the close
 * are then on their way to the pool's socket, which the pool, its loop
 * not running meanwhile, has not read). */
static void end_session(const char *pid) {
  PGconn *pg = PQconnectdb(conninfo);
  assert_int_equal(PQstatus(pg), CONNECTION_OK);
  const char *v[] = { pid };
  PGresult *r = PQexecParams(pg, "SELECT pg_terminate_backend($1::int, 5000)", 1, NULL, v, NULL,
                             NULL, 0);
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  assert_string_equal(PQgetvalue(r, 0, 0), "t");
  PQclear(r);
  PQfinish(pg);
  usleep(100 * 1000);
}

/* A query handed to a connection whose server session already ended (the
 * backend sent its FATAL and closed, as in a fast shutdown) before the pool
 * read that. Over TCP its write draws a reset, and libuv reports the socket
 * error by stopping the connection's poll handle. The query must still end
 * at once, not after its 30 s timeout (issue 11): as it was sent with its
 * Sync, an idempotent one runs again on a fresh connection and any other
 * reports KOTTE_EDB with the server's SQLSTATE 57P01. */
static void a_query_sent_into_an_ended_session_ends_at_once(void **state) {
  F;
  char tcp[256];
  snprintf(tcp, sizeof tcp, "host=127.0.0.1 port=%s dbname=kotte user=kotte_app",
           pg_env("KOTTE_TEST_PG_PORT"));
  f->opts.conninfo = tcp;
  f->opts.max_size = 1;
  f->opts.query_timeout_ms = 30000;
  f->opts.idle_check_ms = 600000; /* no liveness check before reuse: the pool must not know */
  open_pool(f);
  /* static: after a failed assertion the teardown's free still calls back */
  static pg_call calls[2];
  memset(calls, 0, sizeof calls);
  for (int idem = 0; idem < 2; idem++) {
    pg_call pid, *c = &calls[idem];
    assert_int_equal(pg_run(f->pool, &pid, 0, 0, "SELECT pg_backend_pid()", 0, NULL), 0);
    end_session(pid.value);
    kotte_pg_query q = KOTTE_PG_QUERY_INIT;
    q.sql = "SELECT 42";
    q.flags = idem ? KOTTE_PG_IDEMPOTENT : 0;
    assert_int_equal(kotte_pg_pool_query(f->pool, &q, pg_call_cb, c), 0);
    usleep(100 * 1000); /* the reset comes back before the loop looks */
    uint64_t t0 = uv_hrtime();
    while (!c->done && uv_hrtime() - t0 < 5000000000ull) run_for(&f->loop, 10);
    printf("  %s query into an ended session: %s after %llu ms\n",
           idem ? "idempotent" : "other", c->done ? kotte_err_name(c->status) : "no answer",
           (unsigned long long)((uv_hrtime() - t0) / 1000000));
    assert_int_equal(c->done, 1);
    if (idem) {
      assert_int_equal(c->status, 0);
      assert_string_equal(c->value, "42");
    } else {
      assert_int_equal(c->status, KOTTE_EDB);
      assert_string_equal(c->sqlstate, "57P01");
    }
  }
  kotte_pg_pool_stats s = pg_stats(f->pool);
  assert_int_equal(s.connections_lost, 2);
  assert_int_equal(s.retries, 1);
  assert_int_equal(s.query_timeouts, 0);
}

/* Two queries share a batch; the server session ends while the second
 * runs, after the first one's rows came but before the batch's Sync: the
 * batch never committed and the connection is lost. Neither is idempotent,
 * so both report KOTTE_EDB at once: the second with the server's 57P01, the
 * first with no result at all, never with rows that did not count. */
static void a_lost_batch_reports_edb_without_rows(void **state) {
  F;
  f->opts.max_size = 1;
  f->opts.pipeline_depth = 8;
  f->opts.query_timeout_ms = 30000;
  open_pool(f);
  pg_call pid;
  assert_int_equal(pg_run(f->pool, &pid, 0, 0, "SELECT pg_backend_pid()", 0, NULL), 0);
  static pg_call first, second; /* static: see above */
  memset(&first, 0, sizeof first);
  memset(&second, 0, sizeof second);
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  q.sql = "SELECT 7";
  assert_int_equal(kotte_pg_pool_query(f->pool, &q, pg_call_cb, &first), 0);
  q.sql = "SELECT pg_sleep(5)";
  assert_int_equal(kotte_pg_pool_query(f->pool, &q, pg_call_cb, &second), 0);
  run_for(&f->loop, 300);
  end_session(pid.value);
  uint64_t t0 = uv_hrtime();
  while (second.done == 0 && uv_hrtime() - t0 < 5000000000ull) run_for(&f->loop, 10);
  assert_int_equal(first.done, 1);
  assert_int_equal(second.done, 1);
  assert_int_equal(second.status, KOTTE_EDB);
  assert_string_equal(second.sqlstate, "57P01");
  assert_int_equal(first.status, KOTTE_EDB);
  assert_string_equal(first.sqlstate, "");
  assert_int_equal(first.ntuples, 0);
  assert_string_equal(first.value, "");
  assert_int_equal(pg_stats(f->pool).connections_lost, 1);
}

/* A server that answers "read-only" did nothing: the query runs once more
 * on a fresh connection; here that one is read-only too, so it reports. */
static void a_read_only_answer_is_retried_once_on_a_fresh_connection(void **state) {
  F;
  f->opts.on_connect_sql = "SET default_transaction_read_only = on";
  open_pool(f);
  pg_call c;
  assert_int_equal(pg_run(f->pool, &c, 0, 0, "DELETE FROM kotte_sessions WHERE false", 0, NULL), KOTTE_EDB);
  assert_string_equal(c.sqlstate, "25006");
  kotte_pg_pool_stats s = pg_stats(f->pool);
  assert_int_equal(s.retries, 1);
  assert_int_equal(s.connects, 2);
}

static void connections_retire_after_their_lifetime_and_idle_ones_close(void **state) {
  F;
  f->opts.max_lifetime_ms = 300;
  f->opts.lifetime_jitter_ms = 0;
  f->opts.idle_timeout_ms = 0;
  open_pool(f);
  pg_call c;
  const char *pid_sql = "SELECT pg_backend_pid()";
  assert_int_equal(pg_run(f->pool, &c, 0, 0, pid_sql, 0, NULL), 0);
  char pid1[512];
  snprintf(pid1, sizeof pid1, "%s", c.value);
  run_for(&f->loop, 500);
  assert_int_equal(pg_run(f->pool, &c, 0, 0, pid_sql, 0, NULL), 0);
  assert_string_not_equal(c.value, pid1);
  pg_pool_close(f->pool, &f->loop);

  f->opts.max_lifetime_ms = 0;
  f->opts.idle_timeout_ms = 200;
  f->opts.min_size = 1;
  open_pool(f);
  pg_call many[3];
  memset(many, 0, sizeof many);
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  q.sql = "SELECT pg_sleep(0.1)";
  for (int i = 0; i < 3; i++) assert_int_equal(kotte_pg_pool_query(f->pool, &q, pg_call_cb, &many[i]), 0);
  for (int i = 0; i < 3; i++) pg_wait(&f->loop, &many[i].done, 1);
  assert_int_equal(pg_stats(f->pool).open, 3);
  run_for(&f->loop, 600);
  assert_int_equal(pg_stats(f->pool).open, 1); /* back to min_size */
}

typedef struct free_ctx {
  fx *f;
  int calls;
  int statuses[3];
} free_ctx;

static void free_in_cb(int status, const kotte_pg_result *res, void *ud) {
  free_ctx *c = ud;
  c->statuses[c->calls++] = status;
  if (c->f->pool) {
    kotte_pg_pool_free(c->f->pool);
    c->f->pool = NULL;
  }
}

static void freeing_the_pool_in_a_callback_cancels_the_rest(void **state) {
  F;
  f->opts.max_size = 1;
  open_pool(f);
  free_ctx c = { f, 0, { 0 } };
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  q.sql = "SELECT 1";
  for (int i = 0; i < 3; i++) assert_int_equal(kotte_pg_pool_query(f->pool, &q, free_in_cb, &c), 0);
  assert_int_equal(c.calls, 0);
  uv_run(&f->loop, UV_RUN_DEFAULT); /* returns: the pool released everything */
  assert_int_equal(c.calls, 3);
  assert_int_equal(c.statuses[0], 0);
  assert_int_equal(c.statuses[1], KOTTE_ECANCELED);
  assert_int_equal(c.statuses[2], KOTTE_ECANCELED);
}

static void stats_count_connections_and_waits(void **state) {
  F;
  f->opts.min_size = 2;
  open_pool(f);
  pg_call c;
  assert_int_equal(pg_run(f->pool, &c, 0, 0, "SELECT 1", 0, NULL), 0);
  run_for(&f->loop, 100);
  kotte_pg_pool_stats s = pg_stats(f->pool);
  assert_int_equal(s.open, 2);
  assert_int_equal(s.idle, 2);
  assert_int_equal(s.busy, 0);
  assert_int_equal(s.waiting, 0);
  assert_int_equal(s.queries, 1);
  assert_int_equal(s.errors, 0);
  assert_int_equal(s.connects, 2);
  kotte_pg_pool_stats bad = { 0 };
  bad.version = 99;
  assert_int_equal(kotte_pg_pool_get_stats(f->pool, &bad), KOTTE_EVERSION);
}

/* The blocking side: a pool opened on a runtime, freed from this thread. */
static void a_pool_opens_and_frees_on_a_runtime(void **state) {
  (void)state;
  kotte_runtime *rt;
  assert_int_equal(kotte_runtime_new(&rt, NULL), 0);
  kotte_pg_pool_options o = KOTTE_PG_POOL_OPTIONS_INIT;
  o.conninfo = conninfo;
  kotte_pg_pool *p;
  assert_int_equal(kotte_pg_pool_open(&p, rt, &o), 0);
  for (int i = 0; i < 50; i++) {
    kotte_pg_pool_stats s = pg_stats(p);
    if (s.open == 1) break;
    usleep(20000);
  }
  assert_int_equal(pg_stats(p).open, 1);
  kotte_pg_pool_free(p);
  kotte_runtime_free(rt);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  conninfo = pg_conninfo_or_skip("test_pg_pool");
  const struct CMUnitTest tests[] = {
    T(a_query_returns_rows_and_never_calls_back_inline),
    T(prepared_statements_take_binary_parameters_and_results),
    T(a_server_error_reports_edb_with_its_sqlstate),
    T(on_connect_sql_runs_on_every_connection),
    T(a_failing_on_connect_sql_fails_the_connection),
    T(pipelined_queries_share_round_trips),
    T(a_failure_inside_a_batch_does_not_lose_the_others),
    T(waiting_longer_than_the_acquire_timeout_fails_with_epooltimeout),
    T(more_waiters_than_allowed_are_refused_at_once),
    T(a_query_past_its_timeout_is_canceled_on_the_server),
    T(a_multi_host_conninfo_skips_a_dead_host),
    T(a_silent_first_host_is_passed_over_after_a_connect_timeout),
    T(an_invalid_conninfo_is_refused_without_echoing_it),
    T(attempts_failing_together_are_one_backoff_step),
    T(a_lost_connection_retries_idempotent_queries_once),
    T(a_query_sent_into_an_ended_session_ends_at_once),
    T(a_lost_batch_reports_edb_without_rows),
    T(a_read_only_answer_is_retried_once_on_a_fresh_connection),
    T(connections_retire_after_their_lifetime_and_idle_ones_close),
    T(freeing_the_pool_in_a_callback_cancels_the_rest),
    T(stats_count_connections_and_waits),
    cmocka_unit_test(a_pool_opens_and_frees_on_a_runtime),
  };
  /* KOTTE_TEST_FILTER=pattern runs only the matching tests (while iterating) */
  if (getenv("KOTTE_TEST_FILTER")) cmocka_set_test_filter(getenv("KOTTE_TEST_FILTER"));
  return cmocka_run_group_tests_name("pg pool", tests, NULL, NULL);
}
