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

/* Value of a base64url character, or -1. */
static int b64url_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

/* Checked by hand rather than by decoding with sodium_base642bin(): this
 * runs on every request, and the decode was a tenth of the client's
 * instructions per request in the PostgreSQL benchmark. It only checks the
 * form (alphabet, length, the canonical last character), which is all the
 * decode established; the characters are not secret-dependent branches of
 * any consequence (a malformed id is refused either way). */
int kotte_token_is_valid(const char *s) {
  if (s == NULL) return 0;
  int v = 0;
  for (size_t i = 0; i < KOTTE_TOKEN_LEN; i++)
    if ((v = b64url_value((unsigned char)s[i])) < 0) return 0; /* also stops at an early NUL */
  /* 43 characters carry 258 bits for 256: the last one encodes the final 4
   * bits and two zero bits, so only every fourth value is canonical. */
  return s[KOTTE_TOKEN_LEN] == '\0' && (v & 3) == 0;
}

int kotte__user_id_valid(const char *user_id) {
  if (user_id == NULL || user_id[0] == '\0') return 0;
  return strnlen(user_id, KOTTE__MAX_USER_ID + 1) <= KOTTE__MAX_USER_ID;
}
