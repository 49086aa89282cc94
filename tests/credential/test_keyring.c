/* The key ring: accepted and refused key forms, key ids, sealing and
 * opening, tampering, rotation between rings, protected key memory, and
 * concurrent use. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <kotte.h>

#include "credential/credential_internal.h"

/* The same 32 bytes in every accepted encoding. */
#define HEX_LOWER "00112233445566778899aabbccddeeff0123456789abcdef0011223344556677"
#define HEX_UPPER "00112233445566778899AABBCCDDEEFF0123456789ABCDEF0011223344556677"
#define B64_PAD "ABEiM0RVZneImaq7zN3u/wEjRWeJq83vABEiM0RVZnc="
#define B64_NOPAD "ABEiM0RVZneImaq7zN3u/wEjRWeJq83vABEiM0RVZnc"
/* A key as Kotte's Fernet.generate_key() makes them (URL-safe, padded). */
#define FERNET_KEY "6QaxmgKnQsLyLjJxgV3xAJbv2SPPZRsk9XWfXPbDhKI="
#define PASSPHRASE "correct horse battery staple, twice as long"

static kotte_keyring *ring(const char *current, const char *previous) {
  kotte_keyring *kr = NULL;
  int rc = kotte_keyring_new(&kr, current, previous);
  if (rc != 0) fail_msg("kotte_keyring_new: %s: %s", kotte_err_name(rc), kotte_error_detail());
  return kr;
}

static void expected_id(const unsigned char key[32], char out[17]) {
  unsigned char raw[8];
  crypto_generichash(raw, 8, (const unsigned char *)"libkotte key id v1", 18, key, 32);
  sodium_bin2hex(out, 17, raw, 8);
}

static void hex_and_base64_forms_of_one_key_are_the_same_key(void **state) {
  (void)state;
  const char *forms[] = { HEX_LOWER, HEX_UPPER, B64_PAD, B64_NOPAD, "  " HEX_LOWER "\n" };
  unsigned char key[32];
  size_t len;
  assert_int_equal(sodium_hex2bin(key, 32, HEX_LOWER, 64, NULL, &len, NULL), 0);
  char want[17];
  expected_id(key, want);
  for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
    kotte_keyring *kr = ring(forms[i], NULL);
    assert_string_equal(kotte_keyring_current_id(kr), want); /* documented derivation */
    assert_int_equal(strlen(kotte_keyring_current_id(kr)), KOTTE_KEY_ID_LEN);
    assert_int_equal(kotte_keyring_count(kr), 1);
    kotte_keyring_free(kr);
  }
}

static void a_fernet_key_from_kotte_is_a_base64_key(void **state) {
  (void)state;
  unsigned char key[32];
  size_t len;
  assert_int_equal(sodium_base642bin(key, 32, FERNET_KEY, strlen(FERNET_KEY), NULL, &len, NULL,
                                     sodium_base64_VARIANT_URLSAFE),
                   0);
  char want[17];
  expected_id(key, want);
  kotte_keyring *kr = ring(FERNET_KEY, NULL);
  assert_string_equal(kotte_keyring_current_id(kr), want);
  kotte_keyring_free(kr);
}

static void a_long_passphrase_is_derived_with_argon2id(void **state) {
  (void)state;
  unsigned char salt[32], key[32];
  const char *label = "libkotte MASTER_ENCRYPTION_KEY passphrase v1";
  crypto_generichash(salt, sizeof salt, (const unsigned char *)label, strlen(label), NULL, 0);
  assert_int_equal(crypto_pwhash(key, 32, PASSPHRASE, strlen(PASSPHRASE), salt, 3,
                                 64u * 1024 * 1024, crypto_pwhash_ALG_ARGON2ID13),
                   0);
  char want[17];
  expected_id(key, want);
  kotte_keyring *kr = ring(PASSPHRASE, NULL);
  assert_string_equal(kotte_keyring_current_id(kr), want);
  kotte_keyring_free(kr);
}

static void weak_keys_are_refused_with_what_is_expected(void **state) {
  (void)state;
  char e31[64] = "";
  for (int i = 0; i < 31; i++) strcat(e31, "\xc3\xa9"); /* 31 characters, 62 bytes */
  const char *weak[] = {
    "short",
    "exactly thirty-one characters!!",                                      /* 31 */
    e31,
    "0000000000000000000000000000000000000000000000000000000000000000", /* all zero */
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",                     /* all zero */
    "   \n",
  };
  for (size_t i = 0; i < sizeof weak / sizeof *weak; i++) {
    kotte_keyring *kr = (kotte_keyring *)1;
    assert_int_equal(kotte_keyring_new(&kr, weak[i], NULL), KOTTE_EKEY);
    assert_null(kr);
    const char *d = kotte_error_detail();
    assert_non_null(strstr(d, "MASTER_ENCRYPTION_KEY"));
    assert_non_null(strstr(d, "32 random bytes as base64"));
    assert_non_null(strstr(d, "at least 32 characters"));
    if (strlen(weak[i]) > 4) assert_null(strstr(d, weak[i])); /* never the key itself */
  }
  kotte_keyring *kr;
  assert_int_equal(kotte_keyring_new(&kr, NULL, NULL), KOTTE_EINVAL);
  assert_int_equal(kotte_keyring_new(&kr, "", NULL), KOTTE_EINVAL);
  assert_non_null(strstr(kotte_error_detail(), "not set"));
  /* a bad previous key names its position */
  assert_int_equal(kotte_keyring_new(&kr, HEX_LOWER, B64_PAD ", too short"), KOTTE_EKEY);
  assert_non_null(strstr(kotte_error_detail(), "MASTER_ENCRYPTION_KEYS_PREVIOUS (item 2)"));
  assert_null(strstr(kotte_error_detail(), "too short"));
}

static void previous_keys_are_parsed_deduplicated_and_only_open(void **state) {
  (void)state;
  kotte_keyring *a = ring(HEX_LOWER, NULL);
  kotte_keyring *b = ring(FERNET_KEY, NULL);
  /* spaces, empty items and duplicates (also of the current key) */
  kotte_keyring *ba = ring(FERNET_KEY, " , " B64_PAD " ,," HEX_UPPER ", " FERNET_KEY " ");
  assert_int_equal(kotte_keyring_count(ba), 2);
  assert_string_equal(kotte_keyring_current_id(ba), kotte_keyring_current_id(b));
  assert_string_equal(kotte_keyring_key_id(ba, 0), kotte_keyring_current_id(b));
  assert_string_equal(kotte_keyring_key_id(ba, 1), kotte_keyring_current_id(a));
  assert_null(kotte_keyring_key_id(ba, 2));
  assert_true(kotte_keyring_has_key(ba, kotte_keyring_current_id(a)));
  assert_false(kotte_keyring_has_key(b, kotte_keyring_current_id(a)));
  unsigned char blob[64];
  size_t n;
  char *pt;
  /* sealed by the old ring: the new ring opens it, the one without A cannot */
  assert_int_equal(kotte_keyring_seal(a, "alice", "ad", 2, "secret", 6, blob, sizeof blob, &n), 0);
  assert_int_equal(kotte_keyring_open(ba, "alice", "ad", 2, blob, n, &pt, NULL), 0);
  assert_string_equal(pt, "secret");
  kotte_secret_free(pt);
  assert_int_equal(kotte_keyring_open(b, "alice", "ad", 2, blob, n, &pt, NULL), KOTTE_EKEY);
  assert_non_null(strstr(kotte_error_detail(), kotte_keyring_current_id(a)));
  /* the new ring seals with its current key only */
  assert_int_equal(kotte_keyring_seal(ba, "alice", NULL, 0, "x", 1, blob, sizeof blob, &n), 0);
  char id[17];
  assert_int_equal(kotte_keyring_blob_key_id(blob, n, id), 0);
  assert_string_equal(id, kotte_keyring_current_id(b));
  assert_int_equal(kotte_keyring_open(a, "alice", NULL, 0, blob, n, &pt, NULL), KOTTE_EKEY);
  kotte_keyring_free(a);
  kotte_keyring_free(b);
  kotte_keyring_free(ba);
}

static void the_environment_names_the_keys(void **state) {
  (void)state;
  setenv("MASTER_ENCRYPTION_KEY", FERNET_KEY, 1);
  setenv("MASTER_ENCRYPTION_KEYS_PREVIOUS", HEX_LOWER, 1);
  kotte_keyring *kr;
  assert_int_equal(kotte_keyring_from_env(&kr), 0);
  assert_int_equal(kotte_keyring_count(kr), 2);
  kotte_keyring_free(kr);
  unsetenv("MASTER_ENCRYPTION_KEYS_PREVIOUS");
  assert_int_equal(kotte_keyring_from_env(&kr), 0);
  assert_int_equal(kotte_keyring_count(kr), 1);
  kotte_keyring_free(kr);
  unsetenv("MASTER_ENCRYPTION_KEY");
  assert_int_equal(kotte_keyring_from_env(&kr), KOTTE_EINVAL);
}

static void seal_and_open_bind_subject_and_associated_data(void **state) {
  (void)state;
  kotte_keyring *kr = ring(HEX_LOWER, NULL);
  const char pt[] = "binary\0secret";
  unsigned char blob[128], blob2[128];
  size_t n, n2;
  assert_int_equal(kotte_keyring_sealed_size(sizeof pt), sizeof pt + KOTTE_SEAL_OVERHEAD);
  assert_int_equal(kotte_keyring_seal(kr, "alice", "conn-1", 6, pt, sizeof pt, blob,
                                      sizeof blob, &n),
                   0);
  assert_int_equal(n, sizeof pt + KOTTE_SEAL_OVERHEAD);
  assert_int_equal(blob[0], 1); /* version */
  assert_null(memmem(blob, n, "secret", 6)); /* ciphertext, not text */
  char *out;
  size_t out_len;
  assert_int_equal(kotte_keyring_open(kr, "alice", "conn-1", 6, blob, n, &out, &out_len), 0);
  assert_int_equal(out_len, sizeof pt);
  assert_memory_equal(out, pt, sizeof pt);
  assert_int_equal(out[out_len], '\0');
  kotte_secret_free(out);
  /* random nonces: the same plaintext seals differently */
  assert_int_equal(kotte_keyring_seal(kr, "alice", "conn-1", 6, pt, sizeof pt, blob2,
                                      sizeof blob2, &n2),
                   0);
  assert_memory_not_equal(blob, blob2, n);
  /* another subject, another ad, no ad */
  assert_int_equal(kotte_keyring_open(kr, "bob", "conn-1", 6, blob, n, &out, NULL),
                   KOTTE_EINTEGRITY);
  assert_int_equal(kotte_keyring_open(kr, "alice", "conn-2", 6, blob, n, &out, NULL),
                   KOTTE_EINTEGRITY);
  assert_int_equal(kotte_keyring_open(kr, "alice", NULL, 0, blob, n, &out, NULL),
                   KOTTE_EINTEGRITY);
  assert_null(out);
  /* empty plaintext, empty subject */
  assert_int_equal(kotte_keyring_seal(kr, "", NULL, 0, "", 0, blob, sizeof blob, &n), 0);
  assert_int_equal(n, KOTTE_SEAL_OVERHEAD);
  assert_int_equal(kotte_keyring_open(kr, "", NULL, 0, blob, n, &out, &out_len), 0);
  assert_int_equal(out_len, 0);
  kotte_secret_free(out);
  /* too small a buffer, bad arguments */
  assert_int_equal(kotte_keyring_seal(kr, "a", NULL, 0, "xy", 2, blob, 50, &n), KOTTE_EINVAL);
  assert_int_equal(kotte_keyring_seal(kr, NULL, NULL, 0, "xy", 2, blob, 60, &n), KOTTE_EINVAL);
  assert_int_equal(kotte_keyring_open(kr, "a", NULL, 0, NULL, 0, &out, NULL), KOTTE_EINVAL);
  kotte_secret_free(NULL);
  kotte_keyring_free(kr);
}

static void every_altered_byte_and_every_truncation_fails(void **state) {
  (void)state;
  kotte_keyring *kr = ring(HEX_LOWER, B64_PAD); /* one key, listed twice */
  unsigned char blob[128];
  size_t n;
  assert_int_equal(kotte_keyring_seal(kr, "alice", "ad", 2, "hunter2", 7, blob, sizeof blob, &n),
                   0);
  char *out;
  for (size_t i = 0; i < n; i++) {
    for (int bit = 0; bit < 8; bit += 7) {
      blob[i] ^= (unsigned char)(1u << bit);
      int rc = kotte_keyring_open(kr, "alice", "ad", 2, blob, n, &out, NULL);
      /* bytes 1-8 name the key: another id is a key the ring lacks */
      assert_int_equal(rc, (i >= 1 && i <= 8) ? KOTTE_EKEY : KOTTE_EINTEGRITY);
      assert_null(out);
      assert_null(strstr(kotte_error_detail(), "hunter2"));
      blob[i] ^= (unsigned char)(1u << bit);
    }
  }
  for (size_t len = 0; len < n; len++)
    assert_int_equal(kotte_keyring_open(kr, "alice", "ad", 2, blob, len, &out, NULL),
                     KOTTE_EINTEGRITY);
  blob[n] = 0;
  assert_int_equal(kotte_keyring_open(kr, "alice", "ad", 2, blob, n + 1, &out, NULL),
                   KOTTE_EINTEGRITY);
  char id[17];
  assert_int_equal(kotte_keyring_blob_key_id(blob, 10, id), KOTTE_EINTEGRITY);
  assert_int_equal(kotte_keyring_open(kr, "alice", "ad", 2, blob, n, &out, NULL), 0);
  kotte_secret_free(out);
  kotte_keyring_free(kr);
}

static void a_blob_relabelled_with_another_key_id_fails(void **state) {
  (void)state;
  kotte_keyring *a = ring(HEX_LOWER, NULL);
  kotte_keyring *both = ring(FERNET_KEY, HEX_LOWER);
  unsigned char blob[64], other[64];
  size_t n, m;
  assert_int_equal(kotte_keyring_seal(a, "alice", NULL, 0, "pw", 2, blob, sizeof blob, &n), 0);
  assert_int_equal(kotte_keyring_seal(both, "alice", NULL, 0, "pw", 2, other, sizeof other, &m), 0);
  memcpy(blob + 1, other + 1, 8); /* claims the current key of `both` */
  char *out;
  assert_int_equal(kotte_keyring_open(both, "alice", NULL, 0, blob, n, &out, NULL),
                   KOTTE_EINTEGRITY);
  kotte_keyring_free(a);
  kotte_keyring_free(both);
}

static void keys_are_inaccessible_between_uses(void **state) {
  (void)state;
  kotte_keyring *kr = ring(HEX_LOWER, NULL);
  unsigned char blob[64];
  size_t n;
  assert_int_equal(kotte_keyring_seal(kr, "a", NULL, 0, "x", 1, blob, sizeof blob, &n), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* Reading the key pages must fault (the sanitizers report it and exit
     * non-zero; without one the signal kills the child). */
    const volatile unsigned char *keys = kotte__keyring_key_memory(kr);
    int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) {
      dup2(fd, 2); /* keep the expected crash report out of the test log */
      dup2(fd, 1);
    }
    unsigned char c = keys[0];
    _exit(c == 0x00 ? 0 : 0);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_false(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  kotte_keyring_free(kr);
}

/* Several threads seal and open at once (the key pages are shared). */
typedef struct worker {
  kotte_keyring *kr;
  int index;
  int failures;
} worker;

static void work(void *arg) {
  worker *w = arg;
  char subject[16], msg[32];
  snprintf(subject, sizeof subject, "user-%d", w->index);
  for (int i = 0; i < 500; i++) {
    unsigned char blob[96];
    size_t n;
    char *out;
    int len = snprintf(msg, sizeof msg, "pw-%d-%d", w->index, i);
    if (kotte_keyring_seal(w->kr, subject, msg, (size_t)len, msg, (size_t)len, blob, sizeof blob,
                           &n) != 0 ||
        kotte_keyring_open(w->kr, subject, msg, (size_t)len, blob, n, &out, NULL) != 0) {
      w->failures++;
      continue;
    }
    if (strcmp(out, msg) != 0) w->failures++;
    kotte_secret_free(out);
  }
}

static void seal_and_open_are_thread_safe(void **state) {
  (void)state;
  kotte_keyring *kr = ring(HEX_LOWER, FERNET_KEY);
  enum { N = 4 };
  uv_thread_t t[N];
  worker w[N];
  for (int i = 0; i < N; i++) {
    w[i] = (worker){ kr, i, 0 };
    assert_int_equal(uv_thread_create(&t[i], work, &w[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    uv_thread_join(&t[i]);
    assert_int_equal(w[i].failures, 0);
  }
  assert_int_equal(kotte__keyring_open_count(kr), N * 500);
  kotte_keyring_free(kr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(keys_are_inaccessible_between_uses), /* first: forks, before threads */
    cmocka_unit_test(hex_and_base64_forms_of_one_key_are_the_same_key),
    cmocka_unit_test(a_fernet_key_from_kotte_is_a_base64_key),
    cmocka_unit_test(a_long_passphrase_is_derived_with_argon2id),
    cmocka_unit_test(weak_keys_are_refused_with_what_is_expected),
    cmocka_unit_test(previous_keys_are_parsed_deduplicated_and_only_open),
    cmocka_unit_test(the_environment_names_the_keys),
    cmocka_unit_test(seal_and_open_bind_subject_and_associated_data),
    cmocka_unit_test(every_altered_byte_and_every_truncation_fails),
    cmocka_unit_test(a_blob_relabelled_with_another_key_id_fails),
    cmocka_unit_test(seal_and_open_are_thread_safe),
  };
  return cmocka_run_group_tests_name("key ring", tests, NULL, NULL);
}
