/* The touch interval on every backend: a read writes its slide back only
 * once the interval has passed since the stored last activity, so that a
 * session may expire up to one interval early, never late (the bound
 * stated at kotte_session_options.touch_interval_s). Tested at the
 * boundary, one microsecond on either side. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session_fixture.h"

#define F fx *f = *state

/* Kotte's 1800 s idle timeout: the default interval is 1 %, 18 s. */
#define IDLE (1800 * SEC)
#define DEFAULT_INTERVAL (18 * SEC)

static kotte_time last_activity_of(fx *f, const char *id) {
  kotte_session *s;
  assert_int_equal(fx_get(f, id, &s), 0);
  kotte_time t = kotte_session_last_activity(s);
  assert_int_equal(kotte_session_expires_at(s), t + IDLE);
  kotte_session_free(s);
  return t;
}

static void a_read_inside_the_default_interval_writes_nothing(void **state) {
  F;
  char id[44];
  kotte_time t0 = f->now;
  fx_new_session(f, "alice", NULL, id);
  f->now = t0 + DEFAULT_INTERVAL - 1;
  assert_int_equal(last_activity_of(f, id), t0); /* answered as stored */
  assert_int_equal(fx_touch(f, id), 0);
  assert_int_equal(last_activity_of(f, id), t0); /* neither did the touch write */
  f->now = t0 + DEFAULT_INTERVAL; /* the interval has passed: this read writes */
  assert_int_equal(last_activity_of(f, id), t0 + DEFAULT_INTERVAL);
  f->now += 1;
  assert_int_equal(last_activity_of(f, id), t0 + DEFAULT_INTERVAL);
}

static void a_session_expires_at_most_one_interval_early_never_late(void **state) {
  F;
  char id[44];
  kotte_time t0 = f->now;
  fx_new_session(f, "alice", NULL, id);
  f->now = t0 + DEFAULT_INTERVAL - 1; /* the last read, inside the interval: not written */
  assert_int_equal(fx_get(f, id, NULL), 0);
  /* the stored expiry, not the last read's, decides: one interval early at most */
  f->now = t0 + IDLE;
  kotte_session *s;
  assert_int_equal(fx_get(f, id, &s), 0); /* at the stored expiry: alive, and now written */
  assert_int_equal(kotte_session_last_activity(s), t0 + IDLE);
  kotte_session_free(s);
  kotte_time last = f->now;
  f->now = last + DEFAULT_INTERVAL - 1;
  assert_int_equal(fx_get(f, id, NULL), 0);
  f->now = last + IDLE + 1; /* never late: dead one µs after the stored expiry */
  assert_int_equal(fx_get(f, id, NULL), KOTTE_ENOTFOUND);
}

static void the_default_interval_follows_each_sessions_idle_timeout(void **state) {
  F;
  char id[44];
  assert_int_equal(kotte_token_generate(id), 0);
  kotte_time t0 = f->now;
  assert_int_equal(fx_set(f, id, "alice", "{}", 100, NULL), 0); /* 100 s: interval 1 s */
  f->now = t0 + SEC - 1;
  kotte_session *s;
  assert_int_equal(fx_get(f, id, &s), 0);
  assert_int_equal(kotte_session_last_activity(s), t0);
  kotte_session_free(s);
  f->now = t0 + SEC;
  assert_int_equal(fx_get(f, id, &s), 0);
  assert_int_equal(kotte_session_last_activity(s), t0 + SEC);
  kotte_session_free(s);
}

static void an_explicit_interval_is_used_as_given(void **state) {
  F;
  f->opts.touch_interval_s = 60;
  fx_reopen(f);
  char id[44];
  kotte_time t0 = f->now;
  fx_new_session(f, "alice", NULL, id);
  f->now = t0 + 60 * SEC - 1;
  assert_int_equal(last_activity_of(f, id), t0);
  f->now = t0 + 60 * SEC;
  assert_int_equal(last_activity_of(f, id), t0 + 60 * SEC);
}

static void interval_zero_writes_on_every_read(void **state) {
  F;
  f->opts.touch_interval_s = 0;
  fx_reopen(f);
  char id[44];
  kotte_time t0 = f->now;
  fx_new_session(f, "alice", NULL, id);
  f->now = t0 + 1;
  assert_int_equal(last_activity_of(f, id), t0 + 1);
  f->now += 1;
  assert_int_equal(fx_touch(f, id), 0);
  f->now += 1;
  assert_int_equal(last_activity_of(f, id), t0 + 3);
}

static void update_always_writes_the_slide(void **state) {
  F;
  char id[44];
  kotte_time t0 = f->now;
  fx_new_session(f, "alice", NULL, id);
  f->now = t0 + 1;
  kotte_session *s;
  assert_int_equal(fx_update(f, id, "{\"a\":1}", &s), 0);
  assert_int_equal(kotte_session_last_activity(s), t0 + 1);
  kotte_session_free(s);
}

static void a_read_inside_the_interval_still_sees_a_delete(void **state) {
  F;
  char id[44];
  fx_new_session(f, "alice", NULL, id);
  f->now += 1;
  assert_int_equal(fx_get(f, id, NULL), 0);
  assert_int_equal(fx_delete(f, id), 0);
  assert_int_equal(fx_get(f, id, NULL), KOTTE_ENOTFOUND);
  assert_int_equal(fx_touch(f, id), KOTTE_ENOTFOUND);
}

static void intervals_out_of_range_are_refused(void **state) {
  F;
  kotte_session_options o = KOTTE_SESSION_OPTIONS_INIT;
  kotte_session_store *st;
  kotte_session_backend *be = fx_backend(f);
  o.touch_interval_s = -2;
  assert_int_equal(kotte_session_store_new(&st, &f->loop, be, &o), KOTTE_EINVAL);
  o.touch_interval_s = o.idle_timeout_s + 1;
  assert_int_equal(kotte_session_store_new(&st, &f->loop, be, &o), KOTTE_EINVAL);
  /* version-2 options (without the field) get the default */
  o.version = 2;
  assert_int_equal(kotte_session_store_new(&st, &f->loop, be, &o), 0);
  kotte_session_store_free(st);
  uv_run(&f->loop, UV_RUN_DEFAULT);
}

#define TOUCH(setup)                                                                          \
  {                                                                                           \
    cmocka_unit_test_setup_teardown(a_read_inside_the_default_interval_writes_nothing, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(a_session_expires_at_most_one_interval_early_never_late, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(the_default_interval_follows_each_sessions_idle_timeout, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(an_explicit_interval_is_used_as_given, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(interval_zero_writes_on_every_read, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(update_always_writes_the_slide, setup, fx_teardown),     \
    cmocka_unit_test_setup_teardown(a_read_inside_the_interval_still_sees_a_delete, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(intervals_out_of_range_are_refused, setup, fx_teardown), \
  }

int main(void) {
  const struct CMUnitTest memory[] = TOUCH(fx_setup_memory);
  const struct CMUnitTest json_file[] = TOUCH(fx_setup_json_file);
  int failed = 0;
  failed += cmocka_run_group_tests_name("touch interval: memory", memory, NULL, NULL);
  failed += cmocka_run_group_tests_name("touch interval: json_file", json_file, NULL, NULL);
  if (fx_postgresql_conninfo()) {
    const struct CMUnitTest postgresql[] = TOUCH(fx_setup_postgresql);
    failed += cmocka_run_group_tests_name("touch interval: postgresql", postgresql, NULL, NULL);
  } else {
    printf("touch interval: postgresql: skipped: KOTTE_TEST_PG_CONNINFO is not set\n");
  }
  return failed ? 1 : 0;
}
