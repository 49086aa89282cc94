/* Private: how a backend keeps tokens (session ids) out of its storage,
 * shared by the session postgresql and json_file backends so that both
 * hide them alike.
 *
 * A backend stores under a keyed BLAKE2b hash of each id (base64url, 43
 * characters: the shape of an id, so tables and journals index it the
 * same way) and, only so that list_user can hand ids back, the id sealed
 * by the one sealer (aead.h; associated data: the hash, so a blob opens
 * only under its own row). Neither is a usable token. Both keys are derived
 * from the caller's secret (SESSION_SECRET_KEY): master = BLAKE2b(secret),
 * hash key = KDF(master, 1, "kotte-si"), seal key = KDF(master, 2,
 * "kotte-si"); the same secret gives the same hashes on every replica and
 * in both backends. Keys live in key pages (aead.h); the seal key is
 * inaccessible between uses, the hash key (used by every request) stays
 * read-only.
 *
 * Why not a kotte_keyring built from the secret: the sealed ids already in
 * tables and journals have this format (a format byte, no key id), and the
 * session secret has no rotation of its own.
 *
 * Threads: any, concurrently.
 */
#ifndef KOTTE_KEYRING_ID_KEYS_H
#define KOTTE_KEYRING_ID_KEYS_H

#include "core/internal.h"
#include "keyring/aead.h"

/* The hash: base64url of 32 bytes, 43 characters. */
#define KOTTE__ID_HASH_LEN KOTTE_TOKEN_LEN
/* A sealed id: format byte 1, then the 43 characters sealed (nonce,
 * ciphertext, tag). */
#define KOTTE__ID_SEALED_LEN (1 + KOTTE_TOKEN_LEN + KOTTE__AEAD_OVERHEAD)

typedef struct kotte__id_keys {
  kotte__key_pages seal; /* no access between uses */
  kotte__key_pages hash; /* read-only */
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
void kotte__id_seal(kotte__id_keys *k, const char *token, const char *hash,
                    unsigned char out[KOTTE__ID_SEALED_LEN]);

/* Opens a blob sealed for @p hash into @p out (43 characters + NUL).
 * 0 or KOTTE_EINTEGRITY (another key, another hash, damaged). */
int kotte__id_open(kotte__id_keys *k, const unsigned char *blob, size_t len, const char *hash,
                   char out[KOTTE_TOKEN_LEN + 1]);

#endif
