/* Fernet decryption for Kotte's connections.json, over OpenSSL's libcrypto. */
#include "fernet.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PBKDF2_ITERATIONS 100000
#define SALT_BYTES 16
#define VERSION 0x80
#define HEADER_BYTES (1 + 8 + 16) /* version, timestamp, IV */
#define MAC_BYTES 32

int kotte_fernet_user_key(const char *master, size_t master_len, const char *user_id,
                          unsigned char key[KOTTE_FERNET_KEY_BYTES]) {
  if (master == NULL || user_id == NULL || master_len < KOTTE_FERNET_KEY_BYTES) return -1;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  if (EVP_Digest(user_id, strlen(user_id), digest, &dlen, EVP_sha256(), NULL) != 1) return -1;
  int ok = PKCS5_PBKDF2_HMAC(master, KOTTE_FERNET_KEY_BYTES, digest, SALT_BYTES,
                             PBKDF2_ITERATIONS, EVP_sha256(), KOTTE_FERNET_KEY_BYTES, key);
  return ok == 1 ? 0 : -1;
}

/* Base64 decoding for both alphabets, padding optional; -1 on bad input. */
static int b64_value(unsigned char c, int urlsafe) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == (urlsafe ? '-' : '+')) return 62;
  if (c == (urlsafe ? '_' : '/')) return 63;
  return -1;
}

static unsigned char *b64_decode(const char *s, size_t n, int urlsafe, size_t *out_len) {
  while (n > 0 && s[n - 1] == '=') n--;
  if (n % 4 == 1) return NULL;
  unsigned char *out = malloc(n * 3 / 4 + 1);
  if (out == NULL) return NULL;
  size_t w = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64_value((unsigned char)s[i], urlsafe);
    if (v < 0) {
      free(out);
      return NULL;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[w++] = (unsigned char)(acc >> bits);
    }
  }
  *out_len = w;
  return out;
}

void kotte_fernet_free(char *plain, size_t len) {
  if (plain == NULL) return;
  OPENSSL_cleanse(plain, len + 1);
  free(plain);
}

int kotte_fernet_open(const unsigned char key[KOTTE_FERNET_KEY_BYTES], const char *stored,
                      char **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  if (stored == NULL) return KOTTE_FERNET_BAD_FORMAT;
  size_t tlen, n;
  char *token = (char *)b64_decode(stored, strlen(stored), 0, &tlen);
  if (token == NULL) return KOTTE_FERNET_BAD_FORMAT;
  unsigned char *raw = b64_decode(token, tlen, 1, &n);
  free(token);
  if (raw == NULL) return KOTTE_FERNET_BAD_FORMAT;
  if (n < HEADER_BYTES + 16 + MAC_BYTES || raw[0] != VERSION ||
      (n - HEADER_BYTES - MAC_BYTES) % 16 != 0) {
    free(raw);
    return KOTTE_FERNET_BAD_FORMAT;
  }
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mlen = 0;
  if (HMAC(EVP_sha256(), key, 16, raw, n - MAC_BYTES, mac, &mlen) == NULL || mlen != MAC_BYTES ||
      CRYPTO_memcmp(mac, raw + n - MAC_BYTES, MAC_BYTES) != 0) {
    free(raw);
    return KOTTE_FERNET_BAD_KEY;
  }
  size_t clen = n - HEADER_BYTES - MAC_BYTES;
  char *plain = malloc(clen + 1);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int rc = KOTTE_FERNET_NOMEM, l1 = 0, l2 = 0;
  if (plain && ctx) {
    rc = KOTTE_FERNET_BAD_PLAIN;
    if (EVP_DecryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, key + 16, raw + 9) == 1 &&
        EVP_DecryptUpdate(ctx, (unsigned char *)plain, &l1, raw + HEADER_BYTES, (int)clen) == 1 &&
        EVP_DecryptFinal_ex(ctx, (unsigned char *)plain + l1, &l2) == 1)
      rc = KOTTE_FERNET_OK;
  }
  EVP_CIPHER_CTX_free(ctx);
  free(raw);
  if (rc != KOTTE_FERNET_OK) {
    kotte_fernet_free(plain, plain ? clen : 0);
    return rc;
  }
  plain[l1 + l2] = '\0';
  *out = plain;
  *out_len = (size_t)(l1 + l2);
  return KOTTE_FERNET_OK;
}
