/*
 * libkotte — the key ring: the one place that seals anything.
 *
 * A kotte_keyring holds the master keys: the current one seals, previous
 * ones only open. Sealing is libsodium's XChaCha20-Poly1305 (IETF) with a
 * random 192-bit nonce per seal, under a subkey derived for each subject
 * (a user id) from the master key with libsodium's KDF. The associated data
 * binds every blob to its subject, to whatever the caller adds (the
 * credential store adds the connection id and the field name) and to the
 * key id, so a blob copied anywhere else fails to open with
 * KOTTE_EINTEGRITY instead of yielding someone else's plaintext. Keys live
 * in sodium_malloc() memory that is inaccessible (sodium_mprotect_noaccess)
 * between uses; opened plaintext is wiped when released. No error detail
 * and no log line ever contains a key, a plaintext or a sealed blob.
 *
 * Both stores use a ring: the credential store seals every saved
 * connection's user name and password (kotte/credential.h), the session
 * store the values marked secret inside session data (kotte/session.h,
 * kotte_session_options.keyring). A store keeps its own reference, so one
 * ring can serve both. An application may seal its own values with it, with
 * an associated-data label of its own.
 *
 * These declarations used to be part of kotte/credential.h, which still
 * includes this header: code that included only that one compiles
 * unchanged, with the same names and the same ABI.
 */
#ifndef KOTTE_KEYRING_H
#define KOTTE_KEYRING_H

#include "kotte/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kotte_keyring kotte_keyring;

/** Length of a key id (lowercase hex), without the NUL. */
#define KOTTE_KEY_ID_LEN 16

/** Bytes a sealed blob adds to its plaintext (version, key id, nonce, tag). */
#define KOTTE_SEAL_OVERHEAD 49

/**
 * Builds a key ring from configuration strings as the environment holds
 * them: @p current (MASTER_ENCRYPTION_KEY) seals and opens; @p previous
 * (MASTER_ENCRYPTION_KEYS_PREVIOUS: comma-separated, NULL or "" for none)
 * only opens. Surrounding whitespace of each key is ignored; a key listed
 * twice counts once. Each key is one of:
 *
 *  - 32 random bytes as hex: exactly 64 hex digits;
 *  - 32 random bytes as base64: standard or URL-safe alphabet, with or
 *    without padding (43 or 44 characters, `openssl rand -base64 32`;
 *    a Fernet key from Kotte is of this form);
 *  - a passphrase of at least 32 characters (UTF-8 code points), turned into
 *    a key by Argon2id (libsodium crypto_pwhash, ALG_ARGON2ID13, opslimit 3,
 *    memlimit 64 MiB, 32 bytes out) with a fixed salt, the first 16 bytes of
 *    BLAKE2b-256("libkotte MASTER_ENCRYPTION_KEY passphrase v1"), so that
 *    every replica derives the same key. That takes about 0.1-0.3 s per
 *    passphrase key. A previous passphrase must not contain a comma.
 *
 * Anything else (shorter, or 32 bytes that are all the same value) is
 * refused with KOTTE_EKEY and a kotte_error_detail() that says what is
 * expected (it never repeats the key). A key's id is the first 8 bytes of
 * keyed BLAKE2b("libkotte key id v1", key = the key) in hex: stable across
 * replicas, reveals nothing about the key.
 *
 * Returns 0, KOTTE_EINVAL (no current key), KOTTE_EKEY, KOTTE_ENOMEM or
 * KOTTE_EINTERNAL. Free with kotte_keyring_free(). Any thread.
 */
KOTTE_EXTERN int kotte_keyring_new(kotte_keyring **out, const char *current,
                                   const char *previous);

/** kotte_keyring_new() from the variables MASTER_ENCRYPTION_KEY and
 * MASTER_ENCRYPTION_KEYS_PREVIOUS. */
KOTTE_EXTERN int kotte_keyring_from_env(kotte_keyring **out);

/**
 * Drops the caller's reference. Stores that use the ring keep their own,
 * so a ring may be freed right after opening stores with it; the keys are
 * wiped when the last reference goes. NULL is a no-op. Any thread.
 */
KOTTE_EXTERN void kotte_keyring_free(kotte_keyring *kr);

/** The id of the current key (KOTTE_KEY_ID_LEN characters). Never NULL. */
KOTTE_EXTERN const char *kotte_keyring_current_id(const kotte_keyring *kr);

/** Number of keys, the current one included. */
KOTTE_EXTERN size_t kotte_keyring_count(const kotte_keyring *kr);

/** The id of key @p i (0 is the current key), or NULL when out of range. */
KOTTE_EXTERN const char *kotte_keyring_key_id(const kotte_keyring *kr, size_t i);

/** 1 if the ring holds the key with id @p key_id, else 0. */
KOTTE_EXTERN int kotte_keyring_has_key(const kotte_keyring *kr, const char *key_id);

/** The size of the blob that sealing @p plaintext_len bytes produces. */
KOTTE_EXTERN size_t kotte_keyring_sealed_size(size_t plaintext_len);

/**
 * Seals @p pt (@p pt_len bytes) under the current key for @p subject (for
 * example a user id; "" is allowed), binding @p ad (@p ad_len bytes, may be
 * NULL when 0) as associated data: the blob opens only with the same
 * subject and the same ad. Put a label of your own into @p ad (the
 * credential store uses "kotte.cred.v1"), so that blobs of one purpose
 * never open as another. Writes kotte_keyring_sealed_size(pt_len) bytes to
 * @p out (@p out_cap bytes available) and their number to *out_len.
 *
 * Blob format (version 1): 0x01, the 8 bytes of the key id, a 24-byte
 * nonce, then the ciphertext with its 16-byte Poly1305 tag.
 *
 * Returns 0, KOTTE_EINVAL (also when @p out_cap is too small) or
 * KOTTE_EINTERNAL. Thread-safe: any thread, concurrently.
 */
KOTTE_EXTERN int kotte_keyring_seal(kotte_keyring *kr, const char *subject, const void *ad,
                                    size_t ad_len, const void *pt, size_t pt_len,
                                    unsigned char *out, size_t out_cap, size_t *out_len);

/**
 * Opens a blob from kotte_keyring_seal() with the key it names. On success
 * *out is the plaintext with a NUL appended (*out_len excludes it); release
 * it with kotte_secret_free(), which wipes it.
 *
 * Returns 0; KOTTE_EINTEGRITY when the blob was altered, truncated, is of
 * an unknown version, or belongs to another subject, ad or key;
 * KOTTE_EKEY when it names a key that is not in the ring (retired too
 * early: the detail names the key id); KOTTE_EINVAL or KOTTE_ENOMEM.
 * Thread-safe.
 */
KOTTE_EXTERN int kotte_keyring_open(kotte_keyring *kr, const char *subject, const void *ad,
                                    size_t ad_len, const unsigned char *blob, size_t blob_len,
                                    char **out, size_t *out_len);

/**
 * The key id a blob names, into @p out (KOTTE_KEY_ID_LEN + 1 bytes).
 * Nothing is verified. Returns 0 or KOTTE_EINTEGRITY (not a version-1 blob).
 */
KOTTE_EXTERN int kotte_keyring_blob_key_id(const unsigned char *blob, size_t blob_len,
                                           char out[KOTTE_KEY_ID_LEN + 1]);

/** Wipes and frees a plaintext from libkotte (kotte_keyring_open()). NULL is a no-op. */
KOTTE_EXTERN void kotte_secret_free(char *secret);

#ifdef __cplusplus
}
#endif
#endif /* KOTTE_KEYRING_H */
