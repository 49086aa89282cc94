/* Decrypting Kotte's saved credentials: Fernet tokens under a per-user key.
 *
 * Kotte (backend/app/core/credentials.py) seals each username and password
 * as a Fernet token under a key derived per user:
 *
 *     key  = PBKDF2-HMAC-SHA256(password = the first 32 bytes of
 *            MASTER_ENCRYPTION_KEY as raw text, salt = the first 16 bytes of
 *            SHA-256(user id), 100,000 iterations, 32 bytes)
 *
 * (Kotte urlsafe-base64 encodes it because that is the form Fernet takes;
 * the 32 bytes are the same.) A Fernet token (spec:
 * github.com/fernet/spec) is urlsafe base64 of
 *
 *     0x80 | timestamp (8) | IV (16) | AES-128-CBC ciphertext | HMAC-SHA256 (32)
 *
 * with the HMAC under key[0..16) over everything before it and AES under
 * key[16..32). connections.json stores base64 (standard alphabet) of the
 * token's text.
 *
 * libsodium has none of AES-CBC, HMAC-SHA256 or PBKDF2, so this uses
 * OpenSSL's libcrypto, linked into the import tool only, never into
 * libkotte.
 */
#ifndef KOTTE_IMPORT_FERNET_H
#define KOTTE_IMPORT_FERNET_H

#include <stddef.h>

#define KOTTE_FERNET_KEY_BYTES 32

/* Kotte's per-user key. @p master is MASTER_ENCRYPTION_KEY as Kotte read
 * it (at least 32 bytes; only the first 32 count). 0, or -1 on failure. */
int kotte_fernet_user_key(const char *master, size_t master_len, const char *user_id,
                          unsigned char key[KOTTE_FERNET_KEY_BYTES]);

/* Results of kotte_fernet_open(). */
enum {
  KOTTE_FERNET_OK = 0,
  KOTTE_FERNET_BAD_FORMAT = -1, /* not base64 of a Fernet token */
  KOTTE_FERNET_BAD_KEY = -2,    /* the HMAC does not verify: another key, or altered */
  KOTTE_FERNET_BAD_PLAIN = -3,  /* decrypts, but the padding is wrong */
  KOTTE_FERNET_NOMEM = -4
};

/* Opens one connections.json value (base64 of a Fernet token) into a
 * NUL-terminated plaintext in *out (malloc memory: wipe with
 * kotte_fernet_free()). Returns a KOTTE_FERNET_* value. */
int kotte_fernet_open(const unsigned char key[KOTTE_FERNET_KEY_BYTES], const char *stored,
                      char **out, size_t *out_len);

/* Wipes and frees a plaintext from kotte_fernet_open(). NULL is a no-op. */
void kotte_fernet_free(char *plain, size_t len);

#endif
