/* The query registry on its memory backend (one process, as Kotte's default
 * tracker): register / set pid / unregister / get / list, cancel through the
 * owner's handler (also answered later, also failing), another user's cancel
 * (forbidden), unknown ids, the stale limit, delivery never inline, bad
 * arguments, and the blocking facade on a runtime. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include <kotte.h>

typedef struct t {
  uv_loop_t loop;
  kotte_query_registry *reg;
  kotte_time now;
  /* the handler's view */
  int handled;
  char rid[64], user[64];
  int pid;
  kotte_query_cancel_req *pending; /* answer later */
  int answer_later;
  int answer;
  /* the last callback */
  int done, status;
  kotte_query_info *info;
  kotte_query_list *list;
  uint64_t count;
} t;

static kotte_time test_clock(void *ctx) { return ((t *)ctx)->now; }

static void handler(kotte_query_cancel_req *req, const char *rid, const char *user, int pid,
                    void *ud) {
  t *s = ud;
  s->handled++;
  snprintf(s->rid, sizeof s->rid, "%s", rid);
  snprintf(s->user, sizeof s->user, "%s", user);
  s->pid = pid;
  if (s->answer_later) s->pending = req;
  else assert_int_equal(kotte_query_cancel_done(req, s->answer), 0);
}

static int setup(void **state) {
  t *s = calloc(1, sizeof *s);
  assert_int_equal(uv_loop_init(&s->loop), 0);
  s->now = 1700000000LL * 1000000;
  kotte_query_options o = KOTTE_QUERY_OPTIONS_INIT;
  o.on_cancel = handler;
  o.cancel_userdata = s;
  o.clock = test_clock;
  o.clock_ctx = s;
  assert_int_equal(kotte_query_registry_new(&s->reg, &s->loop, NULL, &o), 0);
  assert_string_equal(kotte_query_registry_backend_name(s->reg), "memory");
  assert_int_equal(strlen(kotte_query_registry_replica_id(s->reg)), KOTTE_TOKEN_LEN);
  assert_true(kotte_query_registry_ready(s->reg));
  *state = s;
  return 0;
}

static int teardown(void **state) {
  t *s = *state;
  kotte_query_registry_free(s->reg);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&s->loop), 0);
  kotte_query_info_free(s->info);
  kotte_query_list_free(s->list);
  free(s);
  return 0;
}

static void on_status(int status, void *ud) {
  t *s = ud;
  s->done++;
  s->status = status;
}
static void on_info(int status, kotte_query_info *i, void *ud) {
  t *s = ud;
  s->done++;
  s->status = status;
  kotte_query_info_free(s->info);
  s->info = i;
}
static void on_list(int status, kotte_query_list *l, void *ud) {
  t *s = ud;
  s->done++;
  s->status = status;
  kotte_query_list_free(s->list);
  s->list = l;
}
static void on_count(int status, uint64_t n, void *ud) {
  t *s = ud;
  s->done++;
  s->status = status;
  s->count = n;
}

/* Waits for the callback of the call that returned @p rc; it never comes inline. */
static int wait_for(t *s, int rc) {
  assert_int_equal(rc, 0);
  assert_int_equal(s->done, 0);
  while (s->done == 0) uv_run(&s->loop, UV_RUN_ONCE);
  assert_int_equal(s->done, 1);
  s->done = 0;
  return s->status;
}

#define REGISTER(rid, user, pid) wait_for(s, kotte_query_register(s->reg, rid, user, pid, on_status, s))
#define CANCEL(rid, user) wait_for(s, kotte_query_cancel(s->reg, rid, user, on_status, s))
#define GET(rid) wait_for(s, kotte_query_get(s->reg, rid, on_info, s))

static void register_then_get_and_list(void **state) {
  t *s = *state;
  assert_int_equal(REGISTER("r1", "alice", 0), 0);
  s->now += 1000;
  assert_int_equal(REGISTER("r2", "alice", 42), 0);
  assert_int_equal(REGISTER("r3", "bob", 7), 0);
  assert_int_equal(GET("r1"), 0);
  assert_string_equal(s->info->user_id, "alice");
  assert_string_equal(s->info->replica_id, kotte_query_registry_replica_id(s->reg));
  assert_int_equal(s->info->backend_pid, 0);
  assert_true(s->info->local);
  assert_int_equal(wait_for(s, kotte_query_set_backend_pid(s->reg, "r1", 1234, on_status, s)), 0);
  assert_int_equal(GET("r1"), 0);
  assert_int_equal(s->info->backend_pid, 1234);
  assert_int_equal(wait_for(s, kotte_query_list_user(s->reg, "alice", on_list, s)), 0);
  assert_int_equal(s->list->count, 2);
  assert_string_equal(s->list->items[0]->request_id, "r1"); /* oldest first */
  assert_string_equal(s->list->items[1]->request_id, "r2");
  assert_int_equal(wait_for(s, kotte_query_list_user(s->reg, "carol", on_list, s)), 0);
  assert_int_equal(s->list->count, 0);
}

static void register_again_replaces(void **state) {
  t *s = *state;
  assert_int_equal(REGISTER("r1", "alice", 5), 0);
  assert_int_equal(REGISTER("r1", "bob", 6), 0);
  assert_int_equal(GET("r1"), 0);
  assert_string_equal(s->info->user_id, "bob");
  assert_int_equal(s->info->backend_pid, 6);
}

static void unregister_forgets_and_unknown_ids_are_not_found(void **state) {
  t *s = *state;
  assert_int_equal(REGISTER("r1", "alice", 5), 0);
  assert_int_equal(wait_for(s, kotte_query_unregister(s->reg, "r1", on_status, s)), 0);
  assert_int_equal(GET("r1"), KOTTE_ENOTFOUND);
  assert_int_equal(wait_for(s, kotte_query_unregister(s->reg, "r1", on_status, s)),
                   KOTTE_ENOTFOUND);
  assert_int_equal(wait_for(s, kotte_query_set_backend_pid(s->reg, "r1", 9, on_status, s)),
                   KOTTE_ENOTFOUND);
  assert_int_equal(CANCEL("nope", "alice"), KOTTE_ENOTFOUND);
  assert_int_equal(s->handled, 0);
}

static void cancel_calls_the_handler_and_unregisters(void **state) {
  t *s = *state;
  assert_int_equal(REGISTER("r1", "alice", 4242), 0);
  assert_int_equal(CANCEL("r1", "alice"), 0);
  assert_int_equal(s->handled, 1);
  assert_string_equal(s->rid, "r1");
  assert_string_equal(s->user, "alice");
  assert_int_equal(s->pid, 4242);
  assert_int_equal(GET("r1"), KOTTE_ENOTFOUND); /* Kotte unregisters what it cancelled */
}

static void another_users_cancel_is_forbidden_and_reaches_no_handler(void **state) {
  t *s = *state;
  assert_int_equal(REGISTER("r1", "alice", 1), 0);
  assert_int_equal(CANCEL("r1", "mallory"), KOTTE_EFORBIDDEN);
  assert_int_equal(s->handled, 0);
  assert_int_equal(GET("r1"), 0); /* still there */
}

static void a_failed_cancel_keeps_the_query(void **state) {
  t *s = *state;
  s->answer = KOTTE_EDB;
  assert_int_equal(REGISTER("r1", "alice", 1), 0);
  assert_int_equal(CANCEL("r1", "alice"), KOTTE_EDB);
  assert_int_equal(GET("r1"), 0);
}

static void the_handler_may_answer_later(void **state) {
  t *s = *state;
  s->answer_later = 1;
  assert_int_equal(REGISTER("r1", "alice", 1), 0);
  assert_int_equal(kotte_query_cancel(s->reg, "r1", "alice", on_status, s), 0);
  for (int i = 0; i < 5; i++) uv_run(&s->loop, UV_RUN_NOWAIT);
  assert_int_equal(s->done, 0);
  assert_non_null(s->pending);
  assert_int_equal(kotte_query_cancel_done(s->pending, KOTTE_ENOTFOUND), 0);
  while (s->done == 0) uv_run(&s->loop, UV_RUN_ONCE);
  assert_int_equal(s->status, KOTTE_ENOTFOUND);
}

static void a_free_waits_for_the_handlers_answer(void **state) {
  t *s = *state;
  s->answer_later = 1;
  assert_int_equal(REGISTER("r1", "alice", 1), 0);
  assert_int_equal(kotte_query_cancel(s->reg, "r1", "alice", on_status, s), 0);
  uv_run(&s->loop, UV_RUN_NOWAIT);
  kotte_query_registry_free(s->reg);
  s->reg = NULL;
  uv_run(&s->loop, UV_RUN_NOWAIT);
  assert_int_equal(s->done, 0);
  assert_int_equal(kotte_query_cancel_done(s->pending, 0), 0);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  assert_int_equal(s->status, KOTTE_ECANCELED);
}

static void purge_drops_queries_past_the_stale_limit(void **state) {
  t *s = *state;
  assert_int_equal(REGISTER("old", "alice", 1), 0);
  s->now += 3000LL * 1000000;
  assert_int_equal(REGISTER("new", "alice", 1), 0);
  s->now += 601LL * 1000000; /* "old" is now 3601 s old */
  assert_int_equal(wait_for(s, kotte_query_purge(s->reg, on_count, s)), 0);
  assert_int_equal(s->count, 1);
  assert_int_equal(GET("old"), KOTTE_ENOTFOUND);
  assert_int_equal(GET("new"), 0);
}

static void bad_arguments_are_refused_at_once(void **state) {
  t *s = *state;
  char big[300];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  assert_int_equal(kotte_query_register(s->reg, "", "alice", 0, on_status, s), KOTTE_EINVAL);
  assert_int_equal(kotte_query_register(s->reg, big, "alice", 0, on_status, s), KOTTE_EINVAL);
  assert_int_equal(kotte_query_register(s->reg, "r", "", 0, on_status, s), KOTTE_EINVAL);
  assert_int_equal(kotte_query_register(s->reg, "r", "alice", -1, on_status, s), KOTTE_EINVAL);
  assert_int_equal(kotte_query_register(s->reg, "\xff", "alice", 0, on_status, s), KOTTE_EINVAL);
  assert_int_equal(kotte_query_register(s->reg, "r", "alice", 0, NULL, s), KOTTE_EINVAL);
  assert_int_equal(kotte_query_cancel(NULL, "r", "alice", on_status, s), KOTTE_EINVAL);
  assert_int_equal(kotte_query_cancel_done(NULL, 0), KOTTE_EINVAL);
  assert_int_equal(s->done, 0);
  kotte_query_options o = KOTTE_QUERY_OPTIONS_INIT;
  kotte_query_registry *r = NULL;
  o.version = 9;
  assert_int_equal(kotte_query_registry_new(&r, &s->loop, NULL, &o), KOTTE_EVERSION);
  o.version = KOTTE_QUERY_OPTIONS_VERSION;
  o.cancel_timeout_ms = 0;
  assert_int_equal(kotte_query_registry_new(&r, &s->loop, NULL, &o), KOTTE_EINVAL);
  assert_null(r);
}

static void without_a_handler_cancel_is_not_supported(void **state) {
  t *s = *state;
  kotte_query_registry *r;
  assert_int_equal(kotte_query_registry_new(&r, &s->loop, NULL, NULL), 0);
  assert_int_equal(wait_for(s, kotte_query_register(r, "r1", "alice", 1, on_status, s)), 0);
  assert_int_equal(wait_for(s, kotte_query_cancel(r, "r1", "alice", on_status, s)),
                   KOTTE_ENOTSUP);
  kotte_query_registry_free(r);
}

/* ---- the blocking facade on a runtime ------------------------------------------ */

static void sync_handler(kotte_query_cancel_req *req, const char *rid, const char *user, int pid,
                         void *ud) {
  (*(int *)ud)++;
  kotte_query_cancel_done(req, pid == 77 ? 0 : KOTTE_ENOTFOUND);
}

static void the_blocking_facade_works_from_another_thread(void **state) {
  kotte_runtime *rt;
  assert_int_equal(kotte_runtime_new(&rt, NULL), 0);
  int calls = 0;
  kotte_query_options o = KOTTE_QUERY_OPTIONS_INIT;
  o.on_cancel = sync_handler;
  o.cancel_userdata = &calls;
  kotte_query_registry *r;
  assert_int_equal(kotte_query_registry_open(&r, rt, NULL, &o), 0);
  assert_true(kotte_query_registry_ready(r));
  assert_int_equal(kotte_query_register_sync(r, "a", "alice", 0, -1), 0);
  assert_int_equal(kotte_query_set_backend_pid_sync(r, "a", 77, -1), 0);
  kotte_query_info *i = NULL;
  assert_int_equal(kotte_query_get_sync(r, "a", &i, -1), 0);
  assert_int_equal(i->backend_pid, 77);
  kotte_query_info_free(i);
  kotte_query_list *l = NULL;
  assert_int_equal(kotte_query_list_user_sync(r, "alice", &l, -1), 0);
  assert_int_equal(l->count, 1);
  kotte_query_list_free(l);
  assert_int_equal(kotte_query_cancel_sync(r, "a", "bob", -1), KOTTE_EFORBIDDEN);
  assert_true(strstr(kotte_error_detail(), "another user") != NULL);
  assert_int_equal(kotte_query_cancel_sync(r, "a", "alice", -1), 0);
  assert_int_equal(calls, 1);
  assert_int_equal(kotte_query_get_sync(r, "a", &i, -1), KOTTE_ENOTFOUND);
  assert_null(i);
  uint64_t n = 9;
  assert_int_equal(kotte_query_purge_sync(r, &n, -1), 0);
  assert_int_equal(n, 0);
  assert_int_equal(kotte_query_unregister_sync(r, "a", -1), KOTTE_ENOTFOUND);
  kotte_query_registry_free(r);
  kotte_runtime_free(rt);
}

static void blocking_calls_need_a_runtime(void **state) {
  t *s = *state;
  assert_int_equal(kotte_query_register_sync(s->reg, "a", "alice", 0, 100), KOTTE_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(register_then_get_and_list, setup, teardown),
    cmocka_unit_test_setup_teardown(register_again_replaces, setup, teardown),
    cmocka_unit_test_setup_teardown(unregister_forgets_and_unknown_ids_are_not_found, setup, teardown),
    cmocka_unit_test_setup_teardown(cancel_calls_the_handler_and_unregisters, setup, teardown),
    cmocka_unit_test_setup_teardown(another_users_cancel_is_forbidden_and_reaches_no_handler, setup, teardown),
    cmocka_unit_test_setup_teardown(a_failed_cancel_keeps_the_query, setup, teardown),
    cmocka_unit_test_setup_teardown(the_handler_may_answer_later, setup, teardown),
    cmocka_unit_test_setup_teardown(a_free_waits_for_the_handlers_answer, setup, teardown),
    cmocka_unit_test_setup_teardown(purge_drops_queries_past_the_stale_limit, setup, teardown),
    cmocka_unit_test_setup_teardown(bad_arguments_are_refused_at_once, setup, teardown),
    cmocka_unit_test_setup_teardown(without_a_handler_cancel_is_not_supported, setup, teardown),
    cmocka_unit_test_setup_teardown(blocking_calls_need_a_runtime, setup, teardown),
    cmocka_unit_test(the_blocking_facade_works_from_another_thread),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
