/* Private: how a backend keeps session ids out of its storage, shared by
 * the postgresql and json_file backends so that both hide them alike.
 *
 * A backend stores under a keyed BLAKE2b hash of each id (base64url, 43
 * characters: the shape of an id, so tables and journals index it the
 * same way) and, only so that list_user can hand ids back, the id sealed
 * with XChaCha20-Poly1305 (associated data: the hash, so a blob opens only
 * under its own row). Neither is a usable token. Both keys are derived
 * from the caller's secret (SESSION_SECRET_KEY): master = BLAKE2b(secret),
 * hash key = KDF(master, 1, "kotte-si"), seal key = KDF(master, 2,
 * "kotte-si"); the same secret gives the same hashes on every replica and
 * in both backends. Keys live in sodium_malloc memory; the seal key is
 * inaccessible between uses, the hash key (used by every request) stays
 * read-only.
 *
 * Threads: hashing from any thread; sealing and opening toggle the seal
 * key's protection, so one thread at a time per kotte__id_keys.
 */
#ifndef KOTTE_SESSION_ID_KEYS_H
#define KOTTE_SESSION_ID_KEYS_H

#include <sodium.h>

#include "core/internal.h"
#include "kotte/session.h"

/* The hash: base64url of 32 bytes, 43 characters. */
#define KOTTE__ID_HASH_LEN KOTTE_SESSION_ID_LEN
/* A sealed id: format byte 1, nonce, ciphertext of the 43 characters, tag. */
#define KOTTE__ID_SEALED_LEN                                                  \
  (1 + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + KOTTE_SESSION_ID_LEN + \
   crypto_aead_xchacha20poly1305_ietf_ABYTES)

typedef struct kotte__id_keys {
  unsigned char *seal; /* sodium_malloc, no access between uses */
  unsigned char *hash; /* sodium_malloc, read-only */
} kotte__id_keys;

/* Derives both keys from @p secret (at least 16 bytes). @p who names the
 * backend in the error detail. 0, KOTTE_EINVAL, KOTTE_EKEY or KOTTE_ENOMEM. */
int kotte__id_keys_init(kotte__id_keys *k, const unsigned char *secret, size_t secret_len,
                        const char *who);

/* Wipes and frees the keys. A zeroed struct is a no-op. */
void kotte__id_keys_free(kotte__id_keys *k);

/* The keyed hash of @p token (43 characters + NUL into @p out). */
void kotte__id_hash(const kotte__id_keys *k, const char *token, char out[KOTTE__ID_HASH_LEN + 1]);

/* Seals @p token (43 characters) bound to @p hash. */
void kotte__id_seal(const kotte__id_keys *k, const char *token, const char *hash,
                    unsigned char out[KOTTE__ID_SEALED_LEN]);

/* Opens a blob sealed for @p hash into @p out (43 characters + NUL).
 * 0 or KOTTE_EINTEGRITY (another key, another hash, damaged). */
int kotte__id_open(const kotte__id_keys *k, const unsigned char *blob, size_t len,
                   const char *hash, char out[KOTTE_SESSION_ID_LEN + 1]);

#endif
