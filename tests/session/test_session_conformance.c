/* The session store conformance suite: the same behaviour, stated once,
 * run over every built-in backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session_fixture.h"

#define F fx *f = *state

static void create_returns_a_43_char_base64url_id(void **state) {
  F;
  kotte_session *s;
  assert_int_equal(fx_create(f, "alice", "{\"a\":1}", &s), 0);
  assert_int_equal(strlen(kotte_session_id(s)), 43);
  assert_true(kotte_token_is_valid(kotte_session_id(s)));
  assert_string_equal(kotte_session_user_id(s), "alice");
  assert_string_equal(kotte_session_data(s), "{\"a\":1}");
  assert_int_equal(kotte_session_created_at(s), f->now);
  assert_int_equal(kotte_session_expires_at(s), f->now + 1800 * SEC);
  assert_int_equal(kotte_session_max_expires_at(s), f->now + 3600 * SEC);
  kotte_session_free(s);
}

/* Readiness (a probe every few seconds): a healthy store answers 0 and
 * the check changes no session. */
static void check_answers_on_a_healthy_store_and_changes_nothing(void **state) {
  F;
  char id[44];
  fx_new_session(f, "alice", "{\"a\":1}", id);
  kotte_session *before, *after;
  assert_int_equal(fx_get(f, id, &before), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(fx_check(f), 0);
  assert_int_equal(fx_get(f, id, &after), 0);
  assert_string_equal(kotte_session_data(after), "{\"a\":1}");
  assert_int_equal(kotte_session_last_activity(after), kotte_session_last_activity(before));
  kotte_session_free(before);
  kotte_session_free(after);
}

static void create_gives_distinct_ids(void **state) {
  F;
  char a[44], b[44];
  fx_new_session(f, "alice", NULL, a);
  fx_new_session(f, "alice", NULL, b);
  assert_string_not_equal(a, b);
}

static void create_with_null_data_stores_an_empty_object(void **state) {
  F;
  kotte_session *s;
  assert_int_equal(fx_create(f, "alice", NULL, &s), 0);
  assert_string_equal(kotte_session_data(s), "{}");
  kotte_session_free(s);
}

static void create_rejects_data_that_is_not_an_object(void **state) {
  F;
  assert_int_equal(fx_create(f, "alice", "[1,2]", NULL), KOTTE_EBADJSON);
  assert_int_equal(fx_create(f, "alice", "\"x\"", NULL), KOTTE_EBADJSON);
  assert_int_equal(fx_create(f, "alice", "{\"a\":", NULL), KOTTE_EBADJSON);
  assert_int_equal(fx_create(f, "alice", "{} {}", NULL), KOTTE_EBADJSON);
  assert_int_equal(fx_create(f, "alice", "", NULL), KOTTE_EBADJSON);
}

/* cJSON ends a string at a NUL, raw or escaped: such data would be stored
 * shortened, so it is refused, as are raw control characters (which
 * PostgreSQL's jsonb refuses too). An escaped backslash before "u0000" is
 * no escaped NUL and is kept as sent. */
static void data_that_cjson_would_cut_short_is_refused(void **state) {
  F;
  assert_int_equal(fx_create(f, "alice", "{\"pw\":\"pw\\u0000tail\"}", NULL), KOTTE_EINVAL);
  assert_int_equal(fx_create(f, "alice", "{\"pw\":\"a\x01b\"}", NULL), KOTTE_EBADJSON);
  kotte_session *s;
  assert_int_equal(fx_create(f, "alice", "{\"pw\":\"\\\\u0000\"}", &s), 0);
  assert_string_equal(kotte_session_data(s), "{\"pw\":\"\\\\u0000\"}");
  char id[44];
  snprintf(id, sizeof id, "%s", kotte_session_id(s));
  kotte_session_free(s);
  assert_int_equal(fx_update(f, id, "{\"pw\":\"x\\u0000y\"}", NULL), KOTTE_EINVAL);
  assert_int_equal(fx_update(f, id, "{\"pw\":\"x\ny\"}", NULL), KOTTE_EBADJSON);
  assert_int_equal(fx_set(f, id, "alice", "{\"a\":\"\\u0000\"}", 60, NULL), KOTTE_EINVAL);
  assert_int_equal(fx_get(f, id, &s), 0);
  assert_string_equal(kotte_session_data(s), "{\"pw\":\"\\\\u0000\"}");
  kotte_session_free(s);
}

static void create_rejects_bad_user_ids(void **state) {
  F;
  char longuser[300];
  memset(longuser, 'u', sizeof longuser - 1);
  longuser[sizeof longuser - 1] = '\0';
  assert_int_equal(fx_create(f, "", NULL, NULL), KOTTE_EINVAL);
  assert_int_equal(fx_create(f, NULL, NULL, NULL), KOTTE_EINVAL);
  assert_int_equal(fx_create(f, longuser, NULL, NULL), KOTTE_EINVAL);
}

/* Text PostgreSQL would refuse (not UTF-8; \u0000 in jsonb) is refused by
 * the store with the same code whatever the backend, and stores nothing:
 * no backend can turn a client's bytes into a database error. */
static void text_postgresql_cannot_hold_is_refused_by_every_backend(void **state) {
  F;
  static const char *const bad_users[] = {"al\xffice", "\xc0\xaf", "x\xed\xa0\x80",
                                          "\xf4\x90\x80\x80", "cut\xe2\x82"};
  char id[KOTTE_SESSION_ID_LEN + 1];
  kotte_session_list *l;
  uint64_t count;
  fx_new_session(f, "alice", "{\"k\":\"v\"}", id);
  for (size_t i = 0; i < sizeof bad_users / sizeof bad_users[0]; i++) {
    assert_int_equal(fx_create(f, bad_users[i], NULL, NULL), KOTTE_EINVAL);
    assert_non_null(strstr(kotte_error_detail(), "UTF-8"));
    assert_int_equal(fx_set(f, id, bad_users[i], NULL, 0, NULL), KOTTE_EINVAL);
    assert_int_equal(fx_list(f, bad_users[i], &l), KOTTE_EINVAL);
    assert_int_equal(fx_delete_user(f, bad_users[i], &count), KOTTE_EINVAL);
  }
  static const char *const bad_data[] = {
      "{\"k\":\"\xff\"}", "{\"\xc3\":1}", "{\"k\":\"\xed\xb0\x80\"}"};
  for (size_t i = 0; i < sizeof bad_data / sizeof bad_data[0]; i++) {
    assert_int_equal(fx_create(f, "alice", bad_data[i], NULL), KOTTE_EBADJSON);
    assert_int_equal(fx_set(f, id, "alice", bad_data[i], 0, NULL), KOTTE_EBADJSON);
    assert_int_equal(fx_update(f, id, bad_data[i], NULL), KOTTE_EBADJSON);
  }
  /* valid JSON, but a value with a NUL in it cannot be held: EINVAL */
  static const char *const nul_data[] = {"{\"k\":\"a\\u0000b\"}", "{\"\\u0000\":1}",
                                         "{\"k\":[\"\\\\\\u0000\"]}"};
  for (size_t i = 0; i < sizeof nul_data / sizeof nul_data[0]; i++) {
    assert_int_equal(fx_create(f, "alice", nul_data[i], NULL), KOTTE_EINVAL);
    assert_int_equal(fx_set(f, id, "alice", nul_data[i], 0, NULL), KOTTE_EINVAL);
    assert_int_equal(fx_update(f, id, nul_data[i], NULL), KOTTE_EINVAL);
  }
  /* nothing was stored or changed */
  assert_int_equal(fx_list(f, "alice", &l), 0);
  assert_int_equal(kotte_session_list_count(l), 1);
  kotte_session_list_free(l);
  kotte_session *s;
  assert_int_equal(fx_get(f, id, &s), 0);
  assert_string_equal(kotte_session_data(s), "{\"k\":\"v\"}");
  kotte_session_free(s);
  /* what PostgreSQL does hold passes on every backend: any code point, and
   * an escaped backslash before the text u0000 */
  const char *good = "{\"k\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\\\\u0000\",\"\xce\xbb\":1}";
  assert_int_equal(fx_create(f, "\xc3\xa9l\xc3\xa8ve \xf0\x9f\x98\x80", good, &s), 0);
  assert_string_equal(kotte_session_user_id(s), "\xc3\xa9l\xc3\xa8ve \xf0\x9f\x98\x80");
  kotte_session_free(s);
  assert_int_equal(fx_list(f, "\xc3\xa9l\xc3\xa8ve \xf0\x9f\x98\x80", &l), 0);
  assert_int_equal(kotte_session_list_count(l), 1);
  assert_string_equal(kotte_session_data(kotte_session_list_get(l, 0)), good);
  kotte_session_list_free(l);
}

static void create_over_the_size_limit_fails(void **state) {
  F;
  f->opts.max_data_size = 100;
  fx_reopen(f);
  char big[200];
  snprintf(big, sizeof big, "{\"k\":\"%0120d\"}", 0);
  assert_int_equal(fx_create(f, "alice", big, NULL), KOTTE_ETOOBIG);
  assert_int_equal(fx_create(f, "alice", "{\"k\":1}", NULL), 0);
}

static void get_returns_what_create_stored(void **state) {
  F;
  char id[44];
  fx_new_session(f, "alice", "{\"csrf_token\":\"t\",\"graph_context\":null}", id);
  kotte_session *s;
  assert_int_equal(fx_get(f, id, &s), 0);
  assert_string_equal(kotte_session_id(s), id);
  assert_string_equal(kotte_session_user_id(s), "alice");
  assert_string_equal(kotte_session_data(s), "{\"csrf_token\":\"t\",\"graph_context\":null}");
  kotte_session_free(s);
}

static void get_of_an_unknown_id_is_not_found(void **state) {
  F;
  char id[44];
  assert_int_equal(kotte_token_generate(id), 0);
  assert_int_equal(fx_get(f, id, NULL), KOTTE_ENOTFOUND);
}

static void malformed_ids_are_refused_without_a_callback(void **state) {
  F;
  const char *bad[] = { "", "short", "../../../../etc/passwd",
                        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* 44 */
                        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+", /* bad char */
                        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB", /* non-canonical tail */
                        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n" };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(fx_get(f, bad[i], NULL), KOTTE_EBADID);
    assert_int_equal(fx_update(f, bad[i], "{}", NULL), KOTTE_EBADID);
    assert_int_equal(fx_delete(f, bad[i]), KOTTE_EBADID);
    assert_int_equal(fx_touch(f, bad[i]), KOTTE_EBADID);
    assert_int_equal(fx_regenerate(f, bad[i], NULL), KOTTE_EBADID);
    assert_int_equal(fx_set(f, bad[i], "alice", "{}", 0, NULL), KOTTE_EBADID);
  }
  assert_int_equal(fx_get(f, NULL, NULL), KOTTE_EINVAL);
}

static void get_slides_the_idle_expiry(void **state) {
  F;
  char id[44];
  fx_new_session(f, "alice", NULL, id);
  f->now += 1000 * SEC;
  kotte_session *s;
  assert_int_equal(fx_get(f, id, &s), 0);
  assert_int_equal(kotte_session_last_activity(s), f->now);
  assert_int_equal(kotte_session_expires_at(s), f->now + 1800 * SEC);
  kotte_session_free(s);
  f->now += 1500 * SEC; /* 2500 s after creation, 1500 s idle: alive */
  assert_int_equal(fx_get(f, id, NULL), 0);
}

static void idle_timeout_expires_the_session(void **state) {
  F;
  char id[44];
  fx_new_session(f, "alice", NULL, id);
  f->now += 1800 * SEC; /* exactly at the boundary: still alive (Kotte uses >) */
  assert_int_equal(fx_get(f, id, NULL), 0);
  f->now += 1800 * SEC + 1;
  assert_int_equal(fx_get(f, id, NULL), KOTTE_ENOTFOUND);
  f->now -= 3600 * SEC; /* even if the clock went back, it stays gone */
  assert_int_equal(fx_get(f, id, NULL), KOTTE_ENOTFOUND);
}

static void max_age_expires_an_active_session(void **state) {
  F;
  char id[44];
  fx_new_session(f, "alice", NULL, id);
  for (int i = 0; i < 6; i++) {
    f->now += 600 * SEC;
    assert_int_equal(fx_touch(f, id), 0);
  }
  /* 3600 s: at the absolute limit, and the slide was capped by it */
  kotte_session *s;
  assert_int_equal(fx_get(f, id, &s), 0);
  assert_int_equal(kotte_session_expires_at(s), kotte_session_max_expires_at(s));
  kotte_session_free(s);
  f->now += 1;
  assert_int_equal(fx_get(f, id, NULL), KOTTE_ENOTFOUND);
}

static void update_merges_top_level_keys(void **state) {
  F;
  char id[44];
  fx_new_session(f, "alice", "{\"a\":1,\"b\":{\"x\":1}}", id);
  kotte_session *s;
  assert_int_equal(fx_update(f, id, "{\"b\":{\"y\":2},\"c\":null}", &s), 0);
  assert_string_equal(kotte_session_data(s), "{\"a\":1,\"b\":{\"y\":2},\"c\":null}");
  kotte_session_free(s);
  assert_int_equal(fx_get(f, id, &s), 0);
  assert_string_equal(kotte_session_data(s), "{\"a\":1,\"b\":{\"y\":2},\"c\":null}");
  kotte_session_free(s);
}

static void update_slides_the_idle_expiry(void **state) {
  F;
  char id[44];
  fx_new_session(f, "alice", NULL, id);
  f->now += 1700 * SEC;
  assert_int_equal(fx_update(f, id, "{\"k\":1}", NULL), 0);
  f->now += 1700 * SEC;
  assert_int_equal(fx_get(f, id, NULL), 0);
}

static void update_rejects_a_patch_that_is_not_an_object(void **state) {
  F;
  char id[44];
  fx_new_session(f, "alice", "{\"a\":1}", id);
  assert_int_equal(fx_update(f, id, "[1]", NULL), KOTTE_EBADJSON);
  assert_int_equal(fx_update(f, id, "nope", NULL), KOTTE_EBADJSON);
  kotte_session *s;
  assert_int_equal(fx_get(f, id, &s), 0);
  assert_string_equal(kotte_session_data(s), "{\"a\":1}");
  kotte_session_free(s);
}

static void update_over_the_size_limit_fails_and_keeps_the_session(void **state) {
  F;
  f->opts.max_data_size = 64;
  fx_reopen(f);
  char id[44];
  fx_new_session(f, "alice", "{\"a\":\"0123456789012345678901234567890123456789\"}", id);
  assert_int_equal(fx_update(f, id, "{\"b\":\"0123456789012345678901234567\"}", NULL),
                   KOTTE_ETOOBIG);
  kotte_session *s;
  assert_int_equal(fx_get(f, id, &s), 0);
  assert_string_equal(kotte_session_data(s), "{\"a\":\"0123456789012345678901234567890123456789\"}");
  kotte_session_free(s);
}

static void update_after_delete_fails_and_does_not_resurrect(void **state) {
  F;
  char id[44];
  fx_new_session(f, "alice", NULL, id);
  assert_int_equal(fx_delete(f, id), 0);
  assert_int_equal(fx_update(f, id, "{\"a\":1}", NULL), KOTTE_ENOTFOUND);
  assert_int_equal(fx_touch(f, id), KOTTE_ENOTFOUND);
  assert_int_equal(fx_get(f, id, NULL), KOTTE_ENOTFOUND);
}

static void update_after_expiry_fails_and_does_not_resurrect(void **state) {
  F;
  char id[44];
  fx_new_session(f, "alice", NULL, id);
  f->now += 1801 * SEC;
  assert_int_equal(fx_update(f, id, "{\"a\":1}", NULL), KOTTE_ENOTFOUND);
  assert_int_equal(fx_touch(f, id), KOTTE_ENOTFOUND);
  f->now -= 1801 * SEC;
  assert_int_equal(fx_get(f, id, NULL), KOTTE_ENOTFOUND);
}

static void delete_of_an_unknown_session_is_not_found(void **state) {
  F;
  char id[44];
  fx_new_session(f, "alice", NULL, id);
  assert_int_equal(fx_delete(f, id), 0);
  assert_int_equal(fx_delete(f, id), KOTTE_ENOTFOUND);
}

static void touch_slides_without_changing_data(void **state) {
  F;
  char id[44];
  fx_new_session(f, "alice", "{\"a\":1}", id);
  f->now += 1700 * SEC;
  assert_int_equal(fx_touch(f, id), 0);
  f->now += 1700 * SEC;
  kotte_session *s;
  assert_int_equal(fx_get(f, id, &s), 0);
  assert_string_equal(kotte_session_data(s), "{\"a\":1}");
  kotte_session_free(s);
}

static void set_creates_a_session_with_its_own_ttl(void **state) {
  F;
  char id[44];
  assert_int_equal(kotte_token_generate(id), 0);
  kotte_session *s;
  assert_int_equal(fx_set(f, id, "bob", "{\"x\":1}", 60, &s), 0);
  assert_int_equal(kotte_session_expires_at(s), f->now + 60 * SEC);
  kotte_session_free(s);
  f->now += 59 * SEC;
  assert_int_equal(fx_get(f, id, NULL), 0); /* slides by 60 s again */
  f->now += 61 * SEC;
  assert_int_equal(fx_get(f, id, NULL), KOTTE_ENOTFOUND);
}

static void set_replaces_data_but_keeps_creation_and_max_age(void **state) {
  F;
  char id[44];
  fx_new_session(f, "alice", "{\"a\":1}", id);
  kotte_time created = f->now;
  f->now += 100 * SEC;
  kotte_session *s;
  assert_int_equal(fx_set(f, id, "alice", "{\"b\":2}", 0, &s), 0);
  assert_string_equal(kotte_session_data(s), "{\"b\":2}");
  assert_int_equal(kotte_session_created_at(s), created);
  assert_int_equal(kotte_session_max_expires_at(s), created + 3600 * SEC);
  kotte_session_free(s);
}

static void regenerate_moves_the_session_and_kills_the_old_id(void **state) {
  F;
  char id[44];
  fx_new_session(f, "alice", "{\"a\":1}", id);
  kotte_time created = f->now;
  f->now += 10 * SEC;
  kotte_session *s;
  assert_int_equal(fx_regenerate(f, id, &s), 0);
  char nid[44];
  memcpy(nid, kotte_session_id(s), 44);
  assert_string_not_equal(nid, id);
  assert_string_equal(kotte_session_data(s), "{\"a\":1}");
  assert_int_equal(kotte_session_created_at(s), created);
  kotte_session_free(s);
  assert_int_equal(fx_get(f, id, NULL), KOTTE_ENOTFOUND);
  assert_int_equal(fx_get(f, nid, NULL), 0);
  assert_int_equal(fx_regenerate(f, id, NULL), KOTTE_ENOTFOUND);
}

static void list_and_delete_all_sessions_of_a_user(void **state) {
  F;
  char a1[44], a2[44], b1[44], a3[44];
  fx_new_session(f, "alice", NULL, a1);
  f->now += SEC;
  fx_new_session(f, "alice", NULL, a2);
  fx_new_session(f, "bob", NULL, b1);
  f->now += SEC;
  fx_new_session(f, "alice", NULL, a3);
  assert_int_equal(fx_delete(f, a3), 0);
  kotte_session_list *l;
  assert_int_equal(fx_list(f, "alice", &l), 0);
  assert_int_equal(kotte_session_list_count(l), 2);
  assert_string_equal(kotte_session_id(kotte_session_list_get(l, 0)), a1); /* oldest first */
  assert_string_equal(kotte_session_id(kotte_session_list_get(l, 1)), a2);
  assert_null(kotte_session_list_get(l, 2));
  kotte_session_list_free(l);
  uint64_t n;
  assert_int_equal(fx_delete_user(f, "alice", &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(fx_get(f, a1, NULL), KOTTE_ENOTFOUND);
  assert_int_equal(fx_get(f, b1, NULL), 0);
  assert_int_equal(fx_list(f, "alice", &l), 0);
  assert_int_equal(kotte_session_list_count(l), 0);
  kotte_session_list_free(l);
  assert_int_equal(fx_delete_user(f, "nobody", &n), 0);
  assert_int_equal(n, 0);
}

static void list_leaves_out_expired_sessions(void **state) {
  F;
  char a1[44], a2[44];
  fx_new_session(f, "alice", NULL, a1);
  f->now += 1000 * SEC;
  fx_new_session(f, "alice", NULL, a2);
  f->now += 1000 * SEC; /* a1 idle 2000 s: dead; a2 idle 1000 s */
  kotte_session_list *l;
  assert_int_equal(fx_list(f, "alice", &l), 0);
  assert_int_equal(kotte_session_list_count(l), 1);
  assert_string_equal(kotte_session_id(kotte_session_list_get(l, 0)), a2);
  kotte_session_list_free(l);
}

static void purge_removes_expired_sessions_in_batches(void **state) {
  F;
  f->opts.purge_batch = 3;
  fx_reopen(f);
  char ids[12][44];
  for (int i = 0; i < 10; i++) fx_new_session(f, "alice", NULL, ids[i]);
  f->now += 1000 * SEC;
  fx_new_session(f, "bob", NULL, ids[10]);
  fx_new_session(f, "bob", NULL, ids[11]);
  f->now += 1000 * SEC;
  uint64_t n;
  assert_int_equal(fx_purge(f, &n), 0);
  assert_int_equal(n, 10);
  assert_int_equal(fx_get(f, ids[10], NULL), 0);
  assert_int_equal(fx_get(f, ids[11], NULL), 0);
  assert_int_equal(fx_purge(f, &n), 0);
  assert_int_equal(n, 0);
}

/* Free from inside a callback and with operations in flight. */
typedef struct free_ctx {
  kotte_session_store **store;
  int calls;
  int statuses[3];
} free_ctx;

static void free_in_cb(int status, kotte_session *s, void *ud) {
  free_ctx *c = ud;
  c->statuses[c->calls++] = status;
  kotte_session_free(s);
  if (*c->store) {
    kotte_session_store_free(*c->store);
    *c->store = NULL;
  }
}

static void freeing_the_store_in_a_callback_cancels_the_rest(void **state) {
  F;
  free_ctx c = { &f->store, 0, { 0 } };
  for (int i = 0; i < 3; i++)
    assert_int_equal(kotte_session_create(f->store, "alice", NULL, free_in_cb, &c), 0);
  assert_int_equal(c.calls, 0); /* never inline */
  uv_run(&f->env.loop, UV_RUN_DEFAULT);
  assert_int_equal(c.calls, 3); /* exactly one callback each, even after free */
  assert_int_equal(c.statuses[0], 0);
  assert_int_equal(c.statuses[1], KOTTE_ECANCELED);
  assert_int_equal(c.statuses[2], KOTTE_ECANCELED);
  assert_null(f->store);
  fx_reopen(f); /* for teardown */
}

static void calls_after_free_are_refused(void **state) {
  F;
  /* a store that is closing refuses new work with KOTTE_ECLOSED */
  free_ctx c = { &f->store, 0, { 0 } };
  kotte_session_store *st = f->store;
  assert_int_equal(kotte_session_create(st, "alice", NULL, free_in_cb, &c), 0);
  kotte_session_store_free(st); /* pending: not released yet */
  f->store = NULL;
  assert_int_equal(kotte_session_create(st, "alice", NULL, free_in_cb, &c), KOTTE_ECLOSED);
  uv_run(&f->env.loop, UV_RUN_DEFAULT);
  assert_int_equal(c.calls, 1);
  assert_int_equal(c.statuses[0], KOTTE_ECANCELED);
  fx_reopen(f);
}

static void options_with_an_unknown_version_are_refused(void **state) {
  F;
  kotte_session_backend *be = fx_backend(f);
  kotte_session_options o = KOTTE_SESSION_OPTIONS_INIT;
  kotte_session_store *st;
  o.version = 99;
  assert_int_equal(kotte_session_store_new(&st, &f->env.loop, be, &o), KOTTE_EVERSION);
  o.version = KOTTE_SESSION_OPTIONS_VERSION;
  o.idle_timeout_s = 0;
  assert_int_equal(kotte_session_store_new(&st, &f->env.loop, be, &o), KOTTE_EINVAL);
  kotte_session_backend_free(be);
  assert_string_equal(kotte_session_store_backend_name(f->store),
                      f->env.kind == FX_MEMORY       ? "memory"
                      : f->env.kind == FX_POSTGRESQL ? "postgresql"
                                                 : "json_file");
}

#define CONFORMANCE(setup)                                                            \
  {                                                                                   \
    cmocka_unit_test_setup_teardown(create_returns_a_43_char_base64url_id, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(create_gives_distinct_ids, setup, fx_teardown),   \
    cmocka_unit_test_setup_teardown(check_answers_on_a_healthy_store_and_changes_nothing, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(create_with_null_data_stores_an_empty_object, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(create_rejects_data_that_is_not_an_object, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(create_rejects_bad_user_ids, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(text_postgresql_cannot_hold_is_refused_by_every_backend, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(data_that_cjson_would_cut_short_is_refused, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(create_over_the_size_limit_fails, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(get_returns_what_create_stored, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(get_of_an_unknown_id_is_not_found, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(malformed_ids_are_refused_without_a_callback, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(get_slides_the_idle_expiry, setup, fx_teardown),  \
    cmocka_unit_test_setup_teardown(idle_timeout_expires_the_session, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(max_age_expires_an_active_session, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(update_merges_top_level_keys, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(update_slides_the_idle_expiry, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(update_rejects_a_patch_that_is_not_an_object, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(update_over_the_size_limit_fails_and_keeps_the_session, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(update_after_delete_fails_and_does_not_resurrect, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(update_after_expiry_fails_and_does_not_resurrect, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(delete_of_an_unknown_session_is_not_found, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(touch_slides_without_changing_data, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(set_creates_a_session_with_its_own_ttl, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(set_replaces_data_but_keeps_creation_and_max_age, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(regenerate_moves_the_session_and_kills_the_old_id, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(list_and_delete_all_sessions_of_a_user, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(list_leaves_out_expired_sessions, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(purge_removes_expired_sessions_in_batches, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(freeing_the_store_in_a_callback_cancels_the_rest, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(calls_after_free_are_refused, setup, fx_teardown), \
    cmocka_unit_test_setup_teardown(options_with_an_unknown_version_are_refused, setup, fx_teardown), \
  }

int main(void) {
  const struct CMUnitTest memory[] = CONFORMANCE(fx_setup_memory);
  const struct CMUnitTest json_file[] = CONFORMANCE(fx_setup_json_file);
  int failed = 0;
  failed += cmocka_run_group_tests_name("session conformance: memory", memory, NULL, NULL);
  failed += cmocka_run_group_tests_name("session conformance: json_file", json_file, NULL, NULL);
  /* touch interval 0: every read writes, as before the interval existed */
  failed += cmocka_run_group_tests_name("session conformance: memory, touch 0", memory,
                                        fx_variant_touch0, fx_variant_reset);
  failed += cmocka_run_group_tests_name("session conformance: json_file, touch 0", json_file,
                                        fx_variant_touch0, fx_variant_reset);
  if (fx_postgresql_conninfo()) {
    const struct CMUnitTest postgresql[] = CONFORMANCE(fx_setup_postgresql);
    failed += cmocka_run_group_tests_name("session conformance: postgresql", postgresql, NULL, NULL);
    failed += cmocka_run_group_tests_name("session conformance: postgresql, touch 0", postgresql,
                                          fx_variant_touch0, fx_variant_reset);
    failed += cmocka_run_group_tests_name("session conformance: postgresql, cache", postgresql,
                                          fx_variant_cache, fx_variant_reset);
    failed += cmocka_run_group_tests_name("session conformance: postgresql, pipelined",
                                          postgresql, fx_variant_pipelined, fx_variant_reset);
    failed += cmocka_run_group_tests_name("session conformance: postgresql, pipelined, cache",
                                          postgresql, fx_variant_pipelined_cache, fx_variant_reset);
  } else {
    printf("session conformance: postgresql: skipped: KOTTE_TEST_PG_CONNINFO is not set "
           "(tests/suites.d/20-postgresql.sh starts a server and sets it)\n");
  }
  return failed ? 1 : 0;
}
