/* Cross-process cancel on one PostgreSQL (the tests): process A (a
 * fork) runs `SELECT pg_sleep(30)` and registers it; process B (this one)
 * cancels it through its own registry. A's query must end with SQLSTATE
 * 57014 within 2 s of B's call, and B must hear "cancelled". Another
 * user's cancel is forbidden, an unknown id is not found; after A is
 * killed with SIGKILL while its queries run, B answers "not found" within
 * the bound and a purge deletes A's entries.
 *
 * A drives its own libuv loop (the asynchronous API); B uses a runtime and
 * the blocking facade, so both halves of the API take part. They talk
 * through a pipe: A writes one line per step. */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <libpq-fe.h>

#include "pg_test_util.h"

#include <kotte/query.h>

/* ---- process A --------------------------------------------------------------- */

typedef struct a_state {
  uv_loop_t loop;
  kotte_pg_pool *pool;  /* registry, and the cancel's pg_cancel_backend() */
  kotte_pg_pool *qpool; /* one connection: the queries that get cancelled */
  kotte_query_registry *reg;
  uv_timer_t timer;
  int out; /* the pipe to B */
  int step;
  int pid; /* backend pid of qpool's connection */
} a_state;

static void say(a_state *a, const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (write(a->out, line, (size_t)n) != n) _exit(3);
}

static kotte_time now_us(void) { return kotte_clock_now(); }

typedef struct a_cancel {
  a_state *a;
  kotte_query_cancel_req *req;
} a_cancel;

static void on_cancel_backend(int status, const kotte_pg_result *res, void *ud) {
  a_cancel *c = ud;
  int ok = status == 0 && strcmp(kotte_pg_result_value(res, 0, 0), "t") == 0;
  kotte_query_cancel_done(c->req, ok ? 0 : status != 0 ? status : KOTTE_ENOTFOUND);
  free(c);
}

/* The owner's handler: pg_cancel_backend() of the query's backend, on a
 * connection of the same role (as Kotte's DatabaseConnection.cancel_backend). */
static void a_handler(kotte_query_cancel_req *req, const char *rid, const char *user, int pid,
                      void *ud) {
  a_cancel *c = calloc(1, sizeof *c);
  c->a = ud;
  c->req = req;
  char p[16];
  snprintf(p, sizeof p, "%d", pid);
  const char *v[] = { p };
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  q.sql = "SELECT pg_cancel_backend($1::int)";
  q.nparams = 1;
  q.values = v;
  if (kotte_pg_pool_query(c->a->pool, &q, on_cancel_backend, c) != 0) {
    kotte_query_cancel_done(req, KOTTE_EDB);
    free(c);
  }
}

static void a_next(a_state *a);

static void on_sleep_done(int status, const kotte_pg_result *res, void *ud) {
  a_state *a = ud;
  /* the first query is the one B cancels; the others run until A dies */
  say(a, "E %s %lld\n", status == KOTTE_EDB ? kotte_pg_result_sqlstate(res) : kotte_err_name(status),
      (long long)now_us());
}

static void a_sleep(a_state *a) {
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  q.sql = "SELECT pg_sleep(30)";
  q.timeout_ms = -1;
  if (kotte_pg_pool_query(a->qpool, &q, on_sleep_done, a) != 0) _exit(4);
}

static void on_pid(int status, const kotte_pg_result *res, void *ud) {
  a_state *a = ud;
  if (status != 0) _exit(5);
  a->pid = atoi(kotte_pg_result_value(res, 0, 0));
  a_next(a);
}

static void on_registered(int status, void *ud) {
  a_state *a = ud;
  if (status != 0) _exit(6);
  a_next(a);
}

static void a_register(a_state *a, const char *rid) {
  if (kotte_query_register(a->reg, rid, "alice", a->pid, on_registered, a) != 0) _exit(7);
}

/* The steps of A, each started by the end of the one before. */
static void a_next(a_state *a) {
  switch (a->step++) {
  case 0: { /* the backend pid of the query connection */
    kotte_pg_query q = KOTTE_PG_QUERY_INIT;
    q.sql = "SELECT pg_backend_pid()";
    if (kotte_pg_pool_query(a->qpool, &q, on_pid, a) != 0) _exit(8);
    break;
  }
  case 1: a_register(a, "query-1"); break;
  case 2:
    a_sleep(a);
    say(a, "R %s %d\n", kotte_query_registry_replica_id(a->reg), a->pid);
    break;
  }
}

static void a_wait_ready(uv_timer_t *t) {
  a_state *a = t->data;
  if (!kotte_query_registry_ready(a->reg)) return;
  uv_timer_stop(t);
  a_next(a);
}

/* Second round, on a line from B: two more queries, registered with the
 * pid of the one query connection, and one sleep on it. */
static void on_q3(int status, void *ud) {
  a_state *a = ud;
  a_sleep(a);
  say(a, "S\n");
}

static void on_q2_registered(int status, void *ud) {
  a_state *a = ud;
  kotte_query_register(a->reg, "query-3", "alice", a->pid, on_q3, a);
}

static void on_b_line2(uv_poll_t *p, int status, int events) {
  a_state *a = p->data;
  char c;
  if (read(0, &c, 1) != 1) _exit(0);
  if (c == '2') kotte_query_register(a->reg, "query-2", "alice", a->pid, on_q2_registered, a);
}

static void run_a(int in, int out, const char *ci) {
  a_state a;
  memset(&a, 0, sizeof a);
  a.out = out;
  dup2(in, 0);
  uv_loop_init(&a.loop);
  kotte_pg_pool_options po = KOTTE_PG_POOL_OPTIONS_INIT;
  po.conninfo = ci;
  if (kotte_pg_pool_new(&a.pool, &a.loop, &po) != 0) _exit(10);
  po.max_size = 1;
  if (kotte_pg_pool_new(&a.qpool, &a.loop, &po) != 0) _exit(11);
  kotte_query_options o = KOTTE_QUERY_OPTIONS_INIT;
  o.on_cancel = a_handler;
  o.cancel_userdata = &a;
  if (kotte_query_registry_new(&a.reg, &a.loop, a.pool, &o) != 0) _exit(12);
  uv_timer_init(&a.loop, &a.timer);
  a.timer.data = &a;
  uv_timer_start(&a.timer, a_wait_ready, 10, 10);
  uv_poll_t p; /* lines from B on stdin */
  uv_poll_init(&a.loop, &p, 0);
  p.data = &a;
  uv_poll_start(&p, UV_READABLE, on_b_line2);
  uv_run(&a.loop, UV_RUN_DEFAULT);
  _exit(0);
}

/* ---- process B ----------------------------------------------------------------- */

static int read_line(int fd, char *buf, size_t n) {
  size_t k = 0;
  while (k + 1 < n) {
    ssize_t r = read(fd, buf + k, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    if (buf[k] == '\n') break;
    k++;
  }
  buf[k] = '\0';
  return (int)k;
}

typedef struct b_state {
  kotte_runtime *rt;
  kotte_pg_pool *pool;
  kotte_query_registry *reg;
} b_state;

static void b_open(b_state *b, const char *ci) {
  assert_int_equal(kotte_runtime_new(&b->rt, NULL), 0);
  kotte_pg_pool_options po = KOTTE_PG_POOL_OPTIONS_INIT;
  po.conninfo = ci;
  assert_int_equal(kotte_pg_pool_open(&b->pool, b->rt, &po), 0);
  assert_int_equal(kotte_query_registry_open(&b->reg, b->rt, b->pool, NULL), 0);
  assert_string_equal(kotte_query_registry_backend_name(b->reg), "postgresql");
  for (int i = 0; i < 500 && !kotte_query_registry_ready(b->reg); i++) usleep(10000);
  assert_true(kotte_query_registry_ready(b->reg));
}

static void b_close(b_state *b) {
  kotte_query_registry_free(b->reg);
  kotte_pg_pool_free(b->pool);
  kotte_runtime_free(b->rt);
}

/* Rows of kotte_queries of replica @p replica, counted with plain libpq. */
static int rows_of(const char *ci, const char *replica) {
  PGconn *c = PQconnectdb(ci);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  const char *v[] = { replica };
  PGresult *r = PQexecParams(c, "SELECT count(*) FROM kotte_queries WHERE replica_id = $1", 1,
                             NULL, v, NULL, NULL, 0);
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  int n = atoi(PQgetvalue(r, 0, 0));
  PQclear(r);
  PQfinish(c);
  return n;
}

/* Waits until backend @p pid runs pg_sleep (A says "registered" once it
 * submitted the query; a cancel that reached the backend before the query
 * did would cancel nothing, in this test as in Kotte). */
static void wait_sleeping(const char *ci, int pid) {
  PGconn *c = PQconnectdb(ci);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  char sql[160];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND "
                            "state = 'active' AND query LIKE '%%pg_sleep%%'", pid);
  int n = 0;
  for (int i = 0; i < 1000 && n == 0; i++) {
    PGresult *r = PQexec(c, sql);
    n = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    if (n == 0) usleep(5000);
  }
  PQfinish(c);
  assert_int_equal(n, 1);
}

static void cancel_backend(const char *ci, int pid) {
  PGconn *c = PQconnectdb(ci);
  char sql[64];
  snprintf(sql, sizeof sql, "SELECT pg_cancel_backend(%d)", pid);
  PQclear(PQexec(c, sql));
  PQfinish(c);
}

static void a_cancel_on_b_ends_as_query_canceled_on_a(void **state) {
  const char *ci = pg_conninfo_or_skip("pg_query_cancel");
  int to_b[2], to_a[2];
  assert_int_equal(pipe(to_b), 0);
  assert_int_equal(pipe(to_a), 0);
  pid_t a = fork();
  assert_true(a >= 0);
  if (a == 0) {
    close(to_b[0]);
    close(to_a[1]);
    run_a(to_a[0], to_b[1], ci);
  }
  close(to_b[1]);
  close(to_a[0]);

  b_state b;
  b_open(&b, ci);
  char line[256], replica[64];
  int pid;
  assert_true(read_line(to_b[0], line, sizeof line) > 0);
  assert_int_equal(sscanf(line, "R %63s %d", replica, &pid), 2);
  assert_string_not_equal(replica, kotte_query_registry_replica_id(b.reg));

  /* B sees A's query */
  kotte_query_info *info = NULL;
  assert_int_equal(kotte_query_get_sync(b.reg, "query-1", &info, -1), 0);
  assert_string_equal(info->user_id, "alice");
  assert_string_equal(info->replica_id, replica);
  assert_int_equal(info->backend_pid, pid);
  assert_false(info->local);
  kotte_query_info_free(info);
  kotte_query_list *l = NULL;
  assert_int_equal(kotte_query_list_user_sync(b.reg, "alice", &l, -1), 0);
  assert_int_equal(l->count, 1);
  kotte_query_list_free(l);

  /* another user: forbidden, decided on B; unknown id: not found */
  assert_int_equal(kotte_query_cancel_sync(b.reg, "query-1", "mallory", -1), KOTTE_EFORBIDDEN);
  assert_int_equal(kotte_query_cancel_sync(b.reg, "no-such-query", "alice", -1), KOTTE_ENOTFOUND);

  /* the owner cancels it with its live connection */
  wait_sleeping(ci, pid);
  kotte_time t0 = kotte_clock_now();
  assert_int_equal(kotte_query_cancel_sync(b.reg, "query-1", "alice", -1), 0);
  kotte_time answered = kotte_clock_now();
  assert_true(read_line(to_b[0], line, sizeof line) > 0);
  char sqlstate[16];
  long long ended;
  assert_int_equal(sscanf(line, "E %15s %lld", sqlstate, &ended), 2);
  assert_string_equal(sqlstate, "57014"); /* query_canceled */
  assert_true(ended - t0 < 2000000);
  assert_true(answered - t0 < 2000000);
  printf("cancel across processes: query ended %.1f ms after the call, B answered after %.1f ms\n",
         (ended - t0) / 1000.0, (answered - t0) / 1000.0);
  /* unregistered, as Kotte does after a cancel */
  assert_int_equal(kotte_query_get_sync(b.reg, "query-1", &info, -1), KOTTE_ENOTFOUND);
  assert_int_equal(kotte_query_cancel_sync(b.reg, "query-1", "alice", -1), KOTTE_ENOTFOUND);

  /* A registers two more queries and runs one; then A dies */
  assert_int_equal(write(to_a[1], "2", 1), 1);
  assert_true(read_line(to_b[0], line, sizeof line) > 0);
  assert_string_equal(line, "S");
  assert_int_equal(rows_of(ci, replica), 2);
  assert_int_equal(kotte_query_get_sync(b.reg, "query-2", &info, -1), 0);
  kotte_query_info_free(info);
  assert_int_equal(kill(a, SIGKILL), 0);
  int ws;
  assert_int_equal(waitpid(a, &ws, 0), a);
  assert_true(WIFSIGNALED(ws));
  t0 = kotte_clock_now();
  assert_int_equal(kotte_query_cancel_sync(b.reg, "query-2", "alice", -1), KOTTE_ENOTFOUND);
  kotte_time took = kotte_clock_now() - t0;
  printf("cancel of a killed replica's query: not found after %.1f ms\n", took / 1000.0);
  assert_true(took < 2500000); /* the bound (2 s) and a round trip */
  uint64_t purged = 0;
  assert_int_equal(kotte_query_purge_sync(b.reg, &purged, -1), 0);
  assert_true(purged >= 1); /* query-3 (query-2's row went with the cancel) */
  assert_int_equal(rows_of(ci, replica), 0);
  assert_int_equal(kotte_query_get_sync(b.reg, "query-3", &info, -1), KOTTE_ENOTFOUND);

  cancel_backend(ci, pid); /* the killed A's pg_sleep would run 30 s on */
  close(to_a[1]);
  close(to_b[0]);
  b_close(&b);
}

/* An owner that is alive but does not answer in time: KOTTE_ETIMEDOUT
 * after the bound, never a hang. Its handler holds the request (as a
 * replica whose cancel hangs would) and answers only afterwards. */
static kotte_query_cancel_req *held;

static void holding_handler(kotte_query_cancel_req *req, const char *rid, const char *user,
                            int pid, void *ud) {
  held = req;
}

static void a_silent_owner_times_out_within_the_bound(void **state) {
  const char *ci = pg_conninfo_or_skip("pg_query_cancel");
  b_state a, b;
  memset(&a, 0, sizeof a);
  assert_int_equal(kotte_runtime_new(&a.rt, NULL), 0);
  kotte_pg_pool_options po = KOTTE_PG_POOL_OPTIONS_INIT;
  po.conninfo = ci;
  assert_int_equal(kotte_pg_pool_open(&a.pool, a.rt, &po), 0);
  kotte_query_options qo = KOTTE_QUERY_OPTIONS_INIT;
  qo.on_cancel = holding_handler;
  assert_int_equal(kotte_query_registry_open(&a.reg, a.rt, a.pool, &qo), 0);
  for (int i = 0; i < 500 && !kotte_query_registry_ready(a.reg); i++) usleep(10000);
  assert_true(kotte_query_registry_ready(a.reg));
  b_open(&b, ci);
  assert_int_equal(kotte_query_register_sync(a.reg, "silent-1", "alice", 1, -1), 0);
  kotte_time t0 = kotte_clock_now();
  assert_int_equal(kotte_query_cancel_sync(b.reg, "silent-1", "alice", -1), KOTTE_ETIMEDOUT);
  kotte_time took = kotte_clock_now() - t0;
  printf("silent owner: timed out after %.1f ms\n", took / 1000.0);
  assert_true(took >= 2000000 && took < 3000000);
  assert_non_null(held);
  assert_int_equal(kotte_query_cancel_done(held, KOTTE_EDB), 0); /* late: nobody waits */
  assert_int_equal(kotte_query_get_sync(b.reg, "silent-1", NULL, -1), 0);
  char a_id[64];
  snprintf(a_id, sizeof a_id, "%s", kotte_query_registry_replica_id(a.reg));
  b_close(&b);
  b_close(&a);
  assert_int_equal(rows_of(ci, a_id), 0); /* a registry's free deletes its rows */
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(a_cancel_on_b_ends_as_query_canceled_on_a),
    cmocka_unit_test(a_silent_owner_times_out_within_the_bound),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
