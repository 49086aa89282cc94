/* Sealed secrets in session data: {"$secret": v} is sealed before any
 * backend sees it and comes back as {"$secret": v}; keys rotate; tampered
 * blobs and missing keys fail clearly; callers cannot plant blobs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kotte.h>
#include <kotte/credential.h>

#include "json_file_helpers.h"

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B "f0e0d0c0b0a090807060504030201000f1e1d1c1b1a191817161514131211101"

typedef jf_env env;

static void free_store(void *st) { kotte_session_store_free(st); }

static int setup(void **state) {
  *state = jf_env_new("sessions.journal", free_store);
  return 0;
}

#define teardown jf_teardown

/* A json_file store whose ring holds @p current (and @p previous); NULL: no ring. */
static kotte_session_store *open_store(env *e, const char *current, const char *previous) {
  kotte_session_backend *be;
  assert_int_equal(kotte_session_backend_json_file_new(&be, kotte_runtime_loop(e->rt), e->path,
                                                       (const unsigned char *)"session-secrets-test-key", 24),
                   0);
  kotte_session_options o = KOTTE_SESSION_OPTIONS_INIT;
  kotte_keyring *kr = NULL;
  if (current) assert_int_equal(kotte_keyring_new(&kr, current, previous), 0);
  o.keyring = kr;
  kotte_session_store *st;
  assert_int_equal(kotte_session_store_open(&st, e->rt, be, &o), 0);
  kotte_keyring_free(kr); /* the store keeps its own reference */
  return st;
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  static char buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

#define DATA "{\"connection_config\":{\"host\":\"db\",\"password\":{\"$secret\":\"hunter2-very-secret\"}}}"

static void a_marked_secret_is_sealed_at_rest_and_revealed_on_read(void **state) {
  env *e = *state;
  kotte_session_store *st = open_store(e, KEY_A, NULL);
  kotte_session *s;
  assert_int_equal(kotte_session_create_sync(st, "alice", DATA, &s, -1), 0);
  assert_string_equal(kotte_session_data(s), DATA);
  char id[44];
  memcpy(id, kotte_session_id(s), 44);
  kotte_session_free(s);
  assert_int_equal(kotte_session_get_sync(st, id, &s, -1), 0);
  assert_string_equal(kotte_session_data(s), DATA);
  kotte_session_free(s);
  kotte_session_list *l;
  assert_int_equal(kotte_session_list_user_sync(st, "alice", &l, -1), 0);
  assert_string_equal(kotte_session_data(kotte_session_list_get(l, 0)), DATA);
  kotte_session_list_free(l);
  kotte_session_store_free(st);
  const char *disk = slurp(e->path);
  assert_null(strstr(disk, "hunter2"));
  assert_non_null(strstr(disk, "\"$sealed\""));
}

static void an_update_seals_its_marked_values_too(void **state) {
  env *e = *state;
  kotte_session_store *st = open_store(e, KEY_A, NULL);
  kotte_session *s;
  assert_int_equal(kotte_session_create_sync(st, "alice", "{}", &s, -1), 0);
  char id[44];
  memcpy(id, kotte_session_id(s), 44);
  kotte_session_free(s);
  assert_int_equal(kotte_session_update_sync(st, id, "{\"token\":{\"$secret\":{\"k\":[1,\"opensesame\"]}}}", &s, -1), 0);
  assert_string_equal(kotte_session_data(s), "{\"token\":{\"$secret\":{\"k\":[1,\"opensesame\"]}}}");
  kotte_session_free(s);
  kotte_session_store_free(st);
  assert_null(strstr(slurp(e->path), "opensesame"));
}

static void a_marker_without_a_key_ring_is_refused(void **state) {
  env *e = *state;
  kotte_session_store *st = open_store(e, NULL, NULL);
  kotte_session *s;
  assert_int_equal(kotte_session_create_sync(st, "alice", DATA, &s, -1), KOTTE_EKEY);
  assert_int_equal(kotte_session_create_sync(st, "alice", "{\"plain\":1}", &s, -1), 0);
  kotte_session_free(s);
  kotte_session_store_free(st);
  assert_null(strstr(slurp(e->path), "hunter2"));
}

static void callers_cannot_plant_sealed_blobs(void **state) {
  env *e = *state;
  kotte_session_store *st = open_store(e, KEY_A, NULL);
  kotte_session *s;
  assert_int_equal(kotte_session_create_sync(st, "alice", "{\"x\":{\"$sealed\":\"AAAA\"}}", &s, -1),
                   KOTTE_EBADJSON);
  /* the refusal's explanation reaches the calling thread ... */
  assert_non_null(strstr(kotte_error_detail(), "$sealed"));
  /* ... and does not linger into the next failing call, which has none */
  assert_int_equal(kotte_session_create_sync(st, "alice", "[1]", &s, -1), KOTTE_EBADJSON);
  assert_string_equal(kotte_error_detail(), "");
  kotte_session_store_free(st);
}

static void old_keys_open_and_missing_keys_fail_clearly(void **state) {
  env *e = *state;
  kotte_session_store *st = open_store(e, KEY_A, NULL);
  kotte_session *s;
  assert_int_equal(kotte_session_create_sync(st, "alice", DATA, &s, -1), 0);
  char id[44];
  memcpy(id, kotte_session_id(s), 44);
  kotte_session_free(s);
  kotte_session_store_free(st);

  st = open_store(e, KEY_B, KEY_A); /* rotated: A is now a previous key */
  assert_int_equal(kotte_session_get_sync(st, id, &s, -1), 0);
  assert_string_equal(kotte_session_data(s), DATA);
  kotte_session_free(s);
  kotte_session_store_free(st);

  st = open_store(e, KEY_B, NULL); /* A dropped too early */
  assert_int_equal(kotte_session_get_sync(st, id, &s, -1), KOTTE_EKEY);
  kotte_session_store_free(st);
  st = open_store(e, NULL, NULL); /* no ring at all */
  assert_int_equal(kotte_session_get_sync(st, id, &s, -1), KOTTE_EKEY);
  kotte_session_store_free(st);
}

static void a_tampered_blob_is_an_integrity_error(void **state) {
  env *e = *state;
  kotte_session_store *st = open_store(e, KEY_A, NULL);
  kotte_session *s;
  assert_int_equal(kotte_session_create_sync(st, "alice", DATA, &s, -1), 0);
  char id[44];
  memcpy(id, kotte_session_id(s), 44);
  kotte_session_free(s);
  kotte_session_store_free(st);
  /* Flip one character of the blob and re-checksum the journal line, as an
   * attacker with write access to the file could. */
  char *disk = slurp(e->path);
  char *blob = strstr(disk, "\"$sealed\":\"");
  assert_non_null(blob);
  blob += strlen("\"$sealed\":\"") + 20;
  *blob = *blob == 'A' ? 'B' : 'A';
  char *line = blob;
  while (line > disk && line[-1] != '\n') line--;
  char *end = strchr(line, '\n');
  static const unsigned char zero[crypto_shorthash_KEYBYTES];
  unsigned char h[crypto_shorthash_BYTES];
  crypto_shorthash(h, (unsigned char *)line + 17, (size_t)(end - line - 17), zero);
  char hex[17];
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  memcpy(line, hex, 16);
  FILE *f = fopen(e->path, "wb");
  fputs(disk, f);
  fclose(f);
  st = open_store(e, KEY_A, NULL);
  assert_int_equal(kotte_session_get_sync(st, id, &s, -1), KOTTE_EINTEGRITY);
  kotte_session_store_free(st);
}

static void version_1_options_are_still_accepted(void **state) {
  env *e = *state;
  kotte_session_backend *be;
  assert_int_equal(kotte_session_backend_memory_new(&be), 0);
  /* A caller built against the version-1 struct (no keyring field). */
  struct {
    unsigned int version;
    int64_t idle, max;
    size_t size;
    unsigned int batch;
    kotte_clock_fn clock;
    void *ctx;
  } v1 = { 1, 10, 20, 100, 5, NULL, NULL };
  kotte_session_store *st;
  assert_int_equal(kotte_session_store_open(&st, e->rt, be, (const kotte_session_options *)&v1), 0);
  kotte_session *s;
  assert_int_equal(kotte_session_create_sync(st, "alice", NULL, &s, -1), 0);
  assert_int_equal(kotte_session_expires_at(s) - kotte_session_created_at(s), 10 * 1000000LL);
  kotte_session_free(s);
  assert_int_equal(kotte_session_create_sync(st, "alice", DATA, &s, -1), KOTTE_EKEY);
  kotte_session_store_free(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(a_marked_secret_is_sealed_at_rest_and_revealed_on_read, setup, teardown),
    cmocka_unit_test_setup_teardown(an_update_seals_its_marked_values_too, setup, teardown),
    cmocka_unit_test_setup_teardown(a_marker_without_a_key_ring_is_refused, setup, teardown),
    cmocka_unit_test_setup_teardown(callers_cannot_plant_sealed_blobs, setup, teardown),
    cmocka_unit_test_setup_teardown(old_keys_open_and_missing_keys_fail_clearly, setup, teardown),
    cmocka_unit_test_setup_teardown(a_tampered_blob_is_an_integrity_error, setup, teardown),
    cmocka_unit_test_setup_teardown(version_1_options_are_still_accepted, setup, teardown),
  };
  return cmocka_run_group_tests_name("sealed secrets in session data", tests, NULL, NULL);
}
