/* The one sealer and its key memory (aead.h). */
#include "keyring/aead.h"

#include <sodium.h>
#include <string.h>

#include "core/internal.h"

_Static_assert(KOTTE__AEAD_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");
_Static_assert(KOTTE__AEAD_NONCE_BYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
               "nonce size");
_Static_assert(KOTTE__AEAD_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag size");

void kotte__aead_seal(const unsigned char key[KOTTE__AEAD_KEY_BYTES], const void *ad,
                      size_t ad_len, const void *pt, size_t pt_len, unsigned char *out) {
  unsigned char *nonce = out;
  randombytes_buf(nonce, KOTTE__AEAD_NONCE_BYTES);
  crypto_aead_xchacha20poly1305_ietf_encrypt(out + KOTTE__AEAD_NONCE_BYTES, NULL, pt, pt_len, ad,
                                             ad_len, NULL, nonce, key);
}

int kotte__aead_open(const unsigned char key[KOTTE__AEAD_KEY_BYTES], const void *ad,
                     size_t ad_len, const unsigned char *in, size_t in_len, unsigned char *pt) {
  if (in_len < KOTTE__AEAD_OVERHEAD) return -1;
  return crypto_aead_xchacha20poly1305_ietf_decrypt(pt, NULL, NULL, in + KOTTE__AEAD_NONCE_BYTES,
                                                    in_len - KOTTE__AEAD_NONCE_BYTES, ad, ad_len,
                                                    in, key) == 0
             ? 0
             : -1;
}

int kotte__key_pages_new(kotte__key_pages *k, size_t len) {
  memset(k, 0, sizeof *k);
  if (uv_mutex_init(&k->mu) != 0) return KOTTE_EINTERNAL;
  k->p = sodium_malloc(len);
  if (k->p == NULL) {
    uv_mutex_destroy(&k->mu);
    return KOTTE_ENOMEM;
  }
  k->len = len;
  return 0;
}

void kotte__key_pages_lock(kotte__key_pages *k, int readable) {
  k->readable = readable;
  if (readable) sodium_mprotect_readonly(k->p);
  else sodium_mprotect_noaccess(k->p);
}

const unsigned char *kotte__key_pages_acquire(kotte__key_pages *k) {
  if (k->readable) return k->p;
  uv_mutex_lock(&k->mu);
  if (k->users++ == 0) sodium_mprotect_readonly(k->p);
  uv_mutex_unlock(&k->mu);
  return k->p;
}

void kotte__key_pages_release(kotte__key_pages *k) {
  if (k->readable) return;
  uv_mutex_lock(&k->mu);
  if (--k->users == 0) sodium_mprotect_noaccess(k->p);
  uv_mutex_unlock(&k->mu);
}

void kotte__key_pages_free(kotte__key_pages *k) {
  if (k->p == NULL) return;
  sodium_free(k->p); /* wipes, whatever the protection */
  uv_mutex_destroy(&k->mu);
  memset(k, 0, sizeof *k);
}
