/*
 * Sealing of small secrets that the Python layer keeps inside session data
 * (the password of Kotte's connection_config): libsodium's
 * XChaCha20-Poly1305 (IETF) with a key held in sodium_malloc'd memory that
 * is readable only during a call.
 *
 * Blob layout: version byte 0x01 | 24-byte nonce | ciphertext + 16-byte tag.
 * The associated data (chosen by the caller) binds a blob to its owner and
 * field, so that a blob copied elsewhere does not open.
 */
#ifndef KPY_SECRET_H
#define KPY_SECRET_H

#include <Python.h>

typedef struct kpy_sealer kpy_sealer;

/*
 * A sealer whose key is derived from @p key_material (any length >= 1,
 * bytes-like) and @p context (exactly 8 bytes) with BLAKE2b and
 * crypto_kdf_derive_from_key. 0, KOTTE_EINVAL, KOTTE_ENOMEM or
 * KOTTE_EINTERNAL (libsodium could not be initialised).
 */
int kpy_sealer_new(kpy_sealer **out, PyObject *key_material, const char *context);

/* Wipes and frees the key. NULL is a no-op. */
void kpy_sealer_free(kpy_sealer *s);

/* Seals bytes-like @p plaintext under @p ad; returns bytes or NULL with an exception set. */
PyObject *kpy_sealer_seal(kpy_sealer *s, PyObject *ad, PyObject *plaintext);

/*
 * Opens a blob from kpy_sealer_seal(); returns bytes, or NULL with
 * libkotte.errors.IntegrityError-compatible code stored in *status
 * (KOTTE_EINTEGRITY for a wrong key, AD or a tampered blob, KOTTE_EINVAL
 * for a malformed one) and no Python exception set.
 */
PyObject *kpy_sealer_open(kpy_sealer *s, PyObject *ad, PyObject *blob, int *status);

#endif
