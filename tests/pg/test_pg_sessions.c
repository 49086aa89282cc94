/* The PostgreSQL session backend beyond the conformance suite: what the
 * table holds, concurrent merges from many connections, and purging 100,000
 * expired rows while gets go on. Prints figures; asserts behaviour only. */
#include <libpq-fe.h>
#include <sodium.h>

#include "pg_test_util.h"

static const char *conninfo;
static const unsigned char secret[] = "sessions-suite-secret-0123456789";

typedef struct fx {
  uv_loop_t loop;
  kotte_pg_pool *pool;
  kotte_session_store *store;
} fx;

static void open_fx_depth(fx *f, unsigned int max_size, const kotte_session_options *so,
                          unsigned int depth) {
  kotte_pg_pool_options o = KOTTE_PG_POOL_OPTIONS_INIT;
  o.conninfo = conninfo;
  o.max_size = max_size;
  o.pipeline_depth = depth;
  o.max_waiters = 100000;
  assert_int_equal(kotte_pg_pool_new(&f->pool, &f->loop, &o), 0);
  kotte_session_backend *be;
  assert_int_equal(kotte_session_backend_postgresql_new(&be, f->pool, secret, sizeof secret - 1), 0);
  assert_int_equal(kotte_session_store_new(&f->store, &f->loop, be, so), 0);
}

static void open_fx(fx *f, unsigned int max_size, const kotte_session_options *so) {
  open_fx_depth(f, max_size, so, 1);
}

static void close_fx(fx *f) {
  kotte_session_store_free(f->store);
  f->store = NULL;
  kotte_pg_pool_free(f->pool);
  f->pool = NULL;
  uv_run(&f->loop, UV_RUN_DEFAULT);
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  if (f->store) close_fx(f);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  free(f);
  return 0;
}

static void sql(fx *f, const char *text) {
  pg_call c;
  int rc = pg_run(f->pool, &c, 0, 60000, text, 0, NULL);
  if (rc != 0) fprintf(stderr, "%s: %s %s\n", text, kotte_strerror(rc), c.sqlstate);
  assert_int_equal(rc, 0);
}

static void sql_value(fx *f, const char *text, char *out, size_t n) {
  pg_call c;
  int rc = pg_run(f->pool, &c, 0, 60000, text, 0, NULL);
  if (rc != 0) fprintf(stderr, "%s: %s %s\n", text, kotte_strerror(rc), c.sqlstate);
  assert_int_equal(rc, 0);
  snprintf(out, n, "%s", c.value);
}

typedef struct sess_call {
  int done, status;
  kotte_session *s;
  uint64_t count;
} sess_call;

static void on_sess(int st, kotte_session *s, void *ud) {
  sess_call *c = ud;
  c->done++;
  c->status = st;
  c->s = s;
}

static void on_count(int st, uint64_t n, void *ud) {
  sess_call *c = ud;
  c->done++;
  c->status = st;
  c->count = n;
}

#define F fx *f = *state

static void the_table_never_holds_a_usable_token(void **state) {
  F;
  open_fx(f, 2, NULL);
  sql(f, "DELETE FROM kotte_sessions");
  sess_call c = { 0 };
  assert_int_equal(kotte_session_create(f->store, "alice", "{\"csrf_token\":\"abc\"}", on_sess, &c), 0);
  pg_wait(&f->loop, &c.done, 1);
  assert_int_equal(c.status, 0);
  char token[KOTTE_SESSION_ID_LEN + 1];
  snprintf(token, sizeof token, "%s", kotte_session_id(c.s));
  kotte_session_free(c.s);
  char row[512];
  sql_value(f, "SELECT row_to_json(s)::text FROM kotte_sessions s", row, sizeof row);
  printf("  stored row: %.160s...\n", row);
  assert_null(strstr(row, token));
  assert_non_null(strstr(row, "csrf_token"));
  /* nor does any 16-character piece of it appear */
  for (size_t i = 0; i + 16 <= KOTTE_SESSION_ID_LEN; i++) {
    char piece[17];
    memcpy(piece, token + i, 16);
    piece[16] = '\0';
    assert_null(strstr(row, piece));
  }
  /* a backend with another secret finds nothing under the same token */
  kotte_session_backend *other;
  kotte_session_store *st2;
  static const unsigned char other_secret[] = "a-different-secret-for-this-test";
  assert_int_equal(kotte_session_backend_postgresql_new(&other, f->pool, other_secret,
                                                        sizeof other_secret - 1), 0);
  assert_int_equal(kotte_session_store_new(&st2, &f->loop, other, NULL), 0);
  sess_call g = { 0 };
  assert_int_equal(kotte_session_get(st2, token, on_sess, &g), 0);
  pg_wait(&f->loop, &g.done, 1);
  assert_int_equal(g.status, KOTTE_ENOTFOUND);
  kotte_session_store_free(st2);
  assert_int_equal(kotte_session_backend_postgresql_new(&other, f->pool, secret, 8), KOTTE_EKEY);
}

#define N_UPDATES 200

/* Merges run inside the database: 200 concurrent updates over 8
 * connections, each adding its own key, leave all 200 keys. */
static void concurrent_updates_over_many_connections_lose_nothing(void **state) {
  F;
  open_fx(f, 8, NULL);
  sql(f, "DELETE FROM kotte_sessions");
  sess_call c = { 0 };
  assert_int_equal(kotte_session_create(f->store, "bob", "{}", on_sess, &c), 0);
  pg_wait(&f->loop, &c.done, 1);
  char id[KOTTE_SESSION_ID_LEN + 1];
  snprintf(id, sizeof id, "%s", kotte_session_id(c.s));
  kotte_session_free(c.s);
  static sess_call u[N_UPDATES];
  memset(u, 0, sizeof u);
  for (int i = 0; i < N_UPDATES; i++) {
    char patch[64];
    snprintf(patch, sizeof patch, "{\"k%03d\":%d}", i, i);
    assert_int_equal(kotte_session_update(f->store, id, patch, on_sess, &u[i]), 0);
  }
  for (int i = 0; i < N_UPDATES; i++) pg_wait(&f->loop, &u[i].done, 1);
  for (int i = 0; i < N_UPDATES; i++) {
    assert_int_equal(u[i].status, 0);
    kotte_session_free(u[i].s);
  }
  sess_call g = { 0 };
  assert_int_equal(kotte_session_get(f->store, id, on_sess, &g), 0);
  pg_wait(&f->loop, &g.done, 1);
  assert_int_equal(g.status, 0);
  for (int i = 0; i < N_UPDATES; i++) {
    char key[16];
    snprintf(key, sizeof key, "\"k%03d\":%d", i, i);
    assert_non_null(strstr(kotte_session_data(g.s), key));
  }
  kotte_session_free(g.s);
  kotte_pg_pool_stats s = pg_stats(f->pool);
  printf("  %d concurrent merges over %u connections: all keys kept\n", N_UPDATES, s.open);
}

/* ---- purge under load ---------------------------------------------------- */

#define N_EXPIRED 100000
#define N_LIVE 64

typedef struct load {
  fx *f;
  char ids[N_LIVE][KOTTE_SESSION_ID_LEN + 1];
  int running;
  int inflight;
  unsigned int next;
  uint64_t started[8];
  double *lat;
  size_t n, cap;
  int errors;
} load;

static void load_next(load *l, int slot);

typedef struct slot_ctx {
  load *l;
  int slot;
} slot_ctx;

static slot_ctx slots[8];

static void on_load_get(int st, kotte_session *s, void *ud) {
  slot_ctx *sc = ud;
  load *l = sc->l;
  kotte_session_free(s);
  if (st != 0) l->errors++;
  if (l->n < l->cap) l->lat[l->n++] = (double)(uv_hrtime() - l->started[sc->slot]) / 1000.0;
  l->inflight--;
  if (l->running) load_next(l, sc->slot);
}

static void load_next(load *l, int slot) {
  l->started[slot] = uv_hrtime();
  l->inflight++;
  assert_int_equal(kotte_session_get(l->f->store, l->ids[l->next++ % N_LIVE], on_load_get, &slots[slot]), 0);
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void percentiles(double *v, size_t n, double *p50, double *p99) {
  qsort(v, n, sizeof *v, cmp_d);
  *p50 = n ? v[n / 2] : 0;
  *p99 = n ? v[(n * 99) / 100] : 0;
}

static void on_timer_flag(uv_timer_t *t) { *(int *)t->data = 1; }

static void gets_stay_fast_while_100k_expired_rows_are_purged(void **state) {
  F;
  kotte_session_options so = KOTTE_SESSION_OPTIONS_INIT;
  so.purge_batch = 500;
  open_fx(f, 4, &so);
  sql(f, "DELETE FROM kotte_sessions");
  load *l = calloc(1, sizeof *l);
  l->f = f;
  l->cap = 400000;
  l->lat = calloc(l->cap, sizeof *l->lat);
  for (int i = 0; i < N_LIVE; i++) {
    sess_call c = { 0 };
    assert_int_equal(kotte_session_create(f->store, "live", "{\"a\":1}", on_sess, &c), 0);
    pg_wait(&f->loop, &c.done, 1);
    assert_int_equal(c.status, 0);
    snprintf(l->ids[i], sizeof l->ids[i], "%s", kotte_session_id(c.s));
    kotte_session_free(c.s);
  }
  uint64_t t0 = uv_hrtime();
  sql(f, "INSERT INTO kotte_sessions (session_id, user_id, created_at, last_activity, expires_at, "
         "max_expires_at, idle_timeout_seconds) SELECT 'expired-' || g, 'gone', now() - interval '2 h', "
         "now() - interval '2 h', now() - interval '1 h' - g * interval '1 ms', now() - interval '1 h', 1800 "
         "FROM generate_series(1, 100000) g");
  printf("  inserted %d expired rows in %.1f s\n", N_EXPIRED, (double)(uv_hrtime() - t0) / 1e9);

  /* baseline: gets with nothing else going on */
  for (int i = 0; i < 8; i++) slots[i] = (slot_ctx){ l, i };
  l->running = 1;
  for (int i = 0; i < 8; i++) load_next(l, i);
  uv_timer_t t;
  int fired = 0;
  uv_timer_init(&f->loop, &t);
  t.data = &fired;
  uv_timer_start(&t, on_timer_flag, 1000, 0);
  while (!fired) uv_run(&f->loop, UV_RUN_ONCE);
  size_t base_n = l->n;
  double b50, b99;
  percentiles(l->lat, base_n, &b50, &b99);

  /* the purge, with the same gets going on */
  l->n = 0;
  sess_call pc = { 0 };
  t0 = uv_hrtime();
  assert_int_equal(kotte_session_purge_expired(f->store, on_count, &pc), 0);
  while (!pc.done) uv_run(&f->loop, UV_RUN_ONCE);
  double purge_s = (double)(uv_hrtime() - t0) / 1e9;
  l->running = 0;
  while (l->inflight) uv_run(&f->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  double d50, d99;
  size_t during_n = l->n;
  percentiles(l->lat, during_n, &d50, &d99);
  printf("  purged %llu expired rows in %.2f s (batches of 500)\n", (unsigned long long)pc.count, purge_s);
  printf("  gets, 8 concurrent: before %zu in 1 s, p50 %.0f us, p99 %.0f us; during the purge %zu "
         "in %.2f s, p50 %.0f us, p99 %.0f us\n",
         base_n, b50, b99, during_n, purge_s, d50, d99);
  assert_int_equal(pc.status, 0);
  assert_int_equal(pc.count, N_EXPIRED);
  assert_int_equal(l->errors, 0);
  assert_true(during_n > 0);
  char left[32];
  sql_value(f, "SELECT count(*) FROM kotte_sessions", left, sizeof left);
  assert_int_equal(atoi(left), N_LIVE);
  free(l->lat);
  free(l);
}

/* Two replicas sweeping at once: the advisory lock lets one work at a time,
 * and between them every expired row goes exactly once. */
static void two_replicas_purging_at_once_share_the_work(void **state) {
  F;
  kotte_session_options so = KOTTE_SESSION_OPTIONS_INIT;
  so.purge_batch = 200;
  open_fx(f, 2, &so);
  sql(f, "DELETE FROM kotte_sessions");
  sql(f, "INSERT INTO kotte_sessions (session_id, user_id, created_at, last_activity, expires_at, "
         "max_expires_at, idle_timeout_seconds) SELECT 'expired-' || g, 'gone', now() - interval '2 h', "
         "now() - interval '2 h', now() - interval '1 h', now() - interval '1 h', 1800 "
         "FROM generate_series(1, 20000) g");
  fx g = { 0 };
  g.loop = f->loop; /* same loop, its own pool: another replica */
  kotte_pg_pool_options o = KOTTE_PG_POOL_OPTIONS_INIT;
  o.conninfo = conninfo;
  kotte_pg_pool *pool2;
  assert_int_equal(kotte_pg_pool_new(&pool2, &f->loop, &o), 0);
  kotte_session_backend *be2;
  kotte_session_store *st2;
  assert_int_equal(kotte_session_backend_postgresql_new(&be2, pool2, secret, sizeof secret - 1), 0);
  assert_int_equal(kotte_session_store_new(&st2, &f->loop, be2, &so), 0);
  uint64_t total = 0;
  for (int round = 0; round < 50; round++) {
    sess_call a = { 0 }, b = { 0 };
    assert_int_equal(kotte_session_purge_expired(f->store, on_count, &a), 0);
    assert_int_equal(kotte_session_purge_expired(st2, on_count, &b), 0);
    while (!a.done || !b.done) uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(a.status, 0);
    assert_int_equal(b.status, 0);
    total += a.count + b.count;
    if (a.count + b.count == 0) break;
  }
  assert_int_equal(total, 20000);
  kotte_session_store_free(st2);
  kotte_pg_pool_free(pool2);
  (void)g;
}

/* ---- HOT slides (sql/migrations/0003) ------------------------------------ */

/* A clock the test moves: the buckets a slide lands in are then known. */
static kotte_time fake_now;
static kotte_time fake_clock(void *ctx) {
  (void)ctx;
  return fake_now;
}

#define SEC 1000000LL
#define BUCKET_S 300 /* expires_bucket's width */

/* Every row's text, first column, one a line. */
typedef struct rows_call {
  int done, status;
  char text[8192];
} rows_call;

static void on_rows(int status, const kotte_pg_result *res, void *ud) {
  rows_call *c = ud;
  c->done++;
  c->status = status;
  size_t len = 0;
  for (int i = 0; status == 0 && i < kotte_pg_result_ntuples(res); i++) {
    int w = snprintf(c->text + len, sizeof c->text - len, "%s\n", kotte_pg_result_value(res, i, 0));
    if (w < 0 || (size_t)w >= sizeof c->text - len) break;
    len += (size_t)w;
  }
}

static void sql_rows(fx *f, const char *text, char *out, size_t n) {
  rows_call *c = calloc(1, sizeof *c);
  kotte_pg_query q = KOTTE_PG_QUERY_INIT;
  q.sql = text;
  q.timeout_ms = 60000;
  assert_int_equal(kotte_pg_pool_query(f->pool, &q, on_rows, c), 0);
  pg_wait(&f->loop, &c->done, 1);
  assert_int_equal(c->status, 0);
  snprintf(out, n, "%s", c->text);
  free(c);
}

/* Statistics of other connections reach pg_stat_user_tables whenever those
 * backends flush them (at the latest when they exit); wait until this
 * connection is the only one in the database, so that the counters below
 * move for its own statements only. */
static void wait_alone(fx *f) {
  char n[32] = "";
  for (int i = 0; i < 200; i++) {
    sql_value(f, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                 "backend_type = 'client backend' AND pid <> pg_backend_pid()", n, sizeof n);
    if (atoi(n) == 0) return;
    uv_sleep(50);
  }
  fail_msg("other connections stay in the database: %s", n);
}

/* n_tup_upd and n_tup_hot_upd of kotte_sessions, this connection's own
 * pending counts included: pg_stat_force_next_flush() makes the backend
 * flush them before it answers the next query. The pool has one
 * connection, so the store's statements ran on it. */
static void update_stats(fx *f, long long *upd, long long *hot) {
  sql(f, "SELECT pg_stat_force_next_flush()");
  char v[64];
  sql_value(f, "SELECT n_tup_upd || ' ' || n_tup_hot_upd FROM pg_stat_user_tables "
               "WHERE relname = 'kotte_sessions'", v, sizeof v);
  assert_int_equal(sscanf(v, "%lld %lld", upd, hot), 2);
}

#define N_HOT_SESSIONS 20
#define N_HOT_ROUNDS 25

static void get_ok(fx *f, const char *id) {
  sess_call c = { 0 };
  assert_int_equal(kotte_session_get(f->store, id, on_sess, &c), 0);
  pg_wait(&f->loop, &c.done, 1);
  assert_int_equal(c.status, 0);
  kotte_session_free(c.s);
}

/* Gets and updates slide expires_at; with no index on it, and the expiry
 * bucket unchanged within 5 minutes, PostgreSQL makes them HOT updates
 * (no index entries). Crossing a bucket boundary is the exception, and
 * there the bucket index is kept up to date. */
static void slides_within_an_expiry_bucket_are_hot_updates(void **state) {
  F;
  kotte_session_options so = KOTTE_SESSION_OPTIONS_INIT;
  so.clock = fake_clock;
  so.touch_interval_s = 0; /* every get writes its slide: the subject here */
  /* expires_at = now + 1800 s lands 100 s into a bucket; the slides below
   * move it by 10 ms each, 10 s in all */
  fake_now = (1700000000LL / BUCKET_S * BUCKET_S + 100) * SEC;
  open_fx(f, 1, &so);
  sql(f, "DELETE FROM kotte_sessions");
  static char ids[N_HOT_SESSIONS][KOTTE_SESSION_ID_LEN + 1];
  for (int i = 0; i < N_HOT_SESSIONS; i++) {
    sess_call c = { 0 };
    assert_int_equal(kotte_session_create(f->store, "hot", "{\"csrf_token\":\"abc\"}", on_sess, &c), 0);
    pg_wait(&f->loop, &c.done, 1);
    assert_int_equal(c.status, 0);
    snprintf(ids[i], sizeof ids[i], "%s", kotte_session_id(c.s));
    kotte_session_free(c.s);
  }
  wait_alone(f);
  long long upd0, hot0, upd1, hot1, upd2, hot2;
  update_stats(f, &upd0, &hot0);
  for (int r = 0; r < N_HOT_ROUNDS; r++)
    for (int i = 0; i < N_HOT_SESSIONS; i++) {
      fake_now += 10000;
      get_ok(f, ids[i]);
      fake_now += 10000;
      char patch[64];
      snprintf(patch, sizeof patch, "{\"round\":%d,\"page\":\"/graph/%d\"}", r, i);
      sess_call c = { 0 };
      assert_int_equal(kotte_session_update(f->store, ids[i], patch, on_sess, &c), 0);
      pg_wait(&f->loop, &c.done, 1);
      assert_int_equal(c.status, 0);
      kotte_session_free(c.s);
    }
  update_stats(f, &upd1, &hot1);
  long long n = 2LL * N_HOT_ROUNDS * N_HOT_SESSIONS;
  printf("  %lld slides (gets and updates) within one expiry bucket: %lld updates, %lld HOT\n", n,
         upd1 - upd0, hot1 - hot0);
  assert_int_equal(upd1 - upd0, n); /* every slide counted: the flush took them all */
  assert_true((hot1 - hot0) * 100 >= n * 98);

  /* one bucket later: every slide moves its row to the next bucket */
  fake_now += BUCKET_S * SEC;
  for (int i = 0; i < N_HOT_SESSIONS; i++) get_ok(f, ids[i]);
  update_stats(f, &upd2, &hot2);
  printf("  %d slides across a bucket boundary: %lld updates, %lld HOT\n", N_HOT_SESSIONS,
         upd2 - upd1, hot2 - hot1);
  assert_int_equal(upd2 - upd1, N_HOT_SESSIONS);
  assert_int_equal(hot2 - hot1, 0);

  /* the bucket is expires_at floored to 5 minutes, in every row */
  char bad[32];
  sql_value(f, "SELECT count(*) FROM kotte_sessions WHERE expires_bucket IS DISTINCT FROM "
               "date_bin(interval '5 minutes', expires_at, timestamptz '2000-01-01 00:00:00+00') "
               "OR expires_bucket > expires_at OR expires_at >= expires_bucket + interval '5 minutes'",
            bad, sizeof bad);
  assert_int_equal(atoi(bad), 0);
  sql(f, "DELETE FROM kotte_sessions");
}

/* The purge finds its candidates through the bucket index, yet removes
 * exactly the rows whose expires_at has passed: those of earlier buckets
 * and those of the bucket that holds "now" up to now, nothing at or after. */
static void purge_removes_exactly_the_expired_rows(void **state) {
  F;
  kotte_session_options so = KOTTE_SESSION_OPTIONS_INIT;
  so.clock = fake_clock;
  so.purge_batch = 97;
  /* 2024-01-01 12:02:30 UTC: the middle of bucket 12:00-12:05 */
  fake_now = 1704110550LL * SEC;
  open_fx(f, 1, &so);
  sql(f, "DELETE FROM kotte_sessions");
  /* expiries every 0.7 s from 14 min before now to 14 min after: five
   * buckets on each side, 1200 rows before now, one at now exactly */
  sql(f, "INSERT INTO kotte_sessions (session_id, user_id, created_at, last_activity, expires_at, "
         "max_expires_at, idle_timeout_seconds) SELECT 'edge-' || g, 'edge', "
         "timestamptz '2024-01-01 11:00:00+00', timestamptz '2024-01-01 11:00:00+00', "
         "timestamptz '2024-01-01 12:02:30+00' + g * interval '0.7 s', "
         "timestamptz '2024-01-01 13:00:00+00', 1800 FROM generate_series(-1200, 1200) g");
  /* and enough live rows far ahead that the planner would rather not read
   * the table in full */
  sql(f, "INSERT INTO kotte_sessions (session_id, user_id, created_at, last_activity, expires_at, "
         "max_expires_at, idle_timeout_seconds) SELECT 'ahead-' || g, 'ahead', "
         "timestamptz '2024-01-01 12:00:00+00', timestamptz '2024-01-01 12:00:00+00', "
         "timestamptz '2024-01-01 12:30:00+00' + g * interval '10 ms', "
         "timestamptz '2024-01-01 13:00:00+00', 1800 FROM generate_series(1, 20000) g");
  sess_call pc = { 0 };
  assert_int_equal(kotte_session_purge_expired(f->store, on_count, &pc), 0);
  pg_wait(&f->loop, &pc.done, 1);
  assert_int_equal(pc.status, 0);
  assert_int_equal(pc.count, 1200);
  char v[128];
  /* left: every row from the one expiring exactly now on */
  sql_value(f, "SELECT count(*) || ' ' || min(session_id) || ' ' || (min(expires_at) = "
               "timestamptz '2024-01-01 12:02:30+00') FROM kotte_sessions WHERE user_id = 'edge'",
            v, sizeof v);
  assert_string_equal(v, "1201 edge-0 true");
  sql_value(f, "SELECT count(*) FROM kotte_sessions WHERE user_id = 'ahead'", v, sizeof v);
  assert_int_equal(atoi(v), 20000);
  /* a second sweep finds nothing */
  sess_call pc2 = { 0 };
  assert_int_equal(kotte_session_purge_expired(f->store, on_count, &pc2), 0);
  pg_wait(&f->loop, &pc2.done, 1);
  assert_int_equal(pc2.status, 0);
  assert_int_equal(pc2.count, 0);

  /* the backend's own prepared purge, on this (only) connection, scans the
   * bucket index */
  char name[128], plan[8192], text[512];
  sql_value(f, "SELECT name FROM pg_prepared_statements WHERE statement LIKE "
               "'%pg_try_advisory_xact_lock%'", name, sizeof name);
  assert_true(name[0] != '\0');
  snprintf(text, sizeof text, "EXPLAIN (COSTS OFF) EXECUTE %s(timestamptz '2024-01-01 12:02:30+00', 97)",
           name);
  sql_rows(f, text, plan, sizeof plan);
  printf("  purge plan:\n%s", plan);
  assert_non_null(strstr(plan, "kotte_sessions_expires_bucket_idx"));
  assert_non_null(strstr(plan, "expires_at <"));
  /* and so does the generic plan, which a prepared statement may switch to */
  sql(f, "SET plan_cache_mode = force_generic_plan");
  sql_rows(f, text, plan, sizeof plan);
  sql(f, "RESET plan_cache_mode");
  assert_non_null(strstr(plan, "kotte_sessions_expires_bucket_idx"));
  assert_non_null(strstr(plan, "expires_at < $1"));
  sql(f, "DELETE FROM kotte_sessions");
}

/* ---- a row changing under a statement ------------------------------------ */

/* A plain libpq connection outside the pool, to hold a change open. */
static PGconn *side_open(void) {
  PGconn *c = PQconnectdb(conninfo);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  return c;
}

static void side_exec(PGconn *c, const char *text) {
  PGresult *r = PQexec(c, text);
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
    fail_msg("%s: %s", text, PQerrorMessage(c));
  PQclear(r);
}

/* Runs the loop until a backend waits for a lock that @p side's open
 * transaction holds (asked on a connection of its own: the lock manager's
 * state now, not a statistics snapshot). */
static void wait_for_lock_waiter(fx *f, PGconn *probe, PGconn *side) {
  char q[160];
  snprintf(q, sizeof q, "SELECT count(*) FROM pg_stat_activity WHERE %d = ANY(pg_blocking_pids(pid))",
           PQbackendPID(side));
  for (int i = 0; i < 2000; i++) {
    uv_run(&f->loop, UV_RUN_NOWAIT);
    PGresult *r = PQexec(probe, q);
    int n = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    if (n > 0) return;
    uv_sleep(5);
  }
  fail_msg("no statement came to wait for the row lock");
}

static void new_session(fx *f, const char *data, char id[KOTTE_SESSION_ID_LEN + 1]) {
  sess_call c = { 0 };
  assert_int_equal(kotte_session_create(f->store, "carol", data, on_sess, &c), 0);
  pg_wait(&f->loop, &c.done, 1);
  assert_int_equal(c.status, 0);
  snprintf(id, KOTTE_SESSION_ID_LEN + 1, "%s", kotte_session_id(c.s));
  kotte_session_free(c.s);
}

/* The session's row is changed by @p change in another transaction; an
 * update of it starts, waits for that row, and the other transaction
 * commits. The update's snapshot still saw the old row; the outcome must
 * follow the new one: @p want. */
static void update_meets(fx *f, const char *change, const char *patch, int want) {
  kotte_session_options so = KOTTE_SESSION_OPTIONS_INIT;
  so.max_data_size = 256;
  open_fx(f, 2, &so);
  sql(f, "DELETE FROM kotte_sessions");
  char id[KOTTE_SESSION_ID_LEN + 1];
  new_session(f, "{\"a\":1}", id);
  PGconn *side = side_open(), *probe = side_open();
  side_exec(side, "BEGIN");
  side_exec(side, change);
  sess_call u = { 0 };
  assert_int_equal(kotte_session_update(f->store, id, patch, on_sess, &u), 0);
  wait_for_lock_waiter(f, probe, side);
  assert_int_equal(u.done, 0);
  side_exec(side, "COMMIT");
  pg_wait(&f->loop, &u.done, 1);
  printf("  update after \"%.40s...\": %s\n", change, kotte_err_name(u.status));
  assert_int_equal(u.status, want);
  if (u.s) kotte_session_free(u.s);
  PQfinish(side);
  PQfinish(probe);
}

static void an_update_of_a_row_deleted_meanwhile_says_not_found(void **state) {
  F;
  update_meets(f, "DELETE FROM kotte_sessions", "{\"b\":2}", KOTTE_ENOTFOUND);
}

/* The other transaction grew the data so that the merge no longer fits:
 * too big, and the grown data stays (in the old snapshot it fitted). */
static void an_update_of_a_row_grown_meanwhile_says_too_big(void **state) {
  F;
  update_meets(f, "UPDATE kotte_sessions SET data = data || jsonb_build_object('big', repeat('x', 200))",
               "{\"b\":\"0123456789012345678901234567890123456789012345678901234567890123\"}",
               KOTTE_ETOOBIG);
  char v[64];
  sql_value(f, "SELECT octet_length(data->>'big') || ' ' || (data ? 'b')::text FROM kotte_sessions", v,
            sizeof v);
  assert_string_equal(v, "200 false");
}

/* The other transaction only slid the row: the merge applies to the new
 * version, keeping both changes. */
static void an_update_of_a_row_changed_meanwhile_keeps_both_changes(void **state) {
  F;
  update_meets(f, "UPDATE kotte_sessions SET data = data || '{\"side\":true}'", "{\"b\":2}", 0);
  char v[128];
  sql_value(f, "SELECT data::text FROM kotte_sessions", v, sizeof v);
  assert_string_equal(v, "{\"a\": 1, \"b\": 2, \"side\": true}");
}

/* The row is deleted and put back under every run of the update, while
 * that run waits for it: each run wrote nothing and saw the row live and
 * fitting, so it runs again; after 4 runs it gives up with KOTTE_ECONFLICT,
 * and the row is as the other transaction left it. */
static void an_update_that_keeps_meeting_a_changing_row_gives_up(void **state) {
  F;
  open_fx(f, 2, NULL);
  sql(f, "DELETE FROM kotte_sessions");
  char id[KOTTE_SESSION_ID_LEN + 1];
  new_session(f, "{\"a\":1}", id);
  PGconn *side = side_open(), *probe = side_open();
  static const char cols[] = "session_id, user_id, data, created_at, last_activity, expires_at, "
                             "max_expires_at, idle_timeout_seconds, token_sealed";
  char again[512];
  snprintf(again, sizeof again, "DELETE FROM kotte_sessions; INSERT INTO kotte_sessions (%s) "
           "SELECT %s FROM keep", cols, cols);
  side_exec(side, "CREATE TEMP TABLE keep AS SELECT * FROM kotte_sessions");
  side_exec(side, "BEGIN");
  side_exec(side, again);
  sess_call u = { 0 };
  assert_int_equal(kotte_session_update(f->store, id, "{\"b\":2}", on_sess, &u), 0);
  for (int run = 1; run <= 4; run++) {
    wait_for_lock_waiter(f, probe, side); /* this run waits for the row */
    assert_int_equal(u.done, 0);
    side_exec(side, "COMMIT");
    if (run < 4) { /* the next run will meet the same, before the loop sends it */
      side_exec(side, "BEGIN");
      side_exec(side, again);
    }
  }
  pg_wait(&f->loop, &u.done, 1);
  printf("  update under 4 changes in a row: %s (%s)\n", kotte_err_name(u.status),
         kotte_error_detail());
  assert_int_equal(u.status, KOTTE_ECONFLICT);
  char v[128];
  sql_value(f, "SELECT data::text FROM kotte_sessions", v, sizeof v);
  assert_string_equal(v, "{\"a\": 1}");
  PQfinish(side);
  PQfinish(probe);
}

/* A get or an update that finds the record dead deletes it (the backend's
 * miss path, one statement more); a get of an absent id writes nothing. */
static void a_miss_deletes_the_dead_record(void **state) {
  F;
  open_fx(f, 2, NULL);
  sql(f, "DELETE FROM kotte_sessions");
  char id[KOTTE_SESSION_ID_LEN + 1], id2[KOTTE_SESSION_ID_LEN + 1];
  new_session(f, "{}", id);
  new_session(f, "{}", id2);
  sql(f, "UPDATE kotte_sessions SET expires_at = now() - interval '1 second'");
  char n[32];
  sql_value(f, "SELECT count(*) FROM kotte_sessions", n, sizeof n);
  assert_string_equal(n, "2");
  sess_call g = { 0 }, u = { 0 }, a = { 0 };
  assert_int_equal(kotte_session_get(f->store, id, on_sess, &g), 0);
  assert_int_equal(kotte_session_update(f->store, id2, "{\"x\":1}", on_sess, &u), 0);
  char absent[KOTTE_SESSION_ID_LEN + 1];
  memset(absent, 'A', KOTTE_SESSION_ID_LEN);
  absent[KOTTE_SESSION_ID_LEN] = '\0';
  assert_int_equal(kotte_session_get(f->store, absent, on_sess, &a), 0);
  pg_wait(&f->loop, &g.done, 1);
  pg_wait(&f->loop, &u.done, 1);
  pg_wait(&f->loop, &a.done, 1);
  assert_int_equal(g.status, KOTTE_ENOTFOUND);
  assert_int_equal(u.status, KOTTE_ENOTFOUND);
  assert_int_equal(a.status, KOTTE_ENOTFOUND);
  sql_value(f, "SELECT count(*) FROM kotte_sessions", n, sizeof n);
  assert_string_equal(n, "0");
}

/* Runs @p text as the tables' owner (KOTTE_TEST_PG_OWNER_CONNINFO). */
static void owner_exec(const char *text) {
  PGconn *c = PQconnectdb(pg_env("KOTTE_TEST_PG_OWNER_CONNINFO"));
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  side_exec(c, text);
  PQfinish(c);
}

/* The miss is the answer even when the dead record cannot be deleted (here
 * the role may not DELETE): not found, and the row waits for the purge. */
static void a_miss_that_cannot_delete_still_says_not_found(void **state) {
  F;
  open_fx(f, 2, NULL);
  sql(f, "DELETE FROM kotte_sessions");
  char id[KOTTE_SESSION_ID_LEN + 1];
  new_session(f, "{}", id);
  sql(f, "UPDATE kotte_sessions SET expires_at = now() - interval '1 second'");
  owner_exec("REVOKE DELETE ON kotte_sessions FROM kotte_app");
  sess_call g = { 0 }, u = { 0 };
  assert_int_equal(kotte_session_get(f->store, id, on_sess, &g), 0);
  assert_int_equal(kotte_session_update(f->store, id, "{\"x\":1}", on_sess, &u), 0);
  pg_wait(&f->loop, &g.done, 1);
  pg_wait(&f->loop, &u.done, 1);
  owner_exec("GRANT DELETE ON kotte_sessions TO kotte_app");
  assert_int_equal(g.status, KOTTE_ENOTFOUND);
  assert_int_equal(u.status, KOTTE_ENOTFOUND);
  char n[32];
  sql_value(f, "SELECT count(*) FROM kotte_sessions", n, sizeof n);
  assert_string_equal(n, "1");
  sql(f, "DELETE FROM kotte_sessions");
}

/* The point of the touch interval: gets inside it write no row (each is
 * one SELECT); the first get after it writes one. */
static void gets_inside_the_touch_interval_write_nothing(void **state) {
  F;
  kotte_session_options so = KOTTE_SESSION_OPTIONS_INIT; /* default: 18 s of 1800 */
  so.clock = fake_clock;
  fake_now = 1700000000LL * SEC;
  open_fx(f, 1, &so);
  sql(f, "DELETE FROM kotte_sessions");
  sess_call c = { 0 };
  assert_int_equal(kotte_session_create(f->store, "reader", "{}", on_sess, &c), 0);
  pg_wait(&f->loop, &c.done, 1);
  assert_int_equal(c.status, 0);
  char id[KOTTE_SESSION_ID_LEN + 1];
  snprintf(id, sizeof id, "%s", kotte_session_id(c.s));
  kotte_session_free(c.s);
  wait_alone(f);
  long long upd0, hot0, upd1, hot1, upd2, hot2;
  update_stats(f, &upd0, &hot0);
  for (int i = 0; i < 100; i++) {
    fake_now += 100000; /* 10 s in all */
    get_ok(f, id);
  }
  update_stats(f, &upd1, &hot1);
  assert_int_equal(upd1 - upd0, 0);
  fake_now += 8 * SEC; /* 18 s after the create */
  get_ok(f, id);
  update_stats(f, &upd2, &hot2);
  assert_int_equal(upd2 - upd1, 1);
}

/* ---- gathered reads (pipelining pool) ---------------------------------------- */

typedef struct read_call {
  int done, status;
  char user[32];
  const char *want; /* the user id a live read must come back with; NULL: a miss */
} read_call;

static void on_read(int st, kotte_session *s, void *ud) {
  read_call *c = ud;
  c->done++;
  c->status = st;
  if (s) snprintf(c->user, sizeof c->user, "%s", kotte_session_user_id(s));
  kotte_session_free(s);
}

static void on_status(int st, void *ud) {
  sess_call *c = ud;
  c->done++;
  c->status = st;
}

static uint64_t pool_queries(fx *f) {
  kotte_pg_pool_stats st = { .version = KOTTE_PG_STATS_VERSION };
  assert_int_equal(kotte_pg_pool_get_stats(f->pool, &st), 0);
  return st.queries;
}

#define G_LIVE 100
#define G_EACH 10 /* dead, stale (slide due), deleted, never created */
#define G_READS (2 * G_LIVE + 4 * G_EACH)

/* With a pipelining pool the reads inside the touch interval that one loop
 * turn starts go as a few S_GET_MANY statements (backend_postgresql.c),
 * more than one statement's 64: each read still gets its own answer, as
 * if it had gone alone: a live session twice in the turn answers twice,
 * a dead row answers not found and is reaped, a read whose slide is due
 * writes it, a deleted or unknown id answers not found. */
static void gathered_reads_answer_each_read_as_if_alone(void **state) {
  F;
  kotte_session_options so = KOTTE_SESSION_OPTIONS_INIT; /* touch interval 18 s of 1800 */
  so.clock = fake_clock;
  fake_now = 1700000000LL * SEC;
  open_fx_depth(f, 2, &so, 8);
  sql(f, "DELETE FROM kotte_sessions");
  static char ids[G_LIVE + 3 * G_EACH][KOTTE_SESSION_ID_LEN + 1];
  static read_call calls[G_READS];
  const char *kinds[] = { "live", "dead", "stale", "gone" };
  int n_ids = 0;
  for (int k = 0; k < 4; k++)
    for (int i = 0; i < (k == 0 ? G_LIVE : G_EACH); i++) {
      char user[32];
      snprintf(user, sizeof user, "%s-%d", kinds[k], i);
      sess_call c = { 0 };
      assert_int_equal(kotte_session_create(f->store, user, "{}", on_sess, &c), 0);
      pg_wait(&f->loop, &c.done, 1);
      assert_int_equal(c.status, 0);
      snprintf(ids[n_ids++], KOTTE_SESSION_ID_LEN + 1, "%s", kotte_session_id(c.s));
      kotte_session_free(c.s);
    }
  sql(f, "UPDATE kotte_sessions SET expires_at = to_timestamp(1700000000) - interval '1 second' "
         "WHERE user_id LIKE 'dead-%'");
  sql(f, "UPDATE kotte_sessions SET last_activity = to_timestamp(1700000000) - interval '60 s' "
         "WHERE user_id LIKE 'stale-%'");
  for (int i = 0; i < G_EACH; i++) {
    sess_call c = { 0 };
    assert_int_equal(kotte_session_delete(f->store, ids[G_LIVE + 2 * G_EACH + i], on_status, &c), 0);
    pg_wait(&f->loop, &c.done, 1);
    assert_int_equal(c.status, 0);
  }
  uint64_t q0 = pool_queries(f);
  /* every read in one turn: nothing runs the loop until all are asked */
  int n = 0;
  static char users[G_READS][32];
  for (int rep = 0; rep < 2; rep++)
    for (int i = 0; i < G_LIVE; i++) {
      snprintf(users[n], sizeof users[n], "live-%d", i);
      calls[n].want = users[n];
      assert_int_equal(kotte_session_get(f->store, ids[i], on_read, &calls[n]), 0);
      n++;
    }
  for (int i = 0; i < 3 * G_EACH; i++) {
    int stale = i >= G_EACH && i < 2 * G_EACH;
    if (stale) {
      snprintf(users[n], sizeof users[n], "stale-%d", i - G_EACH);
      calls[n].want = users[n];
    }
    assert_int_equal(kotte_session_get(f->store, ids[G_LIVE + i], on_read, &calls[n]), 0);
    n++;
  }
  for (int i = 0; i < G_EACH; i++) {
    char absent[KOTTE_SESSION_ID_LEN + 1];
    memset(absent, 'A' + i, KOTTE_SESSION_ID_LEN);
    absent[KOTTE_SESSION_ID_LEN - 1] = 'A'; /* a canonical last character */
    absent[KOTTE_SESSION_ID_LEN] = '\0';
    assert_int_equal(kotte_session_get(f->store, absent, on_read, &calls[n]), 0);
    n++;
  }
  assert_int_equal(n, G_READS);
  for (int i = 0; i < n; i++) pg_wait(&f->loop, &calls[i].done, 1);
  uint64_t statements = pool_queries(f) - q0;
  for (int i = 0; i < n; i++) {
    assert_int_equal(calls[i].done, 1);
    if (calls[i].want) {
      if (calls[i].status != 0) fail_msg("read %d (%s): %s", i, calls[i].want, kotte_strerror(calls[i].status));
      assert_string_equal(calls[i].user, calls[i].want);
    } else {
      assert_int_equal(calls[i].status, KOTTE_ENOTFOUND);
    }
  }
  /* one statement per read would be 240 reads + 30 reaps + 10 slides */
  printf("  %d reads in one turn: %llu statements (reaps and slides included)\n", n,
         (unsigned long long)statements);
  assert_true(statements <= 3 * G_EACH + G_EACH + 10);
  char v[32];
  sql_value(f, "SELECT count(*) FROM kotte_sessions WHERE user_id LIKE 'dead-%'", v, sizeof v);
  assert_string_equal(v, "0"); /* reaped */
  sql_value(f, "SELECT count(*) FROM kotte_sessions WHERE user_id LIKE 'stale-%' AND "
               "last_activity = to_timestamp(1700000000)", v, sizeof v);
  assert_string_equal(v, "10"); /* slid */
  sql_value(f, "SELECT count(*) FROM kotte_sessions WHERE user_id LIKE 'live-%' AND "
               "last_activity = to_timestamp(1700000000)", v, sizeof v);
  assert_string_equal(v, "100"); /* created at fake_now, not written again */

  /* the statement fails (the role may not read the table): every read of
   * the turn answers the error, once */
  owner_exec("REVOKE SELECT ON kotte_sessions FROM kotte_app");
  memset(calls, 0, sizeof calls);
  for (int i = 0; i < 70; i++)
    assert_int_equal(kotte_session_get(f->store, ids[i % G_LIVE], on_read, &calls[i]), 0);
  for (int i = 0; i < 70; i++) pg_wait(&f->loop, &calls[i].done, 1);
  owner_exec("GRANT SELECT ON kotte_sessions TO kotte_app");
  for (int i = 0; i < 70; i++) {
    assert_int_equal(calls[i].done, 1);
    assert_int_equal(calls[i].status, KOTTE_EDB);
  }
  sql(f, "DELETE FROM kotte_sessions");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  conninfo = pg_conninfo_or_skip("test_pg_sessions");
  const struct CMUnitTest tests[] = {
    T(the_table_never_holds_a_usable_token),
    T(concurrent_updates_over_many_connections_lose_nothing),
    T(gets_stay_fast_while_100k_expired_rows_are_purged),
    T(two_replicas_purging_at_once_share_the_work),
    T(slides_within_an_expiry_bucket_are_hot_updates),
    T(gets_inside_the_touch_interval_write_nothing),
    T(purge_removes_exactly_the_expired_rows),
    T(an_update_of_a_row_deleted_meanwhile_says_not_found),
    T(an_update_of_a_row_grown_meanwhile_says_too_big),
    T(an_update_of_a_row_changed_meanwhile_keeps_both_changes),
    T(an_update_that_keeps_meeting_a_changing_row_gives_up),
    T(a_miss_deletes_the_dead_record),
    T(a_miss_that_cannot_delete_still_says_not_found),
    T(gathered_reads_answer_each_read_as_if_alone),
  };
  return cmocka_run_group_tests_name("pg sessions", tests, NULL, NULL);
}
