/* Kotte's session cookie: Starlette's SessionMiddleware format (cookie.h). */
#include "cookie.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#define SIG_LEN 20 /* HMAC-SHA1 */

/* The last '.' of the first @p len bytes of @p s, or NULL. */
static const char *last_dot(const char *s, size_t len) {
  while (len--)
    if (s[len] == '.') return s + len;
  return NULL;
}

int ks_cookie_signer_init(ks_cookie_signer *s, const char *secret, size_t len) {
  static const char salt[] = "itsdangerous.Signer" "signer"; /* salt + b"signer" */
  unsigned int n = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
           EVP_DigestUpdate(ctx, salt, sizeof salt - 1) == 1 &&
           EVP_DigestUpdate(ctx, secret, len) == 1 && EVP_DigestFinal_ex(ctx, s->key, &n) == 1 &&
           n == sizeof s->key;
  EVP_MD_CTX_free(ctx);
  return ok ? 0 : -1;
}

void ks_cookie_signer_wipe(ks_cookie_signer *s) { sodium_memzero(s->key, sizeof s->key); }

static int mac(const ks_cookie_signer *s, const char *data, size_t len,
               unsigned char out[SIG_LEN]) {
  unsigned int n = 0;
  return HMAC(EVP_sha1(), s->key, (int)sizeof s->key, (const unsigned char *)data, len, out, &n) &&
                 n == SIG_LEN
             ? 0
             : -1;
}

int ks_cookie_sign(const ks_cookie_signer *s, const char *payload, size_t plen, int64_t now,
                   char *out, size_t cap) {
  /* itsdangerous' int_to_bytes: big-endian, leading zero bytes dropped */
  unsigned char ts[8];
  size_t tn = 0;
  uint64_t t = (uint64_t)(now < 0 ? 0 : now);
  for (int i = 7; i >= 0; i--) {
    unsigned char b = (unsigned char)(t >> (8 * i));
    if (b || tn) ts[tn++] = b;
  }
  char ts64[16], sig64[32];
  sodium_bin2base64(ts64, sizeof ts64, ts, tn, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  size_t tl = strlen(ts64);
  if (plen + 1 + tl + 1 + 27 + 1 > cap || plen + 1 + tl + 1 + 27 > KS_COOKIE_VALUE_MAX) return -1;
  memcpy(out, payload, plen);
  out[plen] = '.';
  memcpy(out + plen + 1, ts64, tl);
  size_t signed_len = plen + 1 + tl;
  unsigned char sig[SIG_LEN];
  if (mac(s, out, signed_len, sig) != 0) return -1;
  sodium_bin2base64(sig64, sizeof sig64, sig, sizeof sig, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out[signed_len] = '.';
  memcpy(out + signed_len + 1, sig64, 27 + 1); /* 20 bytes: 27 characters, and the NUL */
  return (int)(signed_len + 1 + 27);
}

int64_t ks_cookie_now(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return (int64_t)time(NULL);
  return (int64_t)ts.tv_sec;
}

int ks_cookie_unsign(const ks_cookie_signer *s, const char *value, size_t len, int64_t now,
                     int64_t max_age, size_t *plen) {
  if (len > KS_COOKIE_VALUE_MAX) return -1;
  const char *dot2 = last_dot(value, len);
  if (dot2 == NULL) return -1;
  size_t signed_len = (size_t)(dot2 - value);
  const char *dot1 = last_dot(value, signed_len);
  if (dot1 == NULL) return -1;
  unsigned char sig[SIG_LEN + 1], want[SIG_LEN];
  size_t sn = 0;
  const char *end = NULL;
  if (sodium_base642bin(sig, sizeof sig, dot2 + 1, len - signed_len - 1, NULL, &sn, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != value + len || sn != SIG_LEN)
    return -1;
  if (mac(s, value, signed_len, want) != 0 || sodium_memcmp(sig, want, SIG_LEN) != 0) return -1;
  /* signed by us or by a replica holding the key: now the timestamp */
  unsigned char ts[9];
  size_t tn = 0;
  const char *ts_text = dot1 + 1;
  if (sodium_base642bin(ts, sizeof ts, ts_text, (size_t)(dot2 - ts_text), NULL, &tn, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != dot2 || tn > 8)
    return -1;
  uint64_t t = 0;
  for (size_t i = 0; i < tn; i++) t = (t << 8) | ts[i];
  if (t > (uint64_t)INT64_MAX) return -1;
  int64_t age = now - (int64_t)t;
  if (age < 0 || age > max_age) return -1; /* Starlette: SignatureExpired both ways */
  *plen = (size_t)(dot1 - value);
  return 0;
}

int ks_cookie_session_payload(const char *session_id, const char *csrf_token, char *out,
                              size_t cap) {
  if (!kotte_token_is_valid(session_id) || (csrf_token && !kotte_token_is_valid(csrf_token)))
    return -1;
  /* json.dumps() of Kotte's cookie session, separators and key order
   * included. Both values are base64url tokens (checked above), which JSON
   * writes as they are, so this is the exact text without a JSON writer
   * (cJSON's would leave out the blanks Python puts after ':' and ','). */
  char json[160];
  int n = csrf_token
              ? snprintf(json, sizeof json, "{\"session_id\": \"%s\", \"csrf_token\": \"%s\"}",
                         session_id, csrf_token)
              : snprintf(json, sizeof json, "{\"session_id\": \"%s\"}", session_id);
  if (n < 0 || (size_t)n >= sizeof json) return -1;
  size_t need = sodium_base64_ENCODED_LEN((size_t)n, sodium_base64_VARIANT_ORIGINAL);
  if (need > cap) {
    sodium_memzero(json, sizeof json);
    return -1;
  }
  sodium_bin2base64(out, cap, (const unsigned char *)json, (size_t)n,
                    sodium_base64_VARIANT_ORIGINAL);
  sodium_memzero(json, sizeof json);
  return (int)(need - 1);
}

int ks_cookie_session_read(const char *payload, size_t plen,
                           char session_id[KOTTE_SESSION_ID_LEN + 1],
                           char csrf_token[KOTTE_TOKEN_LEN + 1]) {
  session_id[0] = csrf_token[0] = '\0';
  unsigned char json[KS_COOKIE_VALUE_MAX];
  size_t n = 0;
  const char *end = NULL;
  if (sodium_base642bin(json, sizeof json - 1, payload, plen, NULL, &n, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != payload + plen)
    return -1;
  cJSON *j = cJSON_ParseWithLength((const char *)json, n);
  sodium_memzero(json, n);
  if (!cJSON_IsObject(j)) {
    cJSON_Delete(j);
    return -1;
  }
  const cJSON *sid = cJSON_GetObjectItemCaseSensitive(j, "session_id");
  const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "csrf_token");
  int rc = -1;
  if (cJSON_IsString(sid) && kotte_token_is_valid(sid->valuestring)) {
    memcpy(session_id, sid->valuestring, KOTTE_SESSION_ID_LEN + 1);
    if (cJSON_IsString(tok) && strlen(tok->valuestring) <= KOTTE_TOKEN_LEN)
      memcpy(csrf_token, tok->valuestring, strlen(tok->valuestring) + 1);
    rc = 0;
  }
  /* the values are bearer secrets: wipe them before cJSON frees them */
  for (cJSON *it = j->child; it; it = it->next)
    if (cJSON_IsString(it)) sodium_memzero(it->valuestring, strlen(it->valuestring));
  cJSON_Delete(j);
  return rc;
}

int ks_cookie_name_valid(const char *name) {
  /* RFC 6265: a token (RFC 2616), i.e. no CTLs, blanks or separators */
  if (name == NULL || *name == '\0' || strlen(name) > 64) return 0;
  for (const char *p = name; *p; p++)
    if (*p <= 32 || *p >= 127 || strchr("()<>@,;:\\\"/[]?={}", *p)) return 0;
  return 1;
}
