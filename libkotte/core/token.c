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
  kotte__clear_detail();
  unsigned char raw[32];
  if (kotte__init() != 0) return kotte__fail(KOTTE_EINTERNAL, "libsodium failed to initialise");
  randombytes_buf(raw, sizeof raw);
  sodium_bin2base64(out, KOTTE_TOKEN_LEN + 1, raw, sizeof raw,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero(raw, sizeof raw);
  return 0;
}

/* base64url by hand, for the two per-request paths only (everything else
 * uses libsodium): checking a token's form and encoding a 32-byte digest
 * that is not secret (the keyed hash the PostgreSQL table is keyed by).
 * libsodium's constant-time codec cost a tenth of the client's instructions
 * per request each in the PostgreSQL benchmark; constant time buys nothing
 * for either (a malformed token is refused whatever its bytes; the digest
 * is stored in the clear). Both are tested against libsodium. */
static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Value + 1 of each base64url character; 0 for every other byte. */
static const unsigned char B64URL_VALUE[256] = {
  ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
  ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
  ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
  ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
  ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
  ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
  ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
  ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

int kotte_token_is_valid(const char *s) {
  if (s == NULL) return 0;
  unsigned v = 0;
  for (size_t i = 0; i < KOTTE_TOKEN_LEN; i++)
    if ((v = B64URL_VALUE[(unsigned char)s[i]]) == 0) return 0; /* also stops at an early NUL */
  /* 43 characters carry 258 bits for 256: the last one encodes the final 4
   * bits and two zero bits, so only every fourth value is canonical. */
  return s[KOTTE_TOKEN_LEN] == '\0' && ((v - 1) & 3) == 0;
}

void kotte__b64url_digest32(char out[KOTTE_TOKEN_LEN + 1], const unsigned char in[32]) {
  char *o = out;
  size_t i = 0;
  for (; i + 3 <= 32; i += 3) {
    unsigned w = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
    *o++ = B64URL[w >> 18];
    *o++ = B64URL[(w >> 12) & 63];
    *o++ = B64URL[(w >> 6) & 63];
    *o++ = B64URL[w & 63];
  }
  unsigned w = (unsigned)in[30] << 8 | in[31]; /* 2 bytes left: 3 characters */
  *o++ = B64URL[w >> 10];
  *o++ = B64URL[(w >> 4) & 63];
  *o++ = B64URL[(w << 2) & 63];
  *o = '\0';
}

int kotte__user_id_valid(const char *user_id) {
  if (user_id == NULL || user_id[0] == '\0') return 0;
  return strnlen(user_id, KOTTE__MAX_USER_ID + 1) <= KOTTE__MAX_USER_ID;
}

int kotte__user_id_check(const char *user_id) {
  if (!kotte__user_id_valid(user_id) || !kotte__utf8_valid(user_id, strlen(user_id)))
    return kotte__fail(KOTTE_EINVAL, "user id must be 1 to %d bytes of UTF-8",
                       KOTTE__MAX_USER_ID);
  return 0;
}
