/* json_file credential backend: persistence, file modes, no plaintext on
 * disk, corrupt and foreign files, torn tails, sharing between stores and
 * processes, compaction — the guarantees of the session json_file backend. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kotte.h>

#include "json_file_helpers.h"
#include "test_files.h"
#include "test_log.h"

#define KEY_A "00112233445566778899aabbccddeeff0123456789abcdef0011223344556677"
#define KEY_B "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="

typedef jf_env env; /* ->st: a kotte_cred_store a failed test left open */

static void free_store(void *st) { kotte_cred_store_free(st); }

static int setup(void **state) {
  env *e = jf_env_new("credentials.journal", free_store);
  assert_int_equal(kotte_keyring_new(&e->kr, KEY_A, NULL), 0);
  *state = e;
  return 0;
}

#define teardown jf_teardown

static int open_store(env *e, kotte_cred_store **st) {
  kotte_cred_backend *be;
  int rc = kotte_cred_backend_json_file_new(&be, kotte_runtime_loop(e->rt), e->path);
  if (rc != 0) return rc;
  rc = kotte_cred_store_open(st, e->rt, be, e->kr, NULL);
  if (rc != 0) kotte_cred_backend_free(be);
  return rc;
}

static kotte_cred_input input(const char *name, const char *user, const char *pass) {
  kotte_cred_input in = KOTTE_CRED_INPUT_INIT;
  in.name = name;
  in.host = "db.internal";
  in.port = 5432;
  in.database = "graphs";
  in.username = user;
  in.password = pass;
  return in;
}

static void save(kotte_cred_store *st, const char *owner, const char *name, const char *pass,
                 char id[37]) {
  kotte_cred_input in = input(name, "reader", pass);
  kotte_cred *c;
  assert_int_equal(kotte_cred_save_sync(st, owner, &in, &c, -1), 0);
  memcpy(id, kotte_cred_id(c), 37);
  kotte_cred_free(c);
}

static void expect_password(kotte_cred_store *st, const char *owner, const char *id,
                            const char *pass) {
  kotte_cred *c;
  assert_int_equal(kotte_cred_get_sync(st, owner, id, &c, -1), 0);
  assert_string_equal(kotte_cred_password(c), pass);
  kotte_cred_free(c);
}

static void writes_survive_closing_and_reopening(void **state) {
  env *e = *state;
  kotte_cred_store *st;
  char a[37], b[37], c[37];
  assert_int_equal(open_store(e, &st), 0);
  save(st, "alice", "prod", "pw-a", a);
  save(st, "alice", "test", "pw-b", b);
  save(st, "bob", "prod", "pw-c", c);
  kotte_cred_input up = KOTTE_CRED_INPUT_INIT;
  up.fields = KOTTE_CRED_PASSWORD | KOTTE_CRED_NAME;
  up.password = "pw-a2";
  up.name = "production";
  assert_int_equal(kotte_cred_update_sync(st, "alice", a, &up, NULL, -1), 0);
  assert_int_equal(kotte_cred_delete_sync(st, "alice", b, -1), 0);
  kotte_cred_store_free(st);

  assert_int_equal(open_store(e, &st), 0);
  expect_password(st, "alice", a, "pw-a2");
  expect_password(st, "bob", c, "pw-c");
  assert_int_equal(kotte_cred_get_sync(st, "alice", b, NULL, -1), KOTTE_ENOTFOUND);
  kotte_cred_list *l;
  assert_int_equal(kotte_cred_list_user_sync(st, "alice", &l, -1), 0);
  assert_int_equal(kotte_cred_list_count(l), 1);
  assert_string_equal(kotte_cred_name(kotte_cred_list_get(l, 0)), "production");
  kotte_cred_list_free(l);
  kotte_cred_input again = input("production", "x", "y"); /* uniqueness survives too */
  assert_int_equal(kotte_cred_save_sync(st, "alice", &again, NULL, -1), KOTTE_EEXISTS);
  kotte_cred_store_free(st);
}

static void files_are_created_with_mode_0600_and_hold_no_plaintext(void **state) {
  env *e = *state;
  kotte_cred_store *st;
  mode_t old = umask(0);
  assert_int_equal(open_store(e, &st), 0);
  umask(old);
  char id[37];
  kotte_cred_input in = input("prod", "the-db-user-name", "the-db-pass-word");
  assert_int_equal(kotte_cred_save_sync(st, "alice", &in, NULL, -1), 0);
  save(st, "alice", "other", "another-secret", id);
  kotte_cred_store_free(st);
  struct stat sb;
  assert_int_equal(stat(e->path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  char lock[160];
  snprintf(lock, sizeof lock, "%s.lock", e->path);
  assert_int_equal(stat(lock, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  size_t len;
  char *buf = slurp(e->path, &len);
  assert_non_null(strstr(buf, "\"prod\"")); /* metadata is plain ... */
  assert_null(strstr(buf, "the-db-user-name")); /* ... secrets never are */
  assert_null(strstr(buf, "the-db-pass-word"));
  assert_null(strstr(buf, "another-secret"));
  assert_non_null(strstr(buf, "{\"kotte\":\"credentials\",\"version\":1}"));
  free(buf);
}

static void a_damaged_record_is_refused_and_the_file_left_untouched(void **state) {
  env *e = *state;
  kotte_cred_store *st;
  char a[37];
  assert_int_equal(open_store(e, &st), 0);
  save(st, "alice", "prod", "pw", a);
  kotte_cred_store_free(st);
  size_t len;
  char *buf = slurp(e->path, &len);
  char *hit = strstr(buf, "\"prod\"");
  assert_non_null(hit);
  hit[1] = 'P'; /* one flipped byte inside a complete record */
  spit(e->path, buf, len);
  assert_int_equal(open_store(e, &st), KOTTE_ECORRUPT);
  assert_non_null(strstr(kotte_error_detail(), e->path));
  assert_non_null(strstr(kotte_error_detail(), "credential store"));
  size_t len2;
  char *after = slurp(e->path, &len2);
  assert_int_equal(len2, len);
  assert_memory_equal(after, buf, len);
  free(after);
  free(buf);
}

static void kottes_connections_json_is_refused_and_left_untouched(void **state) {
  env *e = *state;
  const char *kotte = "{\n  \"user:alice\": {\n    \"2b1c\": {\n      \"name\": \"prod\"\n    }\n"
                      "  }\n}";
  spit(e->path, kotte, strlen(kotte));
  kotte_cred_store *st;
  assert_int_equal(open_store(e, &st), KOTTE_ECORRUPT);
  size_t len;
  char *after = slurp(e->path, &len);
  assert_string_equal(after, kotte);
  free(after);
  /* and a session journal is not a credential journal either */
  const char *sessions = "d6319df102989fb7 {\"kotte\":\"sessions\",\"version\":1}\n";
  spit(e->path, sessions, strlen(sessions));
  assert_int_equal(open_store(e, &st), KOTTE_ECORRUPT);
  assert_non_null(strstr(kotte_error_detail(), "not a libkotte credential journal"));
}

static void a_torn_last_record_is_dropped(void **state) {
  env *e = *state;
  kotte_cred_store *st;
  char a[37], b[37];
  assert_int_equal(open_store(e, &st), 0);
  save(st, "alice", "one", "pw-1", a);
  save(st, "alice", "two", "pw-2", b);
  kotte_cred_store_free(st);
  size_t len;
  char *buf = slurp(e->path, &len);
  spit(e->path, buf, len - 9); /* the last write was cut short by a crash */
  free(buf);
  assert_int_equal(open_store(e, &st), 0);
  expect_password(st, "alice", a, "pw-1");
  assert_int_equal(kotte_cred_get_sync(st, "alice", b, NULL, -1), KOTTE_ENOTFOUND);
  save(st, "alice", "two", "pw-3", b); /* appends after the cut, not onto it */
  kotte_cred_store_free(st);
  assert_int_equal(open_store(e, &st), 0);
  expect_password(st, "alice", a, "pw-1");
  expect_password(st, "alice", b, "pw-3");
  kotte_cred_store_free(st);
}

static void two_stores_on_one_file_see_each_other(void **state) {
  env *e = *state;
  kotte_cred_store *x, *y;
  assert_int_equal(open_store(e, &x), 0);
  assert_int_equal(open_store(e, &y), 0);
  char id[37];
  save(x, "alice", "prod", "pw-x", id);
  expect_password(y, "alice", id, "pw-x");
  kotte_cred_input dup = input("prod", "u", "p");
  assert_int_equal(kotte_cred_save_sync(y, "alice", &dup, NULL, -1), KOTTE_EEXISTS);
  kotte_cred_input up = KOTTE_CRED_INPUT_INIT;
  up.fields = KOTTE_CRED_PASSWORD;
  up.password = "pw-y";
  assert_int_equal(kotte_cred_update_sync(y, "alice", id, &up, NULL, -1), 0);
  expect_password(x, "alice", id, "pw-y");
  assert_int_equal(kotte_cred_delete_sync(x, "alice", id, -1), 0);
  assert_int_equal(kotte_cred_update_sync(y, "alice", id, &up, NULL, -1), KOTTE_ENOTFOUND);
  kotte_cred_store_free(x);
  kotte_cred_store_free(y);
}

enum { CHILD_WRITES = 200 };

/* The other process: this binary re-executed as "--child PATH". Saves
 * CHILD_WRITES connections and prints each acknowledged id on stdout. */
static int child_main(const char *path) {
  env child;
  memset(&child, 0, sizeof child);
  snprintf(child.path, sizeof child.path, "%s", path);
  if (kotte_runtime_new(&child.rt, NULL) != 0) return 2;
  if (kotte_keyring_new(&child.kr, KEY_A, NULL) != 0) return 2;
  kotte_cred_store *st;
  if (open_store(&child, &st) != 0) return 3;
  for (int i = 0; i < CHILD_WRITES; i++) {
    char name[32], pass[32];
    snprintf(name, sizeof name, "child-%d", i);
    snprintf(pass, sizeof pass, "child-pw-%d", i);
    kotte_cred_input in = input(name, "u", pass);
    kotte_cred *c;
    if (kotte_cred_save_sync(st, "shared", &in, &c, 10000) != 0) return 4;
    if (fwrite(kotte_cred_id(c), 1, 36, stdout) != 36) return 5;
    kotte_cred_free(c);
  }
  fflush(stdout);
  kotte_cred_store_free(st);
  kotte_keyring_free(child.kr);
  kotte_runtime_free(child.rt);
  return 0;
}

static void two_processes_write_one_file_without_losing_anything(void **state) {
  env *e = *state;
  enum { N = CHILD_WRITES };
  FILE *child = jf_child_start(e->path);
  kotte_cred_store *st;
  assert_int_equal(open_store(e, &st), 0);
  static char ids[N][37], child_ids[N][37];
  for (int i = 0; i < N; i++) {
    char name[32], pass[32];
    snprintf(name, sizeof name, "parent-%d", i);
    snprintf(pass, sizeof pass, "parent-pw-%d", i);
    save(st, "shared", name, pass, ids[i]);
  }
  jf_child_ids(child, child_ids[0], sizeof child_ids[0], 36, N);
  for (int i = 0; i < N; i++) {
    char pass[32];
    snprintf(pass, sizeof pass, "child-pw-%d", i);
    expect_password(st, "shared", child_ids[i], pass);
    snprintf(pass, sizeof pass, "parent-pw-%d", i);
    expect_password(st, "shared", ids[i], pass);
  }
  kotte_cred_list *l;
  assert_int_equal(kotte_cred_list_user_sync(st, "shared", &l, -1), 0);
  assert_int_equal(kotte_cred_list_count(l), 2 * N);
  kotte_cred_list_free(l);
  kotte_cred_store_free(st);
}

static void compaction_shrinks_the_file_and_keeps_live_records(void **state) {
  env *e = *state;
  kotte_cred_store *st, *other;
  assert_int_equal(open_store(e, &st), 0);
  assert_int_equal(open_store(e, &other), 0);
  enum { N = 1200 };
  static char ids[N][37];
  for (int i = 0; i < N; i++) {
    char name[16];
    snprintf(name, sizeof name, "c%d", i);
    save(st, "alice", name, "pw", ids[i]);
  }
  struct stat before, after;
  assert_int_equal(stat(e->path, &before), 0);
  for (int i = 0; i < N; i++) {
    if (i % 10 == 0) continue;
    assert_int_equal(kotte_cred_delete_sync(st, "alice", ids[i], -1), 0);
  }
  assert_int_equal(stat(e->path, &after), 0);
  assert_true(after.st_ino != before.st_ino);  /* rewritten ... */
  assert_true(after.st_size < before.st_size); /* ... smaller */
  assert_int_equal(after.st_mode & 0777, 0600);
  for (int i = 0; i < N; i++) /* the other store follows the replaced file */
    assert_int_equal(kotte_cred_get_sync(other, "alice", ids[i], NULL, -1),
                     i % 10 == 0 ? 0 : KOTTE_ENOTFOUND);
  kotte_cred_store_free(other);
  kotte_cred_store_free(st);
  assert_int_equal(open_store(e, &st), 0);
  expect_password(st, "alice", ids[0], "pw");
  kotte_cred_store_free(st);
}

static void a_rewrap_is_durable(void **state) {
  env *e = *state;
  kotte_cred_store *st;
  char ids[5][37];
  assert_int_equal(open_store(e, &st), 0);
  for (int i = 0; i < 5; i++) {
    char name[8];
    snprintf(name, sizeof name, "c%d", i);
    save(st, "alice", name, name, ids[i]);
  }
  kotte_cred_store_free(st);
  kotte_keyring_free(e->kr);
  assert_int_equal(kotte_keyring_new(&e->kr, KEY_B, KEY_A), 0);
  assert_int_equal(open_store(e, &st), 0);
  kotte_cred_report *r;
  assert_int_equal(kotte_cred_rewrap_sync(st, &r, -1), 0);
  assert_int_equal(kotte_cred_report_rewrapped(r), 5);
  kotte_cred_report_free(r);
  kotte_cred_store_free(st);
  kotte_keyring_free(e->kr);
  assert_int_equal(kotte_keyring_new(&e->kr, KEY_B, NULL), 0); /* A retired */
  assert_int_equal(open_store(e, &st), 0);
  for (int i = 0; i < 5; i++) {
    char name[8];
    snprintf(name, sizeof name, "c%d", i);
    expect_password(st, "alice", ids[i], name);
  }
  assert_int_equal(kotte_cred_key_usage_sync(st, &r, -1), 0);
  assert_int_equal(kotte_cred_report_key_count(r), 1);
  assert_int_equal(kotte_cred_report_stale(r), 0);
  kotte_cred_report_free(r);
  kotte_cred_store_free(st);
}

/* ---- what both stores' journals must do (json_file_helpers.h) ------------ */

static int ops_open(jf_env *e, void **st) { return open_store(e, (kotte_cred_store **)st); }
static void ops_close(void *st) { kotte_cred_store_free(st); }
static int ops_put(void *st, const char *owner, int v, char *id) {
  char name[32], pass[32];
  snprintf(name, sizeof name, "n%d", v);
  snprintf(pass, sizeof pass, "pw-%d", v);
  kotte_cred_input in = input(name, "reader", pass);
  kotte_cred *c;
  int rc = kotte_cred_save_sync(st, owner, &in, &c, -1);
  if (rc == 0) memcpy(id, kotte_cred_id(c), 37);
  kotte_cred_free(c);
  return rc;
}
static int ops_value(void *st, const char *owner, const char *id, int *v) {
  kotte_cred *c;
  int rc = kotte_cred_get_sync(st, owner, id, &c, -1);
  if (rc != 0) return rc;
  assert_int_equal(sscanf(kotte_cred_password(c), "pw-%d", v), 1);
  kotte_cred_free(c);
  return 0;
}
static int ops_change(void *st, const char *owner, const char *id, int v) {
  char pass[32];
  snprintf(pass, sizeof pass, "pw-%d", v);
  kotte_cred_input up = KOTTE_CRED_INPUT_INIT;
  up.fields = KOTTE_CRED_PASSWORD;
  up.password = pass;
  return kotte_cred_update_sync(st, owner, id, &up, NULL, -1);
}
static int ops_remove(void *st, const char *owner, const char *id) {
  return kotte_cred_delete_sync(st, owner, id, -1);
}
static int ops_check(void *st) { return kotte_cred_store_check_sync(st, -1); }
/* the unique names are all there: bob's "n3" survived the damage */
static void ops_still_indexed(void *st) {
  kotte_cred_input dup = input("n3", "x", "y");
  assert_int_equal(kotte_cred_save_sync(st, "bob", &dup, NULL, -1), KOTTE_EEXISTS);
}

static const jf_ops ops = { "credentials.journal", ops_open, ops_close, ops_put, ops_value,
                            ops_change, ops_remove, ops_check, ops_still_indexed };

static void a_journal_truncated_to_zero_while_open_loses_nothing(void **state) {
  jf_test_damage_while_open(*state, &ops, DAMAGE_EMPTY);
}

static void a_journal_cut_in_half_while_open_loses_nothing(void **state) {
  jf_test_damage_while_open(*state, &ops, DAMAGE_HALF);
}

static void a_journal_removed_while_open_loses_nothing(void **state) {
  jf_test_damage_while_open(*state, &ops, DAMAGE_REMOVE);
}

static void the_check_reports_an_unwritable_journal_until_it_is_writable_again(void **state) {
  jf_test_unwritable_journal(*state, &ops);
}

static void an_unwritable_location_gives_an_io_error(void **state) {
  jf_test_unwritable_location(*state, &ops);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--child") == 0) return child_main(argv[2]);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(writes_survive_closing_and_reopening, setup, teardown),
    cmocka_unit_test_setup_teardown(files_are_created_with_mode_0600_and_hold_no_plaintext, setup, teardown),
    cmocka_unit_test_setup_teardown(a_damaged_record_is_refused_and_the_file_left_untouched, setup, teardown),
    cmocka_unit_test_setup_teardown(kottes_connections_json_is_refused_and_left_untouched, setup, teardown),
    cmocka_unit_test_setup_teardown(a_torn_last_record_is_dropped, setup, teardown),
    cmocka_unit_test_setup_teardown(two_stores_on_one_file_see_each_other, setup, teardown),
    cmocka_unit_test_setup_teardown(two_processes_write_one_file_without_losing_anything, setup, teardown),
    cmocka_unit_test_setup_teardown(compaction_shrinks_the_file_and_keeps_live_records, setup, teardown),
    cmocka_unit_test_setup_teardown(a_rewrap_is_durable, setup, teardown),
    cmocka_unit_test_setup_teardown(an_unwritable_location_gives_an_io_error, setup, teardown),
    cmocka_unit_test_setup_teardown(a_journal_truncated_to_zero_while_open_loses_nothing, setup, teardown),
    cmocka_unit_test_setup_teardown(a_journal_cut_in_half_while_open_loses_nothing, setup, teardown),
    cmocka_unit_test_setup_teardown(a_journal_removed_while_open_loses_nothing, setup, teardown),
    cmocka_unit_test_setup_teardown(the_check_reports_an_unwritable_journal_until_it_is_writable_again, setup, teardown),
  };
  return cmocka_run_group_tests_name("credential json_file", tests, NULL, NULL);
}
