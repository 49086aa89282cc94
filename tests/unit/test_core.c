/* Core: error table, version, tokens, allocator and log hooks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <locale.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include <sodium.h>

#include <kotte.h>

#include "core/internal.h"

static void strerror_never_returns_null(void **state) {
  for (int code = -200; code <= 200; code++) {
    assert_non_null(kotte_strerror(code));
    assert_non_null(kotte_err_name(code));
  }
  assert_string_equal(kotte_strerror(KOTTE_ENOTFOUND), "not found (unknown, deleted or expired)");
  assert_string_equal(kotte_err_name(KOTTE_ETOOBIG), "KOTTE_ETOOBIG");
  assert_string_equal(kotte_strerror(-9999), "unknown error");
  /* every code in the table is negative, distinct and named */
  for (int code = -1; code >= KOTTE__ERRNO_LAST; code--) {
    assert_string_not_equal(kotte_strerror(code), "unknown error");
    assert_string_not_equal(kotte_err_name(code), "KOTTE_UNKNOWN");
  }
}

static void version_matches_the_header(void **state) {
  assert_string_equal(kotte_version(), KOTTE_VERSION_STRING);
  assert_int_equal(kotte_version_hex(), KOTTE_VERSION_HEX);
  assert_int_equal(KOTTE_VERSION_HEX >> 16, KOTTE_VERSION_MAJOR);
}

static int cmp(const void *a, const void *b) { return strcmp(a, b); }

static void tokens_are_43_char_base64url_and_distinct(void **state) {
  enum { N = 2000 };
  char (*t)[44] = malloc(N * sizeof *t);
  assert_non_null(t);
  for (int i = 0; i < N; i++) {
    assert_int_equal(kotte_token_generate(t[i]), 0);
    assert_int_equal(strlen(t[i]), 43);
    assert_true(kotte_token_is_valid(t[i]));
    assert_int_equal(strspn(t[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
  }
  qsort(t, N, sizeof *t, cmp);
  for (int i = 1; i < N; i++) assert_string_not_equal(t[i - 1], t[i]);
  free(t);
}

static void token_validator_rejects_other_shapes(void **state) {
  assert_false(kotte_token_is_valid(NULL));
  assert_false(kotte_token_is_valid(""));
  assert_false(kotte_token_is_valid("abc"));
  assert_false(kotte_token_is_valid("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")); /* 44 */
  assert_false(kotte_token_is_valid("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/"));
  assert_true(kotte_token_is_valid("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
  /* what Python's secrets.token_urlsafe(32) gives is accepted */
  assert_true(kotte_token_is_valid("dGhpcyBpcyBhIHRlc3QgdG9rZW4gb2YgMzIgYnl0ZXM"));
  /* every possible last character: valid exactly when libsodium decodes
   * the token to 32 bytes (the canonical encodings) */
  const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  int accepted = 0;
  for (const char *a = alphabet; *a; a++) {
    char tok[44];
    memset(tok, 'Q', 42);
    tok[42] = *a;
    tok[43] = '\0';
    unsigned char raw[32];
    size_t len = 0;
    int decodes = sodium_base642bin(raw, sizeof raw, tok, 43, NULL, &len, NULL,
                                    sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 && len == 32;
    assert_int_equal(kotte_token_is_valid(tok), decodes);
    accepted += decodes;
    tok[10] = '+'; /* standard base64, not base64url */
    assert_false(kotte_token_is_valid(tok));
  }
  assert_int_equal(accepted, 16);
}

static void digest_encoding_matches_libsodium(void **state) {
  for (int i = 0; i < 2000; i++) {
    unsigned char d[32];
    randombytes_buf(d, sizeof d);
    if (i < 2) memset(d, i ? 0xff : 0, sizeof d); /* the extremes */
    char ours[44], theirs[44];
    kotte__b64url_digest32(ours, d);
    sodium_bin2base64(theirs, sizeof theirs, d, sizeof d, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    assert_string_equal(ours, theirs);
    assert_true(kotte_token_is_valid(ours));
  }
}

static atomic_long allocs, frees;
/* The reference for sequences of up to three bytes: glibc's UTF-8 decoder
 * (C.UTF-8), which refuses overlong forms and surrogates as Table 3-7
 * does. (It accepts code points above U+10FFFF, so four-byte sequences are
 * checked against the arithmetic instead.) */
static int glibc_utf8_ok(const unsigned char *s, size_t n) {
  mbstate_t st;
  memset(&st, 0, sizeof st);
  while (n) {
    wchar_t w;
    size_t r = mbrtowc(&w, (const char *)s, n, &st);
    if (r == (size_t)-1 || r == (size_t)-2) return 0;
    if (r == 0) r = 1; /* a NUL byte */
    s += r;
    n -= r;
  }
  return 1;
}

static void utf8_check_follows_the_unicode_table(void **state) {
  (void)state;
  assert_non_null(setlocale(LC_CTYPE, "C.UTF-8"));
  unsigned char b[4];
  for (unsigned i = 0; i < 256; i++) {
    b[0] = (unsigned char)i;
    assert_int_equal(kotte_utf8_check((char *)b, 1) == 1, glibc_utf8_ok(b, 1));
    for (unsigned j = 0; j < 256; j++) {
      b[1] = (unsigned char)j;
      assert_int_equal(kotte_utf8_check((char *)b, 2) == 2, glibc_utf8_ok(b, 2));
      if (i < 0xC0) continue; /* three bytes: every lead byte that starts a sequence */
      for (unsigned k = 0; k < 256; k++) {
        b[2] = (unsigned char)k;
        if ((kotte_utf8_check((char *)b, 3) == 3) != glibc_utf8_ok(b, 3))
          fail_msg("%02x %02x %02x", i, j, k);
      }
    }
  }
  setlocale(LC_CTYPE, "C");
  /* four bytes: lead F0..FF, every second byte, a third byte at and
   * around the continuation range's edges */
  static const unsigned thirds[] = {0x00, 0x7F, 0x80, 0x9A, 0xBF, 0xC0, 0xFF};
  for (unsigned i = 0xF0; i < 256; i++)
    for (unsigned j = 0; j < 256; j++)
      for (size_t t = 0; t < sizeof thirds / sizeof thirds[0]; t++) {
        unsigned k = thirds[t];
        b[0] = (unsigned char)i, b[1] = (unsigned char)j, b[2] = (unsigned char)k, b[3] = 0x80;
        uint32_t cp = (uint32_t)(i & 7) << 18 | (uint32_t)(j & 0x3F) << 12 |
                      (uint32_t)(k & 0x3F) << 6;
        int ok = i <= 0xF4 && (j & 0xC0) == 0x80 && (k & 0xC0) == 0x80 && cp >= 0x10000 &&
                 cp <= 0x10FFFF;
        if ((kotte_utf8_check((char *)b, 4) == 4) != ok) fail_msg("%02x %02x %02x 80", i, j, k);
      }
  /* the offset of the first ill-formed sequence */
  assert_int_equal(kotte_utf8_check("ab\xff" "cd", 5), 2);
  assert_int_equal(kotte_utf8_check("\xc3\xa9\xe2\x82", 4), 2); /* cut off by len */
  assert_int_equal(kotte_utf8_check("\xc3\xa9\xe2\x82\xac", 5), 5);
  assert_int_equal(kotte_utf8_check("a\0b", 3), 3);
  assert_int_equal(kotte_utf8_check("\xf0\x9f\x98\x80", 4), 4); /* U+1F600 */
  assert_int_equal(kotte_utf8_check("x\xed\xa0\x80", 4), 1);   /* U+D800 */
  assert_int_equal(kotte_utf8_check(NULL, 3), 0);
  assert_int_equal(kotte_utf8_check("", 0), 0);
}

static void *count_malloc(size_t n, void *ctx) {
  atomic_fetch_add(&allocs, 1);
  return malloc(n);
}
static void *count_realloc(void *p, size_t n, void *ctx) {
  if (p == NULL) atomic_fetch_add(&allocs, 1);
  return realloc(p, n);
}
static void count_free(void *p, void *ctx) {
  if (p) atomic_fetch_add(&frees, 1);
  free(p);
}

static void the_allocator_hook_sees_every_allocation(void **state) {
  kotte_allocator a = { count_malloc, count_realloc, count_free, NULL };
  kotte_allocator incomplete = { count_malloc, NULL, count_free, NULL };
  assert_int_equal(kotte_set_allocator(&incomplete), KOTTE_EINVAL);
  assert_int_equal(kotte_set_allocator(&a), 0);
  kotte_runtime *rt;
  kotte_session_backend *be;
  kotte_session_store *st;
  assert_int_equal(kotte_runtime_new(&rt, NULL), 0);
  assert_int_equal(kotte_session_backend_memory_new(&be), 0);
  assert_int_equal(kotte_session_store_open(&st, rt, be, NULL), 0);
  kotte_session *s;
  assert_int_equal(kotte_session_create_sync(st, "alice", "{\"a\":[1,2,3]}", &s, -1), 0);
  char id[44];
  memcpy(id, kotte_session_id(s), 44);
  kotte_session_free(s);
  assert_int_equal(kotte_session_update_sync(st, id, "{\"b\":{\"c\":1}}", &s, -1), 0);
  kotte_session_free(s);
  kotte_session_store_free(st);
  kotte_runtime_free(rt);
  assert_int_equal(kotte_set_allocator(NULL), 0);
  assert_true(atomic_load(&allocs) > 10);
  /* everything libkotte (and cJSON on its behalf) allocated was released */
  assert_int_equal(atomic_load(&allocs), atomic_load(&frees));
}

/* Issue 12: a refused kotte_set_allocator() left its message behind, and
 * a later, unrelated failure showed it as its own detail. */
static void error_detail_never_describes_an_earlier_call(void **state) {
  kotte_allocator incomplete = { count_malloc, NULL, count_free, NULL };
  assert_int_equal(kotte_set_allocator(&incomplete), KOTTE_EINVAL);
  assert_non_null(strstr(kotte_error_detail(), "kotte_set_allocator"));
  kotte_session_store *st = (kotte_session_store *)state;
  assert_int_equal(kotte_session_store_new(&st, NULL, NULL, NULL), KOTTE_EINVAL);
  assert_string_equal(kotte_error_detail(), "");

  /* a failure on the runtime's thread is described to the calling thread,
   * and the next call that fails without a detail shows none */
  kotte_runtime *rt;
  kotte_session_backend *be;
  assert_int_equal(kotte_runtime_new(&rt, NULL), 0);
  assert_int_equal(kotte_session_backend_memory_new(&be), 0);
  kotte_session_options opts = KOTTE_SESSION_OPTIONS_INIT;
  opts.version = 999;
  assert_int_equal(kotte_session_store_open(&st, rt, be, &opts), KOTTE_EVERSION);
  assert_true(kotte_error_detail()[0] != '\0');
  assert_int_equal(kotte_session_store_open(&st, rt, be, NULL), 0);
  assert_string_equal(kotte_error_detail(), "");
  kotte_session *s = NULL;
  assert_int_equal(kotte_session_get_sync(st, "not-a-token", &s, -1), KOTTE_EBADID);
  assert_int_equal(kotte_session_get_sync(st, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &s, -1),
                   KOTTE_ENOTFOUND);
  assert_string_equal(kotte_error_detail(), "");
  kotte_session_store_free(st);
  kotte_runtime_free(rt);
}

typedef struct logs {
  int n;
  char last[1024];
} logs;

static void log_hook(kotte_log_level level, const char *msg, void *ctx) {
  logs *l = ctx;
  l->n++;
  strncpy(l->last, msg, sizeof l->last - 1);
}

static int free_from_loop(void *rt) {
  kotte_runtime_free(rt); /* must refuse: it would join its own thread */
  return 0;
}

static void the_log_hook_gets_lines_at_or_above_its_level(void **state) {
  logs l = { 0 };
  kotte_set_log_hook(log_hook, &l, KOTTE_LOG_ERROR);
  kotte_runtime *rt;
  assert_int_equal(kotte_runtime_new(&rt, NULL), 0);
  /* freeing the runtime from its own loop thread is refused with an error line */
  assert_int_equal(kotte_runtime_run(rt, free_from_loop, rt), 0);
  kotte_runtime_free(rt);
  kotte_set_log_hook(NULL, NULL, KOTTE_LOG_DEBUG);
  assert_true(l.n >= 1);
  assert_non_null(strstr(l.last, "loop thread"));
}

#define CHECK(lit) kotte_json_text_check(lit, sizeof(lit) - 1)

static void json_text_check_refuses_what_cjson_would_cut_short(void **state) {
  (void)state;
  assert_int_equal(CHECK("{\"a\":\"pw\\u00e9\\n\\t\\\"\"}\r\n\t "), 0);
  assert_int_equal(CHECK("{\"p\":\"pw\0tail\"}"), KOTTE_EBADJSON);  /* raw NUL in a string */
  assert_int_equal(CHECK("{\"p\":\"a\tb\"}"), KOTTE_EBADJSON);      /* raw tab in a string */
  assert_int_equal(CHECK("{\"p\":\"x\"}\0"), KOTTE_EBADJSON);        /* NUL between tokens */
  assert_int_equal(CHECK("\x01{}"), KOTTE_EBADJSON);
  assert_int_equal(CHECK("{\"p\":\"\\\x01\"}"), KOTTE_EBADJSON);   /* an escaped raw byte */
  assert_int_equal(CHECK("{\"p\":\"pw\\u0000tail\"}"), KOTTE_EINVAL);
  assert_int_equal(CHECK("{\"pw\\u0000\":1}"), KOTTE_EINVAL);        /* in a key too */
  /* an escaped backslash, then the text u0000: a legal string */
  assert_int_equal(CHECK("{\"p\":\"\\\\u0000\"}"), 0);
  assert_int_equal(CHECK("{\"p\":\"\\\\\\u0000\"}"), KOTTE_EINVAL);
  /* cJSON reads a \u escape without four hex digits as \u0000 */
  assert_int_equal(CHECK("{\"p\":\"pw\\uzzzztail\"}"), KOTTE_EBADJSON);
  assert_int_equal(CHECK("{\"p\":\"\\udu00e9\"}"), KOTTE_EBADJSON);
  assert_int_equal(CHECK("{\"p\":\"\\u000\"}"), KOTTE_EBADJSON);
  assert_int_equal(CHECK("{\"p\":\"\\u00"), KOTTE_EBADJSON);
  assert_int_equal(CHECK("{\"p\":\"\\uD83D\\ude00\\u00E9\"}"), 0);
  assert_int_equal(CHECK("\\u0000"), 0);                /* outside a string: cJSON refuses it */
  assert_int_equal(kotte_json_text_check(NULL, 0), 0);
  assert_int_equal(kotte_json_text_check(NULL, 1), KOTTE_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(strerror_never_returns_null),
    cmocka_unit_test(version_matches_the_header),
    cmocka_unit_test(tokens_are_43_char_base64url_and_distinct),
    cmocka_unit_test(token_validator_rejects_other_shapes),
    cmocka_unit_test(digest_encoding_matches_libsodium),
    cmocka_unit_test(utf8_check_follows_the_unicode_table),
    cmocka_unit_test(the_allocator_hook_sees_every_allocation),
    cmocka_unit_test(error_detail_never_describes_an_earlier_call),
    cmocka_unit_test(the_log_hook_gets_lines_at_or_above_its_level),
    cmocka_unit_test(json_text_check_refuses_what_cjson_would_cut_short),
  };
  return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
