/* Session ids at rest: the keyed hash and the sealed copy (id_keys.h). */
#include <string.h>

#include "keyring/id_keys.h"

#define NPUB crypto_aead_xchacha20poly1305_ietf_NPUBBYTES

int kotte__id_keys_init(kotte__id_keys *k, const unsigned char *secret, size_t secret_len,
                        const char *who) {
  memset(k, 0, sizeof *k);
  if (secret == NULL) return kotte__fail(KOTTE_EINVAL, "%s session backend: a secret is required", who);
  if (secret_len < 16)
    return kotte__fail(KOTTE_EKEY, "%s session backend: the secret must have at least 16 bytes",
                       who);
  k->seal = sodium_malloc(32);
  k->hash = sodium_malloc(32);
  if (k->seal == NULL || k->hash == NULL) {
    kotte__id_keys_free(k);
    return KOTTE_ENOMEM;
  }
  unsigned char master[crypto_kdf_KEYBYTES];
  crypto_generichash(master, sizeof master, secret, secret_len, NULL, 0);
  crypto_kdf_derive_from_key(k->hash, 32, 1, "kotte-si", master);
  crypto_kdf_derive_from_key(k->seal, 32, 2, "kotte-si", master);
  sodium_memzero(master, sizeof master);
  sodium_mprotect_readonly(k->hash);
  sodium_mprotect_noaccess(k->seal);
  return 0;
}

void kotte__id_keys_free(kotte__id_keys *k) {
  sodium_free(k->seal); /* wipes */
  sodium_free(k->hash);
  k->seal = k->hash = NULL;
}

void kotte__id_hash(const kotte__id_keys *k, const char *token, char out[KOTTE__ID_HASH_LEN + 1]) {
  unsigned char h[32];
  crypto_generichash(h, sizeof h, (const unsigned char *)token, strlen(token), k->hash, 32);
  kotte__b64url_digest32(out, h); /* not secret: the storage holds it */
}

void kotte__id_seal(const kotte__id_keys *k, const char *token, const char *hash,
                    unsigned char out[KOTTE__ID_SEALED_LEN]) {
  unsigned char *nonce = out + 1;
  out[0] = 1;
  randombytes_buf(nonce, NPUB);
  sodium_mprotect_readonly(k->seal);
  crypto_aead_xchacha20poly1305_ietf_encrypt(out + 1 + NPUB, NULL, (const unsigned char *)token,
                                             KOTTE_SESSION_ID_LEN, (const unsigned char *)hash,
                                             KOTTE__ID_HASH_LEN, NULL, nonce, k->seal);
  sodium_mprotect_noaccess(k->seal);
}

int kotte__id_open(const kotte__id_keys *k, const unsigned char *blob, size_t len,
                   const char *hash, char out[KOTTE_SESSION_ID_LEN + 1]) {
  if (len != KOTTE__ID_SEALED_LEN || blob[0] != 1) return KOTTE_EINTEGRITY;
  sodium_mprotect_readonly(k->seal);
  int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
      (unsigned char *)out, NULL, NULL, blob + 1 + NPUB, (unsigned long long)len - 1 - NPUB,
      (const unsigned char *)hash, strlen(hash), blob + 1, k->seal);
  sodium_mprotect_noaccess(k->seal);
  out[KOTTE_SESSION_ID_LEN] = '\0';
  return rc == 0 ? 0 : KOTTE_EINTEGRITY;
}
