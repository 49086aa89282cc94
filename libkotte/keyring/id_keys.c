/* Session ids at rest: the keyed hash and the sealed copy (id_keys.h). */
#include "keyring/id_keys.h"

#include <sodium.h>
#include <string.h>

#define KEY_BYTES 32
#define SEALED_FORMAT 1

int kotte__id_keys_init(kotte__id_keys *k, const unsigned char *secret, size_t secret_len,
                        const char *who) {
  memset(k, 0, sizeof *k);
  if (secret == NULL) return kotte__fail(KOTTE_EINVAL, "%s session backend: a secret is required", who);
  if (secret_len < 16)
    return kotte__fail(KOTTE_EKEY, "%s session backend: the secret must have at least 16 bytes",
                       who);
  int rc = kotte__key_pages_new(&k->seal, KEY_BYTES);
  if (rc == 0 && (rc = kotte__key_pages_new(&k->hash, KEY_BYTES)) != 0)
    kotte__key_pages_free(&k->seal);
  if (rc != 0) return rc;
  unsigned char master[crypto_kdf_KEYBYTES];
  crypto_generichash(master, sizeof master, secret, secret_len, NULL, 0);
  crypto_kdf_derive_from_key(k->hash.p, KEY_BYTES, 1, "kotte-si", master);
  crypto_kdf_derive_from_key(k->seal.p, KEY_BYTES, 2, "kotte-si", master);
  sodium_memzero(master, sizeof master);
  kotte__key_pages_lock(&k->hash, 1);
  kotte__key_pages_lock(&k->seal, 0);
  return 0;
}

void kotte__id_keys_free(kotte__id_keys *k) {
  kotte__key_pages_free(&k->seal); /* wipes */
  kotte__key_pages_free(&k->hash);
}

void kotte__id_hash(const kotte__id_keys *k, const char *token, char out[KOTTE__ID_HASH_LEN + 1]) {
  unsigned char h[32];
  /* the hash key rests read-only: no acquire needed */
  crypto_generichash(h, sizeof h, (const unsigned char *)token, strlen(token), k->hash.p,
                     KEY_BYTES);
  kotte__b64url_digest32(out, h); /* not secret: the storage holds it */
}

void kotte__id_seal(kotte__id_keys *k, const char *token, const char *hash,
                    unsigned char out[KOTTE__ID_SEALED_LEN]) {
  out[0] = SEALED_FORMAT;
  const unsigned char *key = kotte__key_pages_acquire(&k->seal);
  kotte__aead_seal(key, hash, KOTTE__ID_HASH_LEN, token, KOTTE_TOKEN_LEN, out + 1);
  kotte__key_pages_release(&k->seal);
}

int kotte__id_open(kotte__id_keys *k, const unsigned char *blob, size_t len, const char *hash,
                   char out[KOTTE_TOKEN_LEN + 1]) {
  if (len != KOTTE__ID_SEALED_LEN || blob[0] != SEALED_FORMAT) return KOTTE_EINTEGRITY;
  const unsigned char *key = kotte__key_pages_acquire(&k->seal);
  int rc = kotte__aead_open(key, hash, strlen(hash), blob + 1, len - 1, (unsigned char *)out);
  kotte__key_pages_release(&k->seal);
  out[KOTTE_TOKEN_LEN] = '\0';
  return rc == 0 ? 0 : KOTTE_EINTEGRITY;
}
