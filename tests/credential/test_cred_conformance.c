/* The credential store conformance suite: the same behaviour, stated once,
 * run over every built-in backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cred_fixture.h"
#include "credential/credential_internal.h"

#define F cfx *f = *state

static void save_returns_a_random_uuid_and_metadata_without_secrets(void **state) {
  F;
  kotte_cred_input in = cfx_input("prod", "graph_reader", "s3cret pw");
  kotte_cred *c;
  assert_int_equal(cfx_save(f, "alice", &in, &c), 0);
  const char *id = kotte_cred_id(c);
  assert_int_equal(strlen(id), KOTTE_CRED_ID_LEN);
  for (int i = 0; i < KOTTE_CRED_ID_LEN; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) assert_int_equal(id[i], '-');
    else assert_non_null(strchr("0123456789abcdef", id[i]));
  }
  assert_int_equal(id[14], '4');                  /* version 4 */
  assert_non_null(strchr("89ab", id[19]));         /* RFC 4122 variant */
  assert_string_equal(kotte_cred_user_id(c), "alice");
  assert_string_equal(kotte_cred_name(c), "prod");
  assert_string_equal(kotte_cred_host(c), "db.example.internal");
  assert_int_equal(kotte_cred_port(c), 5432);
  assert_string_equal(kotte_cred_database(c), "graphs");
  assert_string_equal(kotte_cred_sslmode(c), "require");
  assert_null(kotte_cred_username(c));
  assert_null(kotte_cred_password(c));
  assert_int_equal(kotte_cred_created_at(c), f->now);
  assert_int_equal(kotte_cred_updated_at(c), f->now);
  assert_string_equal(kotte_cred_created_at_iso(c), "2023-11-14T22:13:20+00:00");
  assert_string_equal(kotte_cred_key_id(c), kotte_keyring_current_id(f->kr));
  kotte_cred_free(c);
}

/* Readiness: a healthy store answers 0 and the check changes nothing. */
static void check_answers_on_a_healthy_store(void **state) {
  F;
  kotte_cred_input in = cfx_input("prod", "graph_reader", "s3cret pw");
  kotte_cred *c;
  assert_int_equal(cfx_save(f, "alice", &in, &c), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(cfx_check(f), 0);
  kotte_cred_list *l;
  assert_int_equal(cfx_list(f, "alice", &l), 0);
  assert_int_equal(kotte_cred_list_count(l), 1);
  kotte_cred_list_free(l);
  kotte_cred_free(c);
}

static void save_gives_distinct_ids(void **state) {
  F;
  char a[37], b[37];
  cfx_new(f, "alice", "one", "u", "p", a);
  cfx_new(f, "alice", "two", "u", "p", b);
  assert_string_not_equal(a, b);
}

static void get_returns_the_decrypted_secrets(void **state) {
  F;
  char id[37];
  cfx_new(f, "alice", "prod", "graph_reader", "pä$$wörd ✓", id);
  f->now += 5 * SEC;
  kotte_cred *c;
  assert_int_equal(cfx_get(f, "alice", id, &c), 0);
  assert_string_equal(kotte_cred_id(c), id);
  assert_string_equal(kotte_cred_name(c), "prod");
  assert_string_equal(kotte_cred_username(c), "graph_reader");
  assert_string_equal(kotte_cred_password(c), "pä$$wörd ✓");
  assert_int_equal(kotte_cred_created_at(c), f->now - 5 * SEC);
  kotte_cred_free(c);
}

static void get_accepts_an_id_in_upper_case(void **state) {
  F;
  char id[37], up[37];
  cfx_new(f, "alice", "prod", "u", "p", id);
  for (int i = 0; i < 37; i++) up[i] = (char)(id[i] >= 'a' && id[i] <= 'f' ? id[i] - 32 : id[i]);
  kotte_cred *c;
  assert_int_equal(cfx_get(f, "alice", up, &c), 0);
  assert_string_equal(kotte_cred_id(c), id);
  kotte_cred_free(c);
}

static void a_second_connection_with_the_same_name_already_exists(void **state) {
  F;
  char id[37];
  cfx_new(f, "alice", "prod", "u", "p", id);
  kotte_cred_input in = cfx_input("prod", "other", "other");
  in.port = 6543;
  assert_int_equal(cfx_save(f, "alice", &in, NULL), KOTTE_EEXISTS);
  assert_non_null(strstr(kotte_strerror(KOTTE_EEXISTS), "already exists"));
  kotte_cred *c;
  assert_int_equal(cfx_get(f, "alice", id, &c), 0); /* the first one is untouched */
  assert_int_equal(kotte_cred_port(c), 5432);
  assert_string_equal(kotte_cred_username(c), "u");
  kotte_cred_free(c);
  assert_int_equal(cfx_save(f, "bob", &in, NULL), 0); /* another user may */
}

static void unknown_foreign_and_malformed_ids_are_not_found(void **state) {
  F;
  char id[37], random_id[37];
  cfx_new(f, "alice", "prod", "u", "p", id);
  kotte__uuid_v4(random_id);
  kotte_cred_input patch = KOTTE_CRED_INPUT_INIT;
  patch.fields = KOTTE_CRED_PORT;
  patch.port = 1;
  /* unknown, and another user's */
  const char *users[] = { "alice", "bob" };
  const char *ids[] = { random_id, id };
  for (int i = 0; i < 2; i++) {
    assert_int_equal(cfx_get(f, users[i], ids[i], NULL), KOTTE_ENOTFOUND);
    assert_int_equal(cfx_update(f, users[i], ids[i], &patch, NULL), KOTTE_ENOTFOUND);
    assert_int_equal(cfx_delete(f, users[i], ids[i]), KOTTE_ENOTFOUND);
  }
  /* not a UUID at all: not found at once, without a callback */
  const char *bad[] = { "", "1", "../../../../etc/passwd", "user:alice",
                        "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
                        "0123456789abcdef0123456789abcdef", /* no hyphens */
                        "{01234567-89ab-cdef-0123-456789abcdef}",
                        "01234567-89ab-cdef-0123-456789abcdef0", /* one too many */
                        "01234567-89ab-cdef-0123-456789abcde" };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(cfx_get(f, "alice", bad[i], NULL), KOTTE_ENOTFOUND);
    assert_int_equal(cfx_update(f, "alice", bad[i], &patch, NULL), KOTTE_ENOTFOUND);
    assert_int_equal(cfx_delete(f, "alice", bad[i]), KOTTE_ENOTFOUND);
  }
  assert_int_equal(cfx_get(f, "alice", NULL, NULL), KOTTE_EINVAL);
  assert_int_equal(cfx_get(f, "alice", id, NULL), 0); /* nothing happened to it */
}

static void list_returns_metadata_oldest_first_and_opens_nothing(void **state) {
  F;
  char a[37], b[37], c[37];
  cfx_new(f, "alice", "one", "u1", "p1", a);
  f->now += SEC;
  cfx_new(f, "alice", "two", "u2", "p2", b);
  cfx_new(f, "bob", "bobs", "u3", "p3", c);
  uint64_t opens = kotte__keyring_open_count(f->kr);
  kotte_cred_list *l;
  assert_int_equal(cfx_list(f, "alice", &l), 0);
  assert_int_equal(kotte__keyring_open_count(f->kr), opens); /* nothing decrypted */
  assert_int_equal(kotte_cred_list_count(l), 2);
  const kotte_cred *x = kotte_cred_list_get(l, 0), *y = kotte_cred_list_get(l, 1);
  assert_string_equal(kotte_cred_id(x), a);
  assert_string_equal(kotte_cred_id(y), b);
  assert_string_equal(kotte_cred_name(y), "two");
  assert_string_equal(kotte_cred_host(y), "db.example.internal");
  assert_int_equal(kotte_cred_port(y), 5432);
  assert_string_equal(kotte_cred_database(y), "graphs");
  assert_string_equal(kotte_cred_sslmode(y), "require");
  assert_string_equal(kotte_cred_updated_at_iso(y), "2023-11-14T22:13:21+00:00");
  assert_null(kotte_cred_username(y));
  assert_null(kotte_cred_password(y));
  assert_null(kotte_cred_list_get(l, 2));
  kotte_cred_list_free(l);
  assert_int_equal(cfx_list(f, "carol", &l), 0);
  assert_int_equal(kotte_cred_list_count(l), 0);
  kotte_cred_list_free(l);
}

static void list_works_even_when_no_key_can_open_the_records(void **state) {
  F;
  char a[37];
  cfx_new(f, "alice", "one", "u1", "p1", a);
  cfx_use_ring(f, cfx_ring(KEY_B, NULL)); /* key A is gone */
  kotte_cred_list *l;
  assert_int_equal(cfx_list(f, "alice", &l), 0);
  assert_int_equal(kotte_cred_list_count(l), 1);
  kotte_cred_list_free(l);
  assert_int_equal(cfx_get(f, "alice", a, NULL), KOTTE_EKEY);
  assert_non_null(strstr(kotte_error_detail(), "not in the key ring"));
}

static void update_changes_metadata_keeps_secrets_and_stamps_updated_at(void **state) {
  F;
  char id[37];
  cfx_new(f, "alice", "prod", "u", "p", id);
  kotte_time created = f->now;
  f->now += 60 * SEC + 250000;
  kotte_cred_input in = KOTTE_CRED_INPUT_INIT;
  in.fields = KOTTE_CRED_HOST | KOTTE_CRED_PORT | KOTTE_CRED_DATABASE | KOTTE_CRED_SSLMODE;
  in.host = "replica.example.internal";
  in.port = 6432;
  in.database = "other";
  in.sslmode = NULL; /* back to libpq's default */
  kotte_cred *c;
  assert_int_equal(cfx_update(f, "alice", id, &in, &c), 0);
  assert_string_equal(kotte_cred_host(c), "replica.example.internal");
  assert_null(kotte_cred_password(c));
  kotte_cred_free(c);
  assert_int_equal(cfx_get(f, "alice", id, &c), 0);
  assert_string_equal(kotte_cred_name(c), "prod");
  assert_string_equal(kotte_cred_host(c), "replica.example.internal");
  assert_int_equal(kotte_cred_port(c), 6432);
  assert_string_equal(kotte_cred_database(c), "other");
  assert_string_equal(kotte_cred_sslmode(c), "prefer");
  assert_string_equal(kotte_cred_username(c), "u");
  assert_string_equal(kotte_cred_password(c), "p");
  assert_int_equal(kotte_cred_created_at(c), created);
  assert_int_equal(kotte_cred_updated_at(c), f->now);
  assert_string_equal(kotte_cred_updated_at_iso(c), "2023-11-14T22:14:20.250000+00:00");
  kotte_cred_free(c);
}

static void update_renames_but_names_stay_unique(void **state) {
  F;
  char a[37], b[37];
  cfx_new(f, "alice", "one", "u", "p", a);
  cfx_new(f, "alice", "two", "u", "p", b);
  kotte_cred_input in = KOTTE_CRED_INPUT_INIT;
  in.fields = KOTTE_CRED_NAME | KOTTE_CRED_PORT;
  in.name = "two";
  in.port = 1111;
  assert_int_equal(cfx_update(f, "alice", a, &in, NULL), KOTTE_EEXISTS);
  kotte_cred *c;
  assert_int_equal(cfx_get(f, "alice", a, &c), 0); /* unchanged, port included */
  assert_string_equal(kotte_cred_name(c), "one");
  assert_int_equal(kotte_cred_port(c), 5432);
  kotte_cred_free(c);
  in.name = "one"; /* its own name: fine */
  assert_int_equal(cfx_update(f, "alice", a, &in, NULL), 0);
  in.name = "three";
  assert_int_equal(cfx_update(f, "alice", a, &in, NULL), 0);
  kotte_cred_input again = cfx_input("one", "x", "y"); /* the old name is free */
  assert_int_equal(cfx_save(f, "alice", &again, NULL), 0);
  again.name = "three";
  assert_int_equal(cfx_save(f, "alice", &again, NULL), KOTTE_EEXISTS);
}

static void update_of_one_secret_keeps_the_other(void **state) {
  F;
  char id[37];
  cfx_new(f, "alice", "prod", "old-user", "old-pass", id);
  kotte_cred_input in = KOTTE_CRED_INPUT_INIT;
  in.fields = KOTTE_CRED_PASSWORD;
  in.password = "new-pass";
  assert_int_equal(cfx_update(f, "alice", id, &in, NULL), 0);
  kotte_cred *c;
  assert_int_equal(cfx_get(f, "alice", id, &c), 0);
  assert_string_equal(kotte_cred_username(c), "old-user");
  assert_string_equal(kotte_cred_password(c), "new-pass");
  kotte_cred_free(c);
  in.fields = KOTTE_CRED_USERNAME;
  in.username = "new-user";
  assert_int_equal(cfx_update(f, "alice", id, &in, NULL), 0);
  assert_int_equal(cfx_get(f, "alice", id, &c), 0);
  assert_string_equal(kotte_cred_username(c), "new-user");
  assert_string_equal(kotte_cred_password(c), "new-pass");
  kotte_cred_free(c);
  in.fields = KOTTE_CRED_ALL;
  in = cfx_input("renamed", "u2", "p2");
  in.fields = KOTTE_CRED_ALL;
  assert_int_equal(cfx_update(f, "alice", id, &in, NULL), 0);
  assert_int_equal(cfx_get(f, "alice", id, &c), 0);
  assert_string_equal(kotte_cred_name(c), "renamed");
  assert_string_equal(kotte_cred_username(c), "u2");
  assert_string_equal(kotte_cred_password(c), "p2");
  kotte_cred_free(c);
}

static void update_needs_fields_and_checks_them(void **state) {
  F;
  char id[37];
  cfx_new(f, "alice", "prod", "u", "p", id);
  kotte_cred_input in = KOTTE_CRED_INPUT_INIT;
  assert_int_equal(cfx_update(f, "alice", id, &in, NULL), KOTTE_EINVAL);
  in.fields = 1u << 20;
  assert_int_equal(cfx_update(f, "alice", id, &in, NULL), KOTTE_EINVAL);
  in.fields = KOTTE_CRED_PORT;
  in.port = 0;
  assert_int_equal(cfx_update(f, "alice", id, &in, NULL), KOTTE_EINVAL);
  in.fields = KOTTE_CRED_PASSWORD;
  in.password = NULL;
  assert_int_equal(cfx_update(f, "alice", id, &in, NULL), KOTTE_EINVAL);
  assert_non_null(strstr(kotte_error_detail(), "password is missing"));
}

static void delete_removes_and_a_second_delete_is_not_found(void **state) {
  F;
  char id[37];
  cfx_new(f, "alice", "prod", "u", "p", id);
  assert_int_equal(cfx_delete(f, "bob", id), KOTTE_ENOTFOUND); /* not bob's */
  assert_int_equal(cfx_delete(f, "alice", id), 0);
  assert_int_equal(cfx_delete(f, "alice", id), KOTTE_ENOTFOUND);
  assert_int_equal(cfx_get(f, "alice", id, NULL), KOTTE_ENOTFOUND);
  kotte_cred_input in = cfx_input("prod", "u", "p"); /* the name is free again */
  assert_int_equal(cfx_save(f, "alice", &in, NULL), 0);
}

static void invalid_input_is_refused_with_a_detail_naming_the_field(void **state) {
  F;
  char name100[401] = "", name101[402] = "";
  for (int i = 0; i < 100; i++) strcat(name100, "é"); /* 100 characters, 200 bytes */
  snprintf(name101, sizeof name101, "%sx", name100);
  kotte_cred_input in = cfx_input(name100, "u", "p");
  assert_int_equal(cfx_save(f, "alice", &in, NULL), 0);
  in.name = name101;
  assert_int_equal(cfx_save(f, "alice", &in, NULL), KOTTE_EINVAL);
  assert_non_null(strstr(kotte_error_detail(), "name"));
  in = cfx_input("", "u", "p");
  assert_int_equal(cfx_save(f, "alice", &in, NULL), KOTTE_EINVAL);
  in = cfx_input("x", "u", "p");
  in.port = 0;
  assert_int_equal(cfx_save(f, "alice", &in, NULL), KOTTE_EINVAL);
  in.port = 65536;
  assert_int_equal(cfx_save(f, "alice", &in, NULL), KOTTE_EINVAL);
  assert_non_null(strstr(kotte_error_detail(), "port"));
  in = cfx_input("x", "u", "p");
  in.sslmode = "sometimes";
  assert_int_equal(cfx_save(f, "alice", &in, NULL), KOTTE_EINVAL);
  assert_non_null(strstr(kotte_error_detail(), "sslmode"));
  in = cfx_input("x", "u", "p");
  in.host = "bad\xff";
  assert_int_equal(cfx_save(f, "alice", &in, NULL), KOTTE_EINVAL);
  assert_non_null(strstr(kotte_error_detail(), "host is not valid UTF-8"));
  in = cfx_input("x", "u", "bad\xc0\xaf"); /* overlong '/' */
  assert_int_equal(cfx_save(f, "alice", &in, NULL), KOTTE_EINVAL);
  assert_null(strstr(kotte_error_detail(), "bad")); /* never the value */
  in = cfx_input("x", "u", NULL);
  assert_int_equal(cfx_save(f, "alice", &in, NULL), KOTTE_EINVAL);
  in = cfx_input("x", "u", "p");
  assert_int_equal(cfx_save(f, "", &in, NULL), KOTTE_EINVAL);
  assert_int_equal(cfx_save(f, NULL, &in, NULL), KOTTE_EINVAL);
  assert_int_equal(cfx_save(f, "alice", NULL, NULL), KOTTE_EINVAL);
  in.version = 99;
  assert_int_equal(cfx_save(f, "alice", &in, NULL), KOTTE_EVERSION);
  kotte_cred_list *l;
  assert_int_equal(cfx_list(f, "alice", &l), 0);
  assert_int_equal(kotte_cred_list_count(l), 1); /* only the valid one */
  kotte_cred_list_free(l);
}

/* A user id that is not UTF-8 can own nothing (PostgreSQL's text column
 * would refuse it): every call naming one is refused the same way on every
 * backend, never passed on as a database error. */
static void user_ids_that_are_not_utf8_are_refused_everywhere(void **state) {
  F;
  char id[KOTTE_CRED_ID_LEN + 1];
  cfx_new(f, "alice", "n", "u", "p", id);
  kotte_cred_input in = cfx_input("x", "u", "p");
  kotte_cred_list *l;
  kotte_cred *c;
  static const char *const bad[] = {"al\xffice", "\xc0\xaf", "\xed\xa0\x80", "cut\xe2\x82"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(cfx_save(f, bad[i], &in, NULL), KOTTE_EINVAL);
    assert_non_null(strstr(kotte_error_detail(), "UTF-8"));
    assert_int_equal(cfx_get(f, bad[i], id, &c), KOTTE_EINVAL);
    assert_int_equal(cfx_list(f, bad[i], &l), KOTTE_EINVAL);
    assert_int_equal(cfx_update(f, bad[i], id, &in, NULL), KOTTE_EINVAL);
    assert_int_equal(cfx_delete(f, bad[i], id), KOTTE_EINVAL);
  }
  assert_int_equal(cfx_list(f, "alice", &l), 0);
  assert_int_equal(kotte_cred_list_count(l), 1);
  kotte_cred_list_free(l);
}

static void empty_values_mean_libpq_defaults_and_are_kept(void **state) {
  F;
  kotte_cred_input in = cfx_input("local socket", "", "");
  in.host = "";
  in.database = "";
  in.sslmode = NULL;
  kotte_cred *c;
  assert_int_equal(cfx_save(f, "alice", &in, &c), 0);
  char id[37];
  memcpy(id, kotte_cred_id(c), 37);
  assert_string_equal(kotte_cred_sslmode(c), "prefer");
  kotte_cred_free(c);
  assert_int_equal(cfx_get(f, "alice", id, &c), 0);
  assert_string_equal(kotte_cred_host(c), "");
  assert_string_equal(kotte_cred_database(c), "");
  assert_string_equal(kotte_cred_username(c), "");
  assert_string_equal(kotte_cred_password(c), "");
  kotte_cred_free(c);
}

static void an_import_keeps_its_id_and_times(void **state) {
  F;
  kotte_cred_input in = cfx_input("imported", "u", "p");
  in.id = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
  in.created_at = 1600000000LL * SEC + 123456;
  in.updated_at = 1650000000LL * SEC;
  kotte_cred *c;
  assert_int_equal(cfx_save(f, "alice", &in, &c), 0);
  assert_string_equal(kotte_cred_id(c), "6f9619ff-8b86-d011-b42d-00c04fc964ff");
  kotte_cred_free(c);
  assert_int_equal(cfx_get(f, "alice", "6f9619ff-8b86-d011-b42d-00c04fc964ff", &c), 0);
  assert_int_equal(kotte_cred_created_at(c), 1600000000LL * SEC + 123456);
  assert_string_equal(kotte_cred_created_at_iso(c), "2020-09-13T12:26:40.123456+00:00");
  assert_string_equal(kotte_cred_updated_at_iso(c), "2022-04-15T05:20:00+00:00");
  assert_string_equal(kotte_cred_password(c), "p");
  kotte_cred_free(c);
  in.name = "other name";
  assert_int_equal(cfx_save(f, "bob", &in, NULL), KOTTE_EEXISTS); /* the id is taken */
  in.id = "not-a-uuid";
  assert_int_equal(cfx_save(f, "alice", &in, NULL), KOTTE_EINVAL);
}

static void key_usage_counts_records_per_key(void **state) {
  F;
  char id[37];
  cfx_new(f, "alice", "one", "u", "p", id);
  cfx_new(f, "bob", "one", "u", "p", id);
  kotte_cred_report *r;
  assert_int_equal(cfx_usage(f, &r), 0);
  assert_int_equal(kotte_cred_report_key_count(r), 1);
  assert_string_equal(kotte_cred_report_key_id(r, 0), kotte_keyring_current_id(f->kr));
  assert_int_equal(kotte_cred_report_key_records(r, 0), 2);
  assert_true(kotte_cred_report_key_is_current(r, 0));
  assert_true(kotte_cred_report_key_in_ring(r, 0));
  assert_int_equal(kotte_cred_report_stale(r), 0);
  assert_int_equal(kotte_cred_report_rewrapped(r), 0);
  assert_null(kotte_cred_report_key_id(r, 1));
  kotte_cred_report_free(r);
}

static void rewrap_reseals_every_record_under_the_current_key(void **state) {
  F;
  f->opts.rewrap_batch = 3; /* several rounds */
  cfx_reopen(f);
  char ids[8][37], name[16];
  for (int i = 0; i < 8; i++) {
    snprintf(name, sizeof name, "c%d", i);
    cfx_new(f, i % 2 ? "alice" : "bob", name, "user", name, ids[i]);
  }
  char old_id[17], new_id[17], keys[128], want[128];
  snprintf(old_id, sizeof old_id, "%s", kotte_keyring_current_id(f->kr));
  cfx_use_ring(f, cfx_ring(KEY_B, KEY_A));
  snprintf(new_id, sizeof new_id, "%s", kotte_keyring_current_id(f->kr));
  kotte_cred_report *r;
  assert_int_equal(cfx_usage(f, &r), 0);
  assert_int_equal(kotte_cred_report_stale(r), 8);
  assert_false(kotte_cred_report_key_is_current(r, 0));
  kotte_cred_report_free(r);
  /* readable before, with the old key */
  kotte_cred *c;
  assert_int_equal(cfx_get(f, "alice", ids[1], &c), 0);
  assert_string_equal(kotte_cred_key_id(c), old_id);
  kotte_cred_free(c);
  assert_int_equal(cfx_rewrap(f, &r), 0);
  assert_int_equal(kotte_cred_report_rewrapped(r), 8);
  assert_int_equal(kotte_cred_report_failed(r), 0);
  assert_int_equal(kotte_cred_report_stale(r), 0);
  cfx_report_keys(r, keys, sizeof keys);
  snprintf(want, sizeof want, "%s:8", new_id);
  assert_string_equal(keys, want);
  kotte_cred_report_free(r);
  /* the old key can go now */
  cfx_use_ring(f, cfx_ring(KEY_B, NULL));
  for (int i = 0; i < 8; i++) {
    snprintf(name, sizeof name, "c%d", i);
    assert_int_equal(cfx_get(f, i % 2 ? "alice" : "bob", ids[i], &c), 0);
    assert_string_equal(kotte_cred_password(c), name);
    assert_string_equal(kotte_cred_key_id(c), new_id);
    assert_int_equal(kotte_cred_updated_at(c), kotte_cred_created_at(c)); /* not a user change */
    kotte_cred_free(c);
  }
  assert_int_equal(cfx_rewrap(f, &r), 0); /* nothing left to do */
  assert_int_equal(kotte_cred_report_rewrapped(r), 0);
  kotte_cred_report_free(r);
}

static void rewrap_leaves_records_it_cannot_open_and_reports_them(void **state) {
  F;
  char a[37], b[37];
  cfx_new(f, "alice", "one", "u", "p", a);
  char old_id[17];
  snprintf(old_id, sizeof old_id, "%s", kotte_keyring_current_id(f->kr));
  cfx_use_ring(f, cfx_ring(KEY_B, NULL)); /* A dropped too early */
  cfx_new(f, "alice", "two", "u", "p", b);
  kotte_cred_report *r;
  assert_int_equal(cfx_rewrap(f, &r), 0);
  assert_int_equal(kotte_cred_report_rewrapped(r), 0);
  assert_int_equal(kotte_cred_report_failed(r), 1);
  assert_int_equal(kotte_cred_report_stale(r), 1);
  assert_int_equal(kotte_cred_report_key_count(r), 2);
  for (size_t i = 0; i < 2; i++) {
    int old = strcmp(kotte_cred_report_key_id(r, i), old_id) == 0;
    assert_int_equal(kotte_cred_report_key_in_ring(r, i), !old);
    assert_int_equal(kotte_cred_report_key_is_current(r, i), !old);
    assert_int_equal(kotte_cred_report_key_records(r, i), 1);
  }
  kotte_cred_report_free(r);
  cfx_use_ring(f, cfx_ring(KEY_B, KEY_A)); /* put it back: it recovers */
  assert_int_equal(cfx_rewrap(f, &r), 0);
  assert_int_equal(kotte_cred_report_rewrapped(r), 1);
  assert_int_equal(kotte_cred_report_stale(r), 0);
  kotte_cred_report_free(r);
}

static void updating_one_secret_under_an_old_key_reseals_both(void **state) {
  F;
  char id[37];
  cfx_new(f, "alice", "one", "keep-me", "old", id);
  cfx_use_ring(f, cfx_ring(KEY_B, KEY_A));
  kotte_cred_input in = KOTTE_CRED_INPUT_INIT;
  in.fields = KOTTE_CRED_PASSWORD;
  in.password = "new";
  assert_int_equal(cfx_update(f, "alice", id, &in, NULL), 0);
  cfx_use_ring(f, cfx_ring(KEY_B, NULL)); /* without A, both still open */
  kotte_cred *c;
  assert_int_equal(cfx_get(f, "alice", id, &c), 0);
  assert_string_equal(kotte_cred_username(c), "keep-me");
  assert_string_equal(kotte_cred_password(c), "new");
  assert_string_equal(kotte_cred_key_id(c), kotte_keyring_current_id(f->kr));
  kotte_cred_free(c);
}

typedef struct race {
  int calls;
  int update_status, rewrap_status;
  kotte_cred_report *report;
} race;

static void race_update(int status, kotte_cred *c, void *ud) {
  race *r = ud;
  r->calls++;
  r->update_status = status;
  kotte_cred_free(c);
}

static void race_rewrap(int status, kotte_cred_report *rep, void *ud) {
  race *r = ud;
  r->calls++;
  r->rewrap_status = status;
  r->report = rep;
}

static void an_update_racing_a_rewrap_loses_nothing(void **state) {
  F;
  /* Both start in one loop turn: the update reads the row under key A,
   * the rewrap re-seals it under B before the update writes, so the
   * update's compare-and-swap fails and it must read again (json_file runs
   * them in one batch; the memory backend finishes each at once). */
  for (int order = 0; order < 2; order++) {
    char id[37], name[8];
    snprintf(name, sizeof name, "r%d", order);
    cfx_use_ring(f, cfx_ring(KEY_A, NULL));
    cfx_new(f, "alice", name, "keep-user", "old-pass", id);
    cfx_use_ring(f, cfx_ring(KEY_B, KEY_A));
    kotte_cred_input in = KOTTE_CRED_INPUT_INIT;
    in.fields = KOTTE_CRED_PASSWORD;
    in.password = "new-pass";
    race r = { 0, -1, -1, NULL };
    if (order == 0) {
      assert_int_equal(kotte_cred_rewrap(f->store, race_rewrap, &r), 0);
      assert_int_equal(kotte_cred_update(f->store, "alice", id, &in, race_update, &r), 0);
    } else {
      assert_int_equal(kotte_cred_update(f->store, "alice", id, &in, race_update, &r), 0);
      assert_int_equal(kotte_cred_rewrap(f->store, race_rewrap, &r), 0);
    }
    assert_int_equal(r.calls, 0);
    while (r.calls < 2) uv_run(&f->env.loop, UV_RUN_ONCE);
    assert_int_equal(r.update_status, 0);
    assert_int_equal(r.rewrap_status, 0);
    assert_int_equal(kotte_cred_report_failed(r.report), 0);
    kotte_cred_report_free(r.report);
    cfx_use_ring(f, cfx_ring(KEY_B, NULL));
    kotte_cred *c;
    assert_int_equal(cfx_get(f, "alice", id, &c), 0);
    assert_string_equal(kotte_cred_username(c), "keep-user");
    assert_string_equal(kotte_cred_password(c), "new-pass");
    kotte_cred_free(c);
  }
}

static void a_store_keeps_its_key_ring_after_the_caller_frees_it(void **state) {
  F;
  kotte_keyring *kr = cfx_ring(KEY_B, NULL);
  kotte_cred_store *st;
  kotte_cred_backend *be;
  assert_int_equal(kotte_cred_backend_memory_new(&be), 0);
  assert_int_equal(kotte_cred_store_new(&st, &f->env.loop, be, kr, NULL), 0);
  kotte_keyring_free(kr);
  kotte_cred_store *keep = f->store;
  f->store = st;
  char id[37];
  cfx_new(f, "alice", "one", "u", "p", id);
  assert_int_equal(cfx_get(f, "alice", id, NULL), 0);
  f->store = keep;
  kotte_cred_store_free(st);
  uv_run(&f->env.loop, UV_RUN_NOWAIT); /* its close callback; the fixture's store stays */
}

/* Free from inside a callback and with operations in flight. */
typedef struct free_ctx {
  kotte_cred_store **store;
  int calls;
  int statuses[3];
} free_ctx;

static void free_in_cb(int status, kotte_cred *c, void *ud) {
  free_ctx *x = ud;
  x->statuses[x->calls++] = status;
  kotte_cred_free(c);
  if (*x->store) {
    kotte_cred_store_free(*x->store);
    *x->store = NULL;
  }
}

static void freeing_the_store_in_a_callback_cancels_the_rest(void **state) {
  F;
  free_ctx x = { &f->store, 0, { 0 } };
  kotte_cred_input in[3] = { cfx_input("a", "u", "p"), cfx_input("b", "u", "p"),
                             cfx_input("c", "u", "p") };
  for (int i = 0; i < 3; i++)
    assert_int_equal(kotte_cred_save(f->store, "alice", &in[i], free_in_cb, &x), 0);
  assert_int_equal(x.calls, 0); /* never inline */
  uv_run(&f->env.loop, UV_RUN_DEFAULT);
  assert_int_equal(x.calls, 3); /* exactly one callback each, even after free */
  assert_int_equal(x.statuses[0], 0);
  assert_int_equal(x.statuses[1], KOTTE_ECANCELED);
  assert_int_equal(x.statuses[2], KOTTE_ECANCELED);
  assert_null(f->store);
  cfx_reopen(f);
}

static void report_cb_free(int status, kotte_cred_report *r, void *ud) {
  int *st = ud;
  *st = status;
  kotte_cred_report_free(r);
}

static void calls_after_free_are_refused_and_a_rewrap_is_canceled(void **state) {
  F;
  char id[37];
  for (int i = 0; i < 5; i++) {
    char name[8];
    snprintf(name, sizeof name, "n%d", i);
    cfx_new(f, "alice", name, "u", "p", id);
  }
  cfx_use_ring(f, cfx_ring(KEY_B, KEY_A));
  kotte_cred_store *st = f->store;
  int status = 1;
  assert_int_equal(kotte_cred_rewrap(st, report_cb_free, &status), 0);
  kotte_cred_store_free(st); /* pending: not released yet */
  f->store = NULL;
  kotte_cred_input in = cfx_input("late", "u", "p");
  assert_int_equal(kotte_cred_save(st, "alice", &in, free_in_cb, NULL), KOTTE_ECLOSED);
  uv_run(&f->env.loop, UV_RUN_DEFAULT);
  assert_int_equal(status, KOTTE_ECANCELED);
  cfx_reopen(f);
}

static void options_and_versions_are_checked(void **state) {
  F;
  kotte_cred_backend *be = cfx_backend(f);
  kotte_cred_options o = KOTTE_CRED_OPTIONS_INIT;
  kotte_cred_store *st;
  o.version = 99;
  assert_int_equal(kotte_cred_store_new(&st, &f->env.loop, be, f->kr, &o), KOTTE_EVERSION);
  o.version = KOTTE_CRED_OPTIONS_VERSION;
  o.rewrap_batch = 0;
  assert_int_equal(kotte_cred_store_new(&st, &f->env.loop, be, f->kr, &o), KOTTE_EINVAL);
  assert_int_equal(kotte_cred_store_new(&st, &f->env.loop, be, NULL, NULL), KOTTE_EINVAL);
  unsigned int v = be->version;
  be->version = KOTTE_CRED_BACKEND_VERSION + 1;
  assert_int_equal(kotte_cred_store_new(&st, &f->env.loop, be, f->kr, NULL), KOTTE_EVERSION);
  be->version = v;
  kotte_cred_backend_free(be);
  assert_string_equal(kotte_cred_store_backend_name(f->store),
                      f->env.kind == CFX_MEMORY       ? "memory"
                      : f->env.kind == CFX_POSTGRESQL ? "postgresql"
                                                  : "json_file");
}

#define T(name, setup) cmocka_unit_test_setup_teardown(name, setup, cfx_teardown)
#define CONFORMANCE(setup)                                                              \
  {                                                                                     \
    T(save_returns_a_random_uuid_and_metadata_without_secrets, setup),                  \
    T(save_gives_distinct_ids, setup),                                                  \
    T(check_answers_on_a_healthy_store, setup),                                         \
    T(get_returns_the_decrypted_secrets, setup),                                        \
    T(get_accepts_an_id_in_upper_case, setup),                                          \
    T(a_second_connection_with_the_same_name_already_exists, setup),                    \
    T(unknown_foreign_and_malformed_ids_are_not_found, setup),                          \
    T(list_returns_metadata_oldest_first_and_opens_nothing, setup),                     \
    T(list_works_even_when_no_key_can_open_the_records, setup),                         \
    T(update_changes_metadata_keeps_secrets_and_stamps_updated_at, setup),              \
    T(update_renames_but_names_stay_unique, setup),                                     \
    T(update_of_one_secret_keeps_the_other, setup),                                     \
    T(update_needs_fields_and_checks_them, setup),                                      \
    T(delete_removes_and_a_second_delete_is_not_found, setup),                          \
    T(invalid_input_is_refused_with_a_detail_naming_the_field, setup),                  \
    T(user_ids_that_are_not_utf8_are_refused_everywhere, setup),                         \
    T(empty_values_mean_libpq_defaults_and_are_kept, setup),                            \
    T(an_import_keeps_its_id_and_times, setup),                                         \
    T(key_usage_counts_records_per_key, setup),                                         \
    T(rewrap_reseals_every_record_under_the_current_key, setup),                        \
    T(rewrap_leaves_records_it_cannot_open_and_reports_them, setup),                    \
    T(updating_one_secret_under_an_old_key_reseals_both, setup),                        \
    T(an_update_racing_a_rewrap_loses_nothing, setup),                                  \
    T(a_store_keeps_its_key_ring_after_the_caller_frees_it, setup),                     \
    T(freeing_the_store_in_a_callback_cancels_the_rest, setup),                         \
    T(calls_after_free_are_refused_and_a_rewrap_is_canceled, setup),                    \
    T(options_and_versions_are_checked, setup),                                         \
  }

int main(void) {
  const struct CMUnitTest memory[] = CONFORMANCE(cfx_setup_memory);
  const struct CMUnitTest json_file[] = CONFORMANCE(cfx_setup_json_file);
  int failed = 0;
  failed += cmocka_run_group_tests_name("credential conformance: memory", memory, NULL, NULL);
  failed += cmocka_run_group_tests_name("credential conformance: json_file", json_file, NULL, NULL);
  if (cfx_postgresql_conninfo()) {
    const struct CMUnitTest postgresql[] = CONFORMANCE(cfx_setup_postgresql);
    failed += cmocka_run_group_tests_name("credential conformance: postgresql", postgresql, NULL, NULL);
  } else {
    printf("credential conformance: postgresql: skipped: KOTTE_TEST_PG_CONNINFO is not set "
           "(tests/suites.d/20-postgresql.sh starts a server and sets it)\n");
  }
  return failed ? 1 : 0;
}
