/* The blocking facade of the credential store: many threads at once,
 * timeouts (with a backend of our own that answers late), refusals on the
 * loop thread and on stores without a runtime, details on the caller's
 * thread. */
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
#include <kotte/sys/credential_backend.h>

#include "json_file_helpers.h"

#define KEY_A "00112233445566778899aabbccddeeff0123456789abcdef0011223344556677"

typedef jf_env env;

static void free_store(void *st) { kotte_cred_store_free(st); }

static int setup(void **state) {
  env *e = jf_env_new("credentials.journal", free_store);
  assert_int_equal(kotte_keyring_new(&e->kr, KEY_A, NULL), 0);
  *state = e;
  return 0;
}

#define teardown jf_teardown

static kotte_cred_input input(const char *name, const char *pass) {
  kotte_cred_input in = KOTTE_CRED_INPUT_INIT;
  in.name = name;
  in.host = "db.internal";
  in.port = 5432;
  in.database = "graphs";
  in.username = "reader";
  in.password = pass;
  return in;
}

/* ---- many threads -------------------------------------------------------- */

typedef struct worker {
  kotte_cred_store *st;
  int index, failures;
} worker;

static void work(void *arg) {
  worker *w = arg;
  char user[16];
  snprintf(user, sizeof user, "user-%d", w->index);
  for (int i = 0; i < 100; i++) {
    char name[16], pass[32];
    snprintf(name, sizeof name, "c%d", i);
    snprintf(pass, sizeof pass, "pw-%d-%d", w->index, i);
    kotte_cred_input in = input(name, pass);
    kotte_cred *c = NULL, *got = NULL;
    if (kotte_cred_save_sync(w->st, user, &in, &c, 30000) != 0 ||
        kotte_cred_get_sync(w->st, user, kotte_cred_id(c), &got, 30000) != 0 ||
        strcmp(kotte_cred_password(got), pass) != 0)
      w->failures++;
    kotte_cred_free(c);
    kotte_cred_free(got);
  }
  kotte_cred_list *l;
  if (kotte_cred_list_user_sync(w->st, user, &l, 30000) != 0 || kotte_cred_list_count(l) != 100)
    w->failures++;
  kotte_cred_list_free(l);
}

static void threads_share_a_json_file_store(void **state) {
  env *e = *state;
  kotte_cred_backend *be;
  kotte_cred_store *st;
  assert_int_equal(kotte_cred_backend_json_file_new(&be, kotte_runtime_loop(e->rt), e->path), 0);
  assert_int_equal(kotte_cred_store_open(&st, e->rt, be, e->kr, NULL), 0);
  enum { N = 4 };
  uv_thread_t t[N];
  worker w[N];
  for (int i = 0; i < N; i++) {
    w[i] = (worker){ st, i, 0 };
    assert_int_equal(uv_thread_create(&t[i], work, &w[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    uv_thread_join(&t[i]);
    assert_int_equal(w[i].failures, 0);
  }
  kotte_cred_report *r;
  assert_int_equal(kotte_cred_key_usage_sync(st, &r, -1), 0);
  assert_int_equal(kotte_cred_report_key_records(r, 0), N * 100);
  kotte_cred_report_free(r);
  kotte_cred_store_free(st);
}

/* ---- a backend of our own that answers late ----------------------------- */

typedef struct slow_backend {
  kotte_cred_backend base; /* first */
  kotte_cred_backend *inner;
  uv_loop_t *loop;
  int in_flight;
} slow_backend;

typedef struct slow_get {
  uv_timer_t timer;
  slow_backend *sb;
  char user[64], id[37];
  kotte_cred_backend_record_cb cb;
  void *ctx;
} slow_get;

static void slow_closed(uv_handle_t *h) { free(h->data); }

static void slow_fire(uv_timer_t *t) {
  slow_get *g = t->data;
  g->sb->in_flight--;
  g->timer.data = g;
  g->sb->inner->get(g->sb->inner, g->user, g->id, g->cb, g->ctx);
  uv_close((uv_handle_t *)&g->timer, slow_closed);
}

static int slow_get_fn(kotte_cred_backend *be, const char *user_id, const char *id,
                       kotte_cred_backend_record_cb cb, void *ctx) {
  slow_backend *sb = (slow_backend *)be;
  slow_get *g = calloc(1, sizeof *g);
  g->sb = sb;
  snprintf(g->user, sizeof g->user, "%s", user_id);
  snprintf(g->id, sizeof g->id, "%s", id);
  g->cb = cb;
  g->ctx = ctx;
  uv_timer_init(sb->loop, &g->timer);
  g->timer.data = g;
  sb->in_flight++;
  uv_timer_start(&g->timer, slow_fire, 300, 0);
  return 0;
}

#define FORWARD(name, params, args)                                          \
  static int slow_##name params {                                            \
    slow_backend *sb = (slow_backend *)be;                                   \
    return sb->inner->name args;                                             \
  }
FORWARD(insert, (kotte_cred_backend *be, const kotte_cred_record *rec,
                 kotte_cred_backend_status_cb cb, void *ctx),
        (sb->inner, rec, cb, ctx))
FORWARD(list, (kotte_cred_backend *be, const char *u, kotte_cred_backend_list_cb cb, void *ctx),
        (sb->inner, u, cb, ctx))
FORWARD(update, (kotte_cred_backend *be, const char *u, const char *id, const kotte_cred_patch *p,
                 kotte_cred_backend_record_cb cb, void *ctx),
        (sb->inner, u, id, p, cb, ctx))
FORWARD(remove, (kotte_cred_backend *be, const char *u, const char *id,
                 kotte_cred_backend_count_cb cb, void *ctx),
        (sb->inner, u, id, cb, ctx))

static void slow_free(kotte_cred_backend *be) {
  slow_backend *sb = (slow_backend *)be;
  assert_int_equal(sb->in_flight, 0); /* the store waits for its operations */
  kotte_cred_backend_free(sb->inner);
  free(sb);
}

static kotte_cred_backend *slow_new(uv_loop_t *loop) {
  slow_backend *sb = calloc(1, sizeof *sb);
  assert_int_equal(kotte_cred_backend_memory_new(&sb->inner), 0);
  sb->loop = loop;
  sb->base.version = KOTTE_CRED_BACKEND_VERSION;
  sb->base.name = "slow";
  sb->base.insert = slow_insert;
  sb->base.get = slow_get_fn;
  sb->base.list = slow_list;
  sb->base.update = slow_update;
  sb->base.remove = slow_remove;
  sb->base.free = slow_free; /* no scan_stale / count_keys: rewrap unsupported */
  return &sb->base;
}

static void a_late_answer_times_out_and_is_released_later(void **state) {
  env *e = *state;
  kotte_cred_store *st;
  assert_int_equal(kotte_cred_store_open(&st, e->rt, slow_new(kotte_runtime_loop(e->rt)), e->kr,
                                         NULL),
                   0);
  assert_string_equal(kotte_cred_store_backend_name(st), "slow");
  kotte_cred_input in = input("prod", "pw");
  kotte_cred *c;
  assert_int_equal(kotte_cred_save_sync(st, "alice", &in, &c, -1), 0);
  char id[37];
  memcpy(id, kotte_cred_id(c), 37);
  kotte_cred_free(c);
  kotte_cred *got = (kotte_cred *)1;
  assert_int_equal(kotte_cred_get_sync(st, "alice", id, &got, 20), KOTTE_ETIMEDOUT);
  assert_null(got);
  /* the abandoned result (with its secrets) is wiped and freed when it
   * arrives; ASan's leak check sees to the rest */
  assert_int_equal(kotte_cred_get_sync(st, "alice", id, &got, 5000), 0);
  assert_string_equal(kotte_cred_password(got), "pw");
  kotte_cred_free(got);
  kotte_cred_report *r;
  assert_int_equal(kotte_cred_rewrap_sync(st, &r, -1), KOTTE_ENOTSUP);
  assert_int_equal(kotte_cred_key_usage_sync(st, &r, -1), KOTTE_ENOTSUP);
  kotte_cred_store_free(st);
}

/* ---- refusals ------------------------------------------------------------ */

typedef struct on_loop {
  kotte_cred_store *st;
  int rc;
} on_loop;

static int call_on_loop(void *arg) {
  on_loop *o = arg;
  o->rc = kotte_cred_get_sync(o->st, "alice", "01234567-89ab-cdef-0123-456789abcdef", NULL, 100);
  return 0;
}

static void blocking_calls_are_refused_where_they_cannot_work(void **state) {
  env *e = *state;
  kotte_cred_backend *be;
  kotte_cred_store *st;
  assert_int_equal(kotte_cred_backend_memory_new(&be), 0);
  assert_int_equal(kotte_cred_store_open(&st, e->rt, be, e->kr, NULL), 0);
  on_loop o = { st, 0 };
  assert_int_equal(kotte_runtime_run(e->rt, call_on_loop, &o), 0);
  assert_int_equal(o.rc, KOTTE_EDEADLK);
  kotte_cred_store_free(st);

  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(kotte_cred_backend_memory_new(&be), 0);
  assert_int_equal(kotte_cred_store_new(&st, &loop, be, e->kr, NULL), 0);
  assert_int_equal(kotte_cred_get_sync(st, "alice", "01234567-89ab-cdef-0123-456789abcdef",
                                       NULL, 100),
                   KOTTE_EINVAL);
  assert_non_null(strstr(kotte_error_detail(), "not opened on a runtime"));
  kotte_cred_store_free(st);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void a_refusal_explains_itself_on_the_calling_thread(void **state) {
  env *e = *state;
  kotte_cred_backend *be;
  kotte_cred_store *st;
  assert_int_equal(kotte_cred_backend_memory_new(&be), 0);
  assert_int_equal(kotte_cred_store_open(&st, e->rt, be, e->kr, NULL), 0);
  kotte_cred_input in = input("prod", "pw");
  in.port = 70000;
  assert_int_equal(kotte_cred_save_sync(st, "alice", &in, NULL, -1), KOTTE_EINVAL);
  assert_non_null(strstr(kotte_error_detail(), "port"));
  assert_int_equal(kotte_cred_get_sync(st, "alice", "nope", NULL, -1), KOTTE_ENOTFOUND);
  assert_int_equal(kotte_cred_get_sync(st, "", "nope", NULL, -1), KOTTE_EINVAL);
  assert_int_equal(kotte_cred_get_sync(NULL, "alice", "nope", NULL, -1), KOTTE_EINVAL);
  kotte_cred_store_free(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(threads_share_a_json_file_store, setup, teardown),
    cmocka_unit_test_setup_teardown(a_late_answer_times_out_and_is_released_later, setup, teardown),
    cmocka_unit_test_setup_teardown(blocking_calls_are_refused_where_they_cannot_work, setup, teardown),
    cmocka_unit_test_setup_teardown(a_refusal_explains_itself_on_the_calling_thread, setup, teardown),
  };
  return cmocka_run_group_tests_name("credential blocking facade", tests, NULL, NULL);
}
