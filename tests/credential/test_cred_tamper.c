/* Tampering with stored records, below the store (straight through the
 * backend, as someone with write access to the file or the table could):
 * every alteration is rejected with KOTTE_EINTEGRITY and never yields
 * someone else's plaintext. Run over every built-in backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "cred_fixture.h"

#define F cfx *f = *state

/* Replaces one or both blobs of a row, unconditionally. */
static void put_blobs(cfx *f, const char *user, const char *id, const unsigned char *u,
                      size_t ulen, const unsigned char *p, size_t plen) {
  kotte_cred_patch patch;
  memset(&patch, 0, sizeof patch);
  if (u) {
    patch.set |= KOTTE_CRED_SET_USERNAME;
    patch.username = u;
    patch.username_len = ulen;
  }
  if (p) {
    patch.set |= KOTTE_CRED_SET_PASSWORD;
    patch.password = p;
    patch.password_len = plen;
  }
  assert_int_equal(cfx_raw_update(f, user, id, &patch), 0);
}

static void put_key_id(cfx *f, const char *user, const char *id, const char *key_id) {
  kotte_cred_patch patch;
  memset(&patch, 0, sizeof patch);
  patch.set = KOTTE_CRED_SET_KEY_ID;
  patch.key_id = key_id;
  assert_int_equal(cfx_raw_update(f, user, id, &patch), 0);
}

/* The get fails with @p want, and the detail shows no secret. */
static void expect_rejected(cfx *f, const char *user, const char *id, int want) {
  kotte_cred *c = NULL;
  assert_int_equal(cfx_get(f, user, id, &c), want);
  assert_null(c);
  const char *d = kotte_error_detail();
  assert_null(strstr(d, "alice-pw"));
  assert_null(strstr(d, "bob-pw"));
  assert_null(strstr(d, "alice-user"));
}

static void flipping_any_bit_of_a_stored_blob_is_an_integrity_error(void **state) {
  F;
  char id[37];
  cfx_new(f, "alice", "prod", "alice-user", "alice-pw", id);
  kotte_cred_record *r;
  assert_int_equal(cfx_raw_get(f, "alice", id, &r), 0);
  size_t n = r->password_len;
  unsigned char *blob = malloc(n);
  for (size_t i = 0; i < n; i++) {
    memcpy(blob, r->password, n);
    blob[i] ^= (unsigned char)(1u << (i % 8));
    put_blobs(f, "alice", id, NULL, 0, blob, n);
    expect_rejected(f, "alice", id, KOTTE_EINTEGRITY);
  }
  put_blobs(f, "alice", id, NULL, 0, r->password, n); /* restored: fine again */
  kotte_cred *c;
  assert_int_equal(cfx_get(f, "alice", id, &c), 0);
  assert_string_equal(kotte_cred_password(c), "alice-pw");
  kotte_cred_free(c);
  free(blob);
  cfx_raw_free(r);
}

static void a_blob_copied_to_another_user_fails(void **state) {
  F;
  char a[37], b[37];
  cfx_new(f, "alice", "prod", "alice-user", "alice-pw", a);
  cfx_new(f, "bob", "prod", "bob-user", "bob-pw", b);
  kotte_cred_record *ra;
  assert_int_equal(cfx_raw_get(f, "alice", a, &ra), 0);
  put_blobs(f, "bob", b, ra->username, ra->username_len, ra->password, ra->password_len);
  expect_rejected(f, "bob", b, KOTTE_EINTEGRITY); /* never alice's plaintext */
  cfx_raw_free(ra);
}

static void on_insert(int status, void *ctx) {
  assert_int_equal(status, 0);
  *(int *)ctx = 1;
}

static void a_whole_row_moved_to_another_user_fails(void **state) {
  F;
  /* Same connection id, same blobs, only the owner changed: the subkey and
   * the associated data both name the owner. */
  char a[37];
  cfx_new(f, "alice", "prod", "alice-user", "alice-pw", a);
  kotte_cred_record *ra;
  assert_int_equal(cfx_raw_get(f, "alice", a, &ra), 0);
  assert_int_equal(cfx_delete(f, "alice", a), 0);
  kotte_cred_record moved = *ra;
  moved.user_id = "mallory";
  int done = 0;
  assert_int_equal(f->be->insert(f->be, &moved, on_insert, &done), 0);
  while (!done) uv_run(&f->env.loop, UV_RUN_ONCE);
  expect_rejected(f, "mallory", a, KOTTE_EINTEGRITY);
  cfx_raw_free(ra);
}

static void swapping_username_and_password_fails(void **state) {
  F;
  char id[37];
  cfx_new(f, "alice", "prod", "alice-user", "alice-pw", id);
  kotte_cred_record *r;
  assert_int_equal(cfx_raw_get(f, "alice", id, &r), 0);
  put_blobs(f, "alice", id, r->password, r->password_len, r->username, r->username_len);
  expect_rejected(f, "alice", id, KOTTE_EINTEGRITY);
  cfx_raw_free(r);
}

static void a_blob_copied_to_another_connection_of_the_same_user_fails(void **state) {
  F;
  char a[37], b[37];
  cfx_new(f, "alice", "prod", "alice-user", "alice-pw", a);
  cfx_new(f, "alice", "test", "alice-user", "other", b);
  kotte_cred_record *ra;
  assert_int_equal(cfx_raw_get(f, "alice", a, &ra), 0);
  put_blobs(f, "alice", b, NULL, 0, ra->password, ra->password_len);
  expect_rejected(f, "alice", b, KOTTE_EINTEGRITY);
  cfx_raw_free(ra);
}

static void truncated_or_extended_blobs_fail(void **state) {
  F;
  char id[37];
  cfx_new(f, "alice", "prod", "alice-user", "alice-pw", id);
  kotte_cred_record *r;
  assert_int_equal(cfx_raw_get(f, "alice", id, &r), 0);
  size_t n = r->password_len;
  unsigned char *blob = calloc(1, n + 1);
  memcpy(blob, r->password, n);
  size_t cuts[] = { 0, 1, 9, 33, KOTTE_SEAL_OVERHEAD - 1, KOTTE_SEAL_OVERHEAD, n - 1, n + 1 };
  for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
    put_blobs(f, "alice", id, NULL, 0, blob, cuts[i]);
    expect_rejected(f, "alice", id, KOTTE_EINTEGRITY);
  }
  free(blob);
  cfx_raw_free(r);
}

static void a_wrong_key_id_is_an_integrity_error(void **state) {
  F;
  char id[37];
  cfx_new(f, "alice", "prod", "alice-user", "alice-pw", id);
  kotte_cred_record *r;
  assert_int_equal(cfx_raw_get(f, "alice", id, &r), 0);
  char key_a[17];
  snprintf(key_a, sizeof key_a, "%s", r->key_id);
  kotte_keyring *both = cfx_ring(KEY_B, KEY_A);
  char key_b[17];
  snprintf(key_b, sizeof key_b, "%s", kotte_keyring_current_id(both));
  cfx_use_ring(f, both);
  /* the row names key B, the blobs key A */
  put_key_id(f, "alice", id, key_b);
  expect_rejected(f, "alice", id, KOTTE_EINTEGRITY);
  /* the row and the blobs both claim key B: the key id is authenticated */
  unsigned char *u = malloc(r->username_len), *p = malloc(r->password_len);
  memcpy(u, r->username, r->username_len);
  memcpy(p, r->password, r->password_len);
  assert_int_equal(sodium_hex2bin(u + 1, 8, key_b, 16, NULL, NULL, NULL), 0);
  assert_int_equal(sodium_hex2bin(p + 1, 8, key_b, 16, NULL, NULL, NULL), 0);
  put_blobs(f, "alice", id, u, r->username_len, p, r->password_len);
  expect_rejected(f, "alice", id, KOTTE_EINTEGRITY);
  /* the row names a key that is in no ring, and so do the blobs */
  assert_int_equal(sodium_hex2bin(u + 1, 8, "0123456789abcdef", 16, NULL, NULL, NULL), 0);
  assert_int_equal(sodium_hex2bin(p + 1, 8, "0123456789abcdef", 16, NULL, NULL, NULL), 0);
  put_blobs(f, "alice", id, u, r->username_len, p, r->password_len);
  put_key_id(f, "alice", id, "0123456789abcdef");
  expect_rejected(f, "alice", id, KOTTE_EKEY);
  /* all back as they were: opens again */
  put_blobs(f, "alice", id, r->username, r->username_len, r->password, r->password_len);
  put_key_id(f, "alice", id, key_a);
  kotte_cred *c;
  assert_int_equal(cfx_get(f, "alice", id, &c), 0);
  assert_string_equal(kotte_cred_username(c), "alice-user");
  kotte_cred_free(c);
  free(u);
  free(p);
  cfx_raw_free(r);
}

static void a_tampered_record_is_skipped_by_rewrap_and_the_rest_moves_on(void **state) {
  F;
  char a[37], b[37];
  cfx_new(f, "alice", "prod", "alice-user", "alice-pw", a);
  cfx_new(f, "alice", "test", "alice-user", "test-pw", b);
  kotte_cred_record *r;
  assert_int_equal(cfx_raw_get(f, "alice", a, &r), 0);
  put_blobs(f, "alice", b, NULL, 0, r->password, r->password_len);
  cfx_use_ring(f, cfx_ring(KEY_B, KEY_A));
  kotte_cred_report *rep;
  assert_int_equal(cfx_rewrap(f, &rep), 0);
  assert_int_equal(kotte_cred_report_rewrapped(rep), 1);
  assert_int_equal(kotte_cred_report_failed(rep), 1);
  assert_int_equal(kotte_cred_report_stale(rep), 1);
  kotte_cred_report_free(rep);
  expect_rejected(f, "alice", b, KOTTE_EINTEGRITY);
  assert_int_equal(cfx_get(f, "alice", a, NULL), 0);
  cfx_raw_free(r);
}

#define T(name, setup) cmocka_unit_test_setup_teardown(name, setup, cfx_teardown)
#define TAMPER(setup)                                                                   \
  {                                                                                     \
    T(flipping_any_bit_of_a_stored_blob_is_an_integrity_error, setup),                  \
    T(a_blob_copied_to_another_user_fails, setup),                                      \
    T(a_whole_row_moved_to_another_user_fails, setup),                                  \
    T(swapping_username_and_password_fails, setup),                                     \
    T(a_blob_copied_to_another_connection_of_the_same_user_fails, setup),               \
    T(truncated_or_extended_blobs_fail, setup),                                         \
    T(a_wrong_key_id_is_an_integrity_error, setup),                                     \
    T(a_tampered_record_is_skipped_by_rewrap_and_the_rest_moves_on, setup),             \
  }

int main(void) {
  const struct CMUnitTest memory[] = TAMPER(cfx_setup_memory);
  const struct CMUnitTest json_file[] = TAMPER(cfx_setup_json_file);
  int failed = 0;
  failed += cmocka_run_group_tests_name("credential tamper: memory", memory, NULL, NULL);
  failed += cmocka_run_group_tests_name("credential tamper: json_file", json_file, NULL, NULL);
  if (cfx_postgresql_conninfo()) {
    const struct CMUnitTest postgresql[] = TAMPER(cfx_setup_postgresql);
    failed += cmocka_run_group_tests_name("credential tamper: postgresql", postgresql, NULL, NULL);
  }
  return failed ? 1 : 0;
}
