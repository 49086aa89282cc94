/* Import from Kotte: connections.json files made by Python's cryptography
 * exactly as Kotte makes them (make_kotte_fixture.py) come back with their
 * ids, names, timestamps and secrets, into memory and json_file stores; a
 * wrong key, a foreign file or a clash writes nothing.
 *
 *     test_import PATH/TO/make_kotte_fixture.py
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kotte_import.h"
#include "test_files.h"

/* Kotte's key: longer than 32 bytes, so that only its first 32 count. */
#define KOTTE_KEY "kotte-master-key-0123456789abcdef-and-a-tail"
#define LIBKOTTE_KEY "00112233445566778899aabbccddeeff0123456789abcdef0011223344556677"

static const char *generator;

typedef struct env {
  char dir[64];
  char *json; /* connections.json */
  size_t len;
  cJSON *expected;
  kotte_keyring *kr;
  kotte_runtime *rt;
} env;

static int setup(void **state) {
  env *e = calloc(1, sizeof *e);
  strcpy(e->dir, "/tmp/kotte-import-XXXXXX");
  assert_non_null(mkdtemp(e->dir));
  char cmd[512], path[128];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' '%s'", generator, e->dir, KOTTE_KEY);
  if (system(cmd) != 0) fail_msg("fixture generator failed (is python3-cryptography installed?)");
  snprintf(path, sizeof path, "%s/connections.json", e->dir);
  e->json = slurp(path, &e->len);
  snprintf(path, sizeof path, "%s/expected.json", e->dir);
  char *exp = slurp(path, NULL);
  e->expected = cJSON_Parse(exp);
  free(exp);
  assert_non_null(e->json);
  assert_true(cJSON_IsArray(e->expected));
  assert_int_equal(kotte_keyring_new(&e->kr, LIBKOTTE_KEY, NULL), 0);
  assert_int_equal(kotte_runtime_new(&e->rt, NULL), 0);
  *state = e;
  return 0;
}

static int teardown(void **state) {
  env *e = *state;
  kotte_runtime_free(e->rt);
  kotte_keyring_free(e->kr);
  cJSON_Delete(e->expected);
  free(e->json);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
  assert_int_equal(system(cmd), 0);
  free(e);
  return 0;
}

static kotte_cred_store *store(env *e, const char *path) {
  kotte_cred_backend *be;
  kotte_cred_store *st;
  if (path) assert_int_equal(kotte_cred_backend_json_file_new(&be, kotte_runtime_loop(e->rt), path), 0);
  else assert_int_equal(kotte_cred_backend_memory_new(&be), 0);
  assert_int_equal(kotte_cred_store_open(&st, e->rt, be, e->kr, NULL), 0);
  return st;
}

static const char *s(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Every expected connection is in @p st exactly as Kotte had it. */
static void expect_all(env *e, kotte_cred_store *st) {
  const cJSON *x;
  cJSON_ArrayForEach(x, e->expected) {
    kotte_cred *c;
    int rc = kotte_cred_get_sync(st, s(x, "user_id"), s(x, "id"), &c, -1);
    if (rc != 0) fail_msg("%s of %s: %s", s(x, "id"), s(x, "user_id"), kotte_err_name(rc));
    assert_string_equal(kotte_cred_id(c), s(x, "id"));
    assert_string_equal(kotte_cred_name(c), s(x, "name"));
    assert_string_equal(kotte_cred_host(c), s(x, "host"));
    assert_int_equal(kotte_cred_port(c),
                     (int)cJSON_GetObjectItemCaseSensitive(x, "port")->valuedouble);
    assert_string_equal(kotte_cred_database(c), s(x, "database"));
    assert_string_equal(kotte_cred_sslmode(c), s(x, "sslmode") ? s(x, "sslmode") : "prefer");
    assert_string_equal(kotte_cred_username(c), s(x, "username"));
    assert_string_equal(kotte_cred_password(c), s(x, "password"));
    /* the same strings Kotte wrote with datetime.isoformat() */
    assert_string_equal(kotte_cred_created_at_iso(c), s(x, "created_at"));
    assert_string_equal(kotte_cred_updated_at_iso(c), s(x, "updated_at"));
    kotte_cred_free(c);
  }
}

static void a_kotte_file_round_trips_into_memory_and_json_file(void **state) {
  env *e = *state;
  kotte_import_set *set;
  kotte_import_report rep;
  assert_int_equal(kotte_import_load(e->json, e->len, KOTTE_KEY, e->kr, &set, &rep), 0);
  assert_int_equal(rep.users, 4);
  assert_int_equal(rep.connections, (size_t)cJSON_GetArraySize(e->expected));

  kotte_cred_store *mem = store(e, NULL);
  assert_int_equal(kotte_import_write(mem, set, &rep, -1), 0);
  assert_int_equal(rep.imported, rep.connections);
  assert_int_equal(rep.skipped, 0);
  expect_all(e, mem);
  kotte_cred_list *l;
  assert_int_equal(kotte_cred_list_user_sync(mem, "alice", &l, -1), 0);
  assert_int_equal(kotte_cred_list_count(l), 3);
  assert_string_equal(kotte_cred_name(kotte_cred_list_get(l, 0)), "production"); /* oldest first */
  kotte_cred_list_free(l);
  kotte_cred_store_free(mem);

  char path[128];
  snprintf(path, sizeof path, "%s/credentials.journal", e->dir);
  kotte_cred_store *jf = store(e, path);
  assert_int_equal(kotte_import_write(jf, set, &rep, -1), 0);
  assert_int_equal(rep.imported, rep.connections);
  kotte_cred_store_free(jf);
  kotte_import_set_free(set);
  jf = store(e, path); /* from disk */
  expect_all(e, jf);
  kotte_cred_store_free(jf);
  char *disk = slurp(path, NULL);
  assert_null(strstr(disk, "correct horse battery staple")); /* sealed on disk */
  free(disk);
}

static void running_the_import_again_skips_what_is_there(void **state) {
  env *e = *state;
  kotte_import_set *set;
  kotte_import_report rep;
  assert_int_equal(kotte_import_load(e->json, e->len, KOTTE_KEY, e->kr, &set, &rep), 0);
  kotte_cred_store *st = store(e, NULL);
  assert_int_equal(kotte_import_write(st, set, &rep, -1), 0);
  assert_int_equal(kotte_import_write(st, set, &rep, -1), 0);
  assert_int_equal(rep.imported, 0);
  assert_int_equal(rep.skipped, rep.connections);
  expect_all(e, st);
  kotte_cred_store_free(st);
  kotte_import_set_free(set);
}

static void only_the_first_32_bytes_of_kottes_key_count(void **state) {
  env *e = *state;
  kotte_import_set *set;
  kotte_import_report rep;
  /* same first 32 bytes, another tail: Kotte would have decrypted too */
  assert_int_equal(kotte_import_load(e->json, e->len, "kotte-master-key-0123456789abcdefXYZ",
                                     e->kr, &set, &rep),
                   0);
  kotte_import_set_free(set);
}

static void a_wrong_key_fails_clearly_and_writes_nothing(void **state) {
  env *e = *state;
  kotte_import_set *set = (kotte_import_set *)1;
  kotte_import_report rep;
  assert_int_equal(kotte_import_load(e->json, e->len, "Kotte-master-key-0123456789abcdef-and-a-tail",
                                     e->kr, &set, &rep),
                   KOTTE_EINTEGRITY);
  assert_null(set);
  assert_non_null(strstr(rep.message, "does not decrypt with the MASTER_ENCRYPTION_KEY given"));
  assert_non_null(strstr(rep.message, "Nothing was written"));
  assert_null(strstr(rep.message, "master-key")); /* never the key */
  assert_int_equal(kotte_import_load(e->json, e->len, "too short", e->kr, &set, &rep), KOTTE_EKEY);
  assert_non_null(strstr(rep.message, "at least 32 bytes"));
}

static void a_name_clash_in_the_target_is_refused_before_writing(void **state) {
  env *e = *state;
  kotte_import_set *set;
  kotte_import_report rep;
  assert_int_equal(kotte_import_load(e->json, e->len, KOTTE_KEY, e->kr, &set, &rep), 0);
  kotte_cred_store *st = store(e, NULL);
  kotte_cred_input in = KOTTE_CRED_INPUT_INIT;
  in.name = "staging";
  in.host = "h";
  in.port = 1;
  in.database = "d";
  in.username = "u";
  in.password = "p";
  assert_int_equal(kotte_cred_save_sync(st, "alice", &in, NULL, -1), 0);
  assert_int_equal(kotte_import_write(st, set, &rep, -1), KOTTE_EEXISTS);
  assert_non_null(strstr(rep.message, "already has a connection named \"staging\""));
  assert_int_equal(rep.imported, 0);
  kotte_cred_list *l;
  assert_int_equal(kotte_cred_list_user_sync(st, "alice", &l, -1), 0);
  assert_int_equal(kotte_cred_list_count(l), 1); /* nothing was written */
  kotte_cred_list_free(l);
  assert_int_equal(kotte_cred_list_user_sync(st, "1", &l, -1), 0);
  assert_int_equal(kotte_cred_list_count(l), 0);
  kotte_cred_list_free(l);
  kotte_cred_store_free(st);
  kotte_import_set_free(set);
}

static void a_token_moved_to_another_user_does_not_decrypt(void **state) {
  env *e = *state;
  cJSON *root = cJSON_Parse(e->json);
  cJSON *alice = cJSON_GetObjectItemCaseSensitive(root, "user:alice");
  cJSON *one = cJSON_GetObjectItemCaseSensitive(root, "user:1");
  cJSON *from = cJSON_GetObjectItemCaseSensitive(alice->child, "encrypted_password");
  cJSON_ReplaceItemInObjectCaseSensitive(one->child, "encrypted_password", cJSON_Duplicate(from, 1));
  char *text = cJSON_Print(root);
  kotte_import_set *set;
  kotte_import_report rep;
  assert_int_equal(kotte_import_load(text, strlen(text), KOTTE_KEY, e->kr, &set, &rep),
                   KOTTE_EINTEGRITY);
  assert_non_null(strstr(rep.message, "of user 1 "));
  cJSON_free(text);
  cJSON_Delete(root);
}

static void files_that_are_not_kottes_are_refused(void **state) {
  env *e = *state;
  const char *bad[] = {
    "", "[]", "{\"alice\": {}}", "{\"user:alice\": []}",
    "{\"user:alice\": {\"01234567-89ab-cdef-0123-456789abcdef\": {\"name\": \"x\"}}}",
    "{\"user:alice\": {\"01234567-89ab-cdef-0123-456789abcdef\": {\"name\": \"x\", \"host\": "
    "\"h\", \"port\": 1, \"database\": \"d\", \"encrypted_username\": \"!!\", "
    "\"encrypted_password\": \"!!\", \"created_at\": \"2025-01-01T00:00:00+00:00\", "
    "\"updated_at\": \"2025-01-01T00:00:00+00:00\"}}}",
    "{\"user:alice\": {\"not-a-uuid\": {}}}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    kotte_import_set *set;
    kotte_import_report rep;
    assert_int_equal(kotte_import_load(bad[i], strlen(bad[i]), KOTTE_KEY, e->kr, &set, &rep),
                     KOTTE_EBADJSON);
    assert_true(rep.message[0] != '\0');
  }
  kotte_import_set *set;
  kotte_import_report rep;
  assert_int_equal(kotte_import_load("{}", 2, KOTTE_KEY, e->kr, &set, &rep), 0); /* empty is fine */
  assert_int_equal(rep.connections, 0);
  kotte_import_set_free(set);
}

static void kotte_times_parse_as_utc(void **state) {
  (void)state;
  kotte_time t;
  assert_int_equal(kotte_import_parse_time("2025-03-14T15:09:26.535897+00:00", &t), 0);
  assert_int_equal(t, 1741964966535897LL);
  assert_int_equal(kotte_import_parse_time("2025-03-14T17:09:26.535897+02:00", &t), 0);
  assert_int_equal(t, 1741964966535897LL);
  assert_int_equal(kotte_import_parse_time("2025-03-14T15:09:26.5Z", &t), 0);
  assert_int_equal(t, 1741964966500000LL);
  assert_int_equal(kotte_import_parse_time("2025-03-14T15:09:26", &t), 0);
  assert_int_equal(t, 1741964966000000LL);
  const char *bad[] = { "", "2025-03-14", "2025-13-14T15:09:26", "2025-03-14T15:09:26+0000",
                        "2025-03-14T15:09:26.", "2025-03-14T15:09:26 extra" };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_int_equal(kotte_import_parse_time(bad[i], &t), -1);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_import PATH/TO/make_kotte_fixture.py\n");
    return 2;
  }
  generator = argv[1];
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(a_kotte_file_round_trips_into_memory_and_json_file, setup, teardown),
    cmocka_unit_test_setup_teardown(running_the_import_again_skips_what_is_there, setup, teardown),
    cmocka_unit_test_setup_teardown(only_the_first_32_bytes_of_kottes_key_count, setup, teardown),
    cmocka_unit_test_setup_teardown(a_wrong_key_fails_clearly_and_writes_nothing, setup, teardown),
    cmocka_unit_test_setup_teardown(a_name_clash_in_the_target_is_refused_before_writing, setup, teardown),
    cmocka_unit_test_setup_teardown(a_token_moved_to_another_user_does_not_decrypt, setup, teardown),
    cmocka_unit_test_setup_teardown(files_that_are_not_kottes_are_refused, setup, teardown),
    cmocka_unit_test(kotte_times_parse_as_utc),
  };
  return cmocka_run_group_tests_name("import from Kotte", tests, NULL, NULL);
}
