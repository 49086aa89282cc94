/* Library initialisation, the clock, CSPRNG tokens and small validators. */
#include <sodium.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "core/internal.h"

static uv_once_t init_once = UV_ONCE_INIT;
static int init_status;

static void do_init(void) { init_status = sodium_init() < 0 ? KOTTE_EINTERNAL : 0; }

int kotte__init(void) {
  uv_once(&init_once, do_init);
  return init_status;
}

kotte_time kotte_clock_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (kotte_time)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int kotte_token_generate(char out[KOTTE_TOKEN_LEN + 1]) {
  unsigned char raw[32];
  if (kotte__init() != 0) return kotte__fail(KOTTE_EINTERNAL, "libsodium failed to initialise");
  randombytes_buf(raw, sizeof raw);
  sodium_bin2base64(out, KOTTE_TOKEN_LEN + 1, raw, sizeof raw,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero(raw, sizeof raw);
  return 0;
}

int kotte_token_is_valid(const char *s) {
  if (s == NULL) return 0;
  size_t i;
  for (i = 0; i < KOTTE_TOKEN_LEN; i++) {
    unsigned char c = (unsigned char)s[i];
    int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '_';
    if (!ok) return 0; /* also stops at an early NUL */
  }
  /* 43 base64 characters carry 258 bits: the last one may only encode the
   * 4 remaining bits of the 32 bytes followed by two zero bits. Decoding
   * with libsodium checks exactly that. */
  if (s[KOTTE_TOKEN_LEN] != '\0') return 0;
  unsigned char raw[32];
  size_t len = 0;
  return sodium_base642bin(raw, sizeof raw, s, KOTTE_TOKEN_LEN, NULL, &len, NULL,
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 && len == 32;
}

int kotte__user_id_valid(const char *user_id) {
  if (user_id == NULL || user_id[0] == '\0') return 0;
  return strnlen(user_id, KOTTE__MAX_USER_ID + 1) <= KOTTE__MAX_USER_ID;
}
