/* The runtime thread and the blocking facade: start/stop, posting order,
 * deadlock detection, timeouts with late completions, a user-written
 * backend, and concurrent use from several threads (also run under TSan). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kotte.h>
#include <kotte/pg.h>
#include <kotte/sys/session_backend.h>

static void runtime_starts_and_stops_cleanly_many_times(void **state) {
  for (int i = 0; i < 50; i++) {
    kotte_runtime *rt;
    assert_int_equal(kotte_runtime_new(&rt, NULL), 0);
    assert_non_null(kotte_runtime_loop(rt));
    assert_false(kotte_runtime_on_loop_thread(rt));
    kotte_runtime_free(rt);
  }
  kotte_runtime_free(NULL);
}

static void options_with_an_unknown_version_are_refused(void **state) {
  kotte_runtime_options o = KOTTE_RUNTIME_OPTIONS_INIT;
  kotte_runtime *rt = (kotte_runtime *)0x1;
  o.version = 7;
  assert_int_equal(kotte_runtime_new(&rt, &o), KOTTE_EVERSION);
  assert_null(rt);
  o.version = KOTTE_RUNTIME_OPTIONS_VERSION;
  o.default_timeout_ms = 1234;
  assert_int_equal(kotte_runtime_new(&rt, &o), 0);
  assert_int_equal(kotte_runtime_default_timeout(rt), 1234);
  kotte_runtime_free(rt);
}

typedef struct order {
  kotte_runtime *rt;
  int seen[100];
  int n;
  int on_loop;
} order;

typedef struct step {
  order *o;
  int i;
} step;

static void record_step(void *arg) {
  step *s = arg;
  s->o->seen[s->o->n++] = s->i;
  s->o->on_loop += kotte_runtime_on_loop_thread(s->o->rt);
}

static void posts_run_in_order_on_the_loop_thread(void **state) {
  order o;
  memset(&o, 0, sizeof o);
  step steps[100];
  assert_int_equal(kotte_runtime_new(&o.rt, NULL), 0);
  for (int i = 0; i < 100; i++) {
    steps[i] = (step){ &o, i };
    assert_int_equal(kotte_runtime_post(o.rt, record_step, &steps[i]), 0);
  }
  kotte_runtime_free(o.rt); /* runs everything posted before stopping */
  assert_int_equal(o.n, 100);
  assert_int_equal(o.on_loop, 100);
  for (int i = 0; i < 100; i++) assert_int_equal(o.seen[i], i);
}

static int return_42(void *arg) { return 42; }

static int nested_run(void *arg) {
  kotte_runtime *rt = arg;
  /* Blocking on the loop from the loop would wait forever: refused. */
  return kotte_runtime_run(rt, return_42, NULL);
}

static void run_returns_the_result_and_refuses_the_loop_thread(void **state) {
  kotte_runtime *rt;
  assert_int_equal(kotte_runtime_new(&rt, NULL), 0);
  assert_int_equal(kotte_runtime_run(rt, return_42, NULL), 42);
  assert_int_equal(kotte_runtime_run(rt, nested_run, rt), KOTTE_EDEADLK);
  kotte_runtime_free(rt);
}

/* ---- a user-written backend that parks gets until told to answer -------- */

typedef struct park_backend {
  kotte_session_backend base;
  kotte_session_backend_record_cb cb;
  void *ctx;
  char id[KOTTE_SESSION_ID_LEN + 1];
  int freed;
} park_backend;

static int park_get(kotte_session_backend *be, const char *id, kotte_time now, int slide,
                    kotte_session_backend_record_cb cb, void *ctx) {
  park_backend *p = (park_backend *)be;
  p->cb = cb;
  p->ctx = ctx;
  memcpy(p->id, id, sizeof p->id);
  return 0;
}
static int park_unsupported(void) { return KOTTE_ENOTSUP; }
static void park_free(kotte_session_backend *be) { ((park_backend *)be)->freed = 1; }

static void park_answer(void *arg) {
  park_backend *p = arg;
  kotte_session_record r = { .id = p->id, .user_id = "late", .data = "{}", .data_len = 2 };
  p->cb(0, &r, p->ctx);
  p->cb = NULL;
}

static int park_answer_run(void *arg) {
  park_answer(arg);
  return 0;
}

static int sync_get_on_loop(void *arg) {
  kotte_session *s = NULL;
  char id[44];
  kotte_token_generate(id);
  return kotte_session_get_sync(arg, id, &s, 100);
}

static void timed_out_calls_return_and_late_answers_are_freed(void **state) {
  kotte_runtime *rt;
  assert_int_equal(kotte_runtime_new(&rt, NULL), 0);
  park_backend p;
  memset(&p, 0, sizeof p);
  p.base.version = KOTTE_SESSION_BACKEND_VERSION;
  p.base.name = "parking";
  p.base.get = park_get;
  p.base.put = (void *)park_unsupported;
  p.base.update = (void *)park_unsupported;
  p.base.remove = (void *)park_unsupported;
  p.base.rename = (void *)park_unsupported;
  p.base.free = park_free;
  kotte_session_store *st;
  assert_int_equal(kotte_session_store_open(&st, rt, &p.base, NULL), 0);
  assert_string_equal(kotte_session_store_backend_name(st), "parking");

  char id[44];
  kotte_token_generate(id);
  kotte_session *s = (kotte_session *)0x1;
  assert_int_equal(kotte_session_get_sync(st, id, &s, 50), KOTTE_ETIMEDOUT);
  assert_null(s);
  /* The backend answers after the caller gave up: the session it produced
   * must be released by the facade (ASan's leak check watches this). */
  assert_int_equal(kotte_runtime_run(rt, park_answer_run, &p), 0);
  /* Optional methods left NULL: the store says "not supported". */
  kotte_session_list *l;
  assert_int_equal(kotte_session_list_user_sync(st, "u", &l, 1000), KOTTE_ENOTSUP);
  /* A blocking call made on the loop thread is refused, not deadlocked. */
  assert_int_equal(kotte_runtime_run(rt, sync_get_on_loop, st), KOTTE_EDEADLK);
  kotte_session_store_free(st);
  assert_true(p.freed);
  kotte_runtime_free(rt);
}

/* ---- concurrent use of one store through the facade --------------------- */

typedef struct worker {
  kotte_session_store *st;
  int index;
  int errors;
} worker;

#define OPS 300

/* unique per run: the PostgreSQL table may hold an earlier run's rows */
static char run_tag[32];

static void worker_main(void *arg) {
  worker *w = arg;
  char user[64], patch[64];
  snprintf(user, sizeof user, "user-%s-%d", run_tag, w->index);
  for (int i = 0; i < OPS; i++) {
    kotte_session *s;
    if (kotte_session_create_sync(w->st, user, "{\"n\":0}", &s, 10000) != 0) {
      w->errors++;
      continue;
    }
    char id[44];
    memcpy(id, kotte_session_id(s), 44);
    kotte_session_free(s);
    snprintf(patch, sizeof patch, "{\"n\":%d}", i);
    if (kotte_session_update_sync(w->st, id, patch, &s, 10000) != 0) w->errors++;
    kotte_session_free(s);
    if (kotte_session_get_sync(w->st, id, &s, 10000) != 0 ||
        strcmp(kotte_session_data(s), patch) != 0 || strcmp(kotte_session_user_id(s), user) != 0)
      w->errors++;
    kotte_session_free(s);
    if (i % 2 == 0 && kotte_session_delete_sync(w->st, id, 10000) != 0) w->errors++;
  }
}

static kotte_pg_pool *pg_pool; /* the PostgreSQL variant's, freed after the store */

static void run_threads(kotte_session_backend *(*make)(kotte_runtime *rt, const char *dir)) {
  kotte_runtime *rt;
  assert_int_equal(kotte_runtime_new(&rt, NULL), 0);
  char dir[] = "/tmp/kotte-rt-XXXXXX";
  assert_non_null(mkdtemp(dir));
  snprintf(run_tag, sizeof run_tag, "%ld-%lld", (long)getpid(), (long long)kotte_clock_now());
  kotte_session_store *st;
  assert_int_equal(kotte_session_store_open(&st, rt, make(rt, dir), NULL), 0);
  enum { N = 4 };
  uv_thread_t threads[N];
  worker w[N];
  for (int i = 0; i < N; i++) {
    w[i] = (worker){ st, i, 0 };
    assert_int_equal(uv_thread_create(&threads[i], worker_main, &w[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    uv_thread_join(&threads[i]);
    assert_int_equal(w[i].errors, 0);
  }
  for (int i = 0; i < N; i++) {
    char user[64];
    snprintf(user, sizeof user, "user-%s-%d", run_tag, i);
    kotte_session_list *l;
    assert_int_equal(kotte_session_list_user_sync(st, user, &l, 10000), 0);
    assert_int_equal(kotte_session_list_count(l), OPS / 2);
    kotte_session_list_free(l);
  }
  kotte_session_store_free(st);
  if (pg_pool) {
    kotte_pg_pool_free(pg_pool);
    pg_pool = NULL;
  }
  kotte_runtime_free(rt);
  char cmd[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

static kotte_session_backend *make_memory(kotte_runtime *rt, const char *dir) {
  kotte_session_backend *be;
  assert_int_equal(kotte_session_backend_memory_new(&be), 0);
  return be;
}

static kotte_session_backend *make_json_file(kotte_runtime *rt, const char *dir) {
  kotte_session_backend *be;
  char path[128];
  snprintf(path, sizeof path, "%s/s.journal", dir);
  static const unsigned char secret[] = "runtime-suite-session-secret";
  assert_int_equal(
      kotte_session_backend_json_file_new(&be, kotte_runtime_loop(rt), path, secret, sizeof secret - 1),
      0);
  return be;
}

static kotte_session_backend *make_postgresql(kotte_runtime *rt, const char *dir) {
  kotte_pg_pool_options o = KOTTE_PG_POOL_OPTIONS_INIT;
  o.conninfo = getenv("KOTTE_TEST_PG_CONNINFO");
  o.max_size = 4;
  o.pipeline_depth = 8;
  assert_int_equal(kotte_pg_pool_open(&pg_pool, rt, &o), 0);
  static const unsigned char secret[] = "runtime-test-session-secret-0123456789";
  kotte_session_backend *be;
  assert_int_equal(kotte_session_backend_postgresql_new(&be, pg_pool, secret, sizeof secret - 1), 0);
  return be;
}

static void four_threads_share_a_memory_store(void **state) { run_threads(make_memory); }
static void four_threads_share_a_json_file_store(void **state) { run_threads(make_json_file); }
static void four_threads_share_a_postgresql_store(void **state) {
  const char *ci = getenv("KOTTE_TEST_PG_CONNINFO");
  if (ci == NULL || *ci == '\0') {
    printf("four threads on postgresql: skipped: KOTTE_TEST_PG_CONNINFO is not set "
           "(tests/suites.d/20-postgresql.sh runs this suite again with a server)\n");
    skip();
  }
  run_threads(make_postgresql);
}

/* ---- a store nobody freed -------------------------------------------------- */

/* What the test leaves allocated on purpose, reachable from here so that
 * LeakSanitizer does not count it. */
static struct {
  kotte_runtime *rt;
  kotte_session_store *sessions;
  kotte_cred_store *creds;
  kotte_pg_pool *pool;
} left_open[3];

typedef struct bounded_free {
  kotte_runtime *rt;
  uv_mutex_t mu;
  uv_cond_t cv;
  int done;
} bounded_free;

static void free_runtime_main(void *arg) {
  bounded_free *b = arg;
  kotte_runtime_free(b->rt);
  uv_mutex_lock(&b->mu);
  b->done = 1;
  uv_cond_signal(&b->cv);
  uv_mutex_unlock(&b->mu);
}

static char last_error[512];
static void keep_error(kotte_log_level level, const char *msg, void *ctx) {
  (void)ctx;
  if (level == KOTTE_LOG_ERROR && strstr(msg, "kotte_runtime_free"))
    snprintf(last_error, sizeof last_error, "%s", msg);
}

/* The Python binding's hang at exit: a session store and a credential store
 * that were used and never freed kept kotte_runtime_free() joining a loop
 * thread that never ended (their handles held the loop). Now it returns
 * (within a generous bound here), logs the leak, and a late free of a
 * store only logs. */
static void stores_left_open_do_not_keep_runtime_free_waiting(void **state) {
  const char *kinds[] = {"memory", "json_file", "postgresql"};
  const char *ci = getenv("KOTTE_TEST_PG_CONNINFO");
  kotte_set_log_hook(keep_error, NULL, KOTTE_LOG_ERROR);
  for (int k = 0; k < 3; k++) {
    if (k == 2 && (ci == NULL || *ci == '\0')) {
      printf("stores left open on postgresql: skipped: KOTTE_TEST_PG_CONNINFO is not set\n");
      break;
    }
    kotte_runtime *rt;
    assert_int_equal(kotte_runtime_new(&rt, NULL), 0);
    left_open[k].rt = rt;
    char dir[] = "/tmp/kotte-rt-XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    kotte_session_backend *sbe;
    kotte_cred_backend *cbe;
    if (k == 0) {
      assert_int_equal(kotte_session_backend_memory_new(&sbe), 0);
      assert_int_equal(kotte_cred_backend_memory_new(&cbe), 0);
    } else if (k == 1) {
      sbe = make_json_file(rt, dir);
      snprintf(path, sizeof path, "%s/c.journal", dir);
      assert_int_equal(kotte_cred_backend_json_file_new(&cbe, kotte_runtime_loop(rt), path), 0);
    } else {
      sbe = make_postgresql(rt, dir);
      left_open[k].pool = pg_pool;
      pg_pool = NULL;
      assert_int_equal(kotte_cred_backend_postgresql_new(&cbe, left_open[k].pool), 0);
    }
    assert_int_equal(kotte_session_store_open(&left_open[k].sessions, rt, sbe, NULL), 0);
    kotte_keyring *kr;
    assert_int_equal(kotte_keyring_new(&kr, "runtime-test-master-key-0123456789abcdef", NULL), 0);
    assert_int_equal(kotte_cred_store_open(&left_open[k].creds, rt, cbe, kr, NULL), 0);
    kotte_keyring_free(kr);
    kotte_session *s;
    assert_int_equal(kotte_session_create_sync(left_open[k].sessions, "u", NULL, &s, 10000), 0);
    kotte_session_free(s);
    kotte_cred_list *l;
    assert_int_equal(kotte_cred_list_user_sync(left_open[k].creds, "x", &l, 10000), 0);
    kotte_cred_list_free(l);

    bounded_free b = { .rt = rt };
    uv_mutex_init(&b.mu);
    uv_cond_init(&b.cv);
    last_error[0] = '\0';
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, free_runtime_main, &b), 0);
    uint64_t deadline = uv_hrtime() + 10 * 1000000000ull;
    uv_mutex_lock(&b.mu);
    while (!b.done && uv_hrtime() < deadline)
      uv_cond_timedwait(&b.cv, &b.mu, deadline - uv_hrtime());
    int done = b.done;
    uv_mutex_unlock(&b.mu);
    if (!done) fail_msg("%s: kotte_runtime_free() still waits after 10 s", kinds[k]);
    uv_thread_join(&t);
    uv_cond_destroy(&b.cv);
    uv_mutex_destroy(&b.mu);
    assert_non_null(strstr(last_error, "not freed"));
    /* too late: only logged, nothing touched */
    kotte_session_store_free(left_open[k].sessions);
    kotte_cred_store_free(left_open[k].creds);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
  }
  kotte_set_log_hook(NULL, NULL, KOTTE_LOG_ERROR);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(runtime_starts_and_stops_cleanly_many_times),
    cmocka_unit_test(options_with_an_unknown_version_are_refused),
    cmocka_unit_test(posts_run_in_order_on_the_loop_thread),
    cmocka_unit_test(run_returns_the_result_and_refuses_the_loop_thread),
    cmocka_unit_test(timed_out_calls_return_and_late_answers_are_freed),
    cmocka_unit_test(four_threads_share_a_memory_store),
    cmocka_unit_test(four_threads_share_a_json_file_store),
    cmocka_unit_test(four_threads_share_a_postgresql_store),
    cmocka_unit_test(stores_left_open_do_not_keep_runtime_free_waiting),
  };
  return cmocka_run_group_tests_name("runtime and blocking facade", tests, NULL, NULL);
}
