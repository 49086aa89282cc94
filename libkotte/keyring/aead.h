/* Private: the one sealer of libkotte and the memory its keys live in.
 *
 * Everything libkotte encrypts goes through kotte__aead_seal(): libsodium's
 * XChaCha20-Poly1305 (IETF) with a random 192-bit nonce per seal and
 * associated data that binds the blob to where it belongs. The callers
 * differ only in where the key comes from and what they bind:
 *  - the key ring (keyring.c, kotte/keyring.h): a per-subject subkey of a
 *    master key; blob = version, key id, then the sealed part;
 *  - the session id keys (id_keys.h): a key derived from the session
 *    secret; blob = format byte, then the sealed part.
 * The sealed part is always nonce || ciphertext || tag.
 *
 * Long-lived keys stay in kotte__key_pages: sodium_malloc() memory (guard
 * pages, locked against swapping, wiped when freed), writable only while
 * they are derived, then inaccessible between uses (or read-only, for a
 * key that every request reads). Nowhere else does libkotte call
 * sodium_malloc() or crypto_aead_*.
 */
#ifndef KOTTE_KEYRING_AEAD_H
#define KOTTE_KEYRING_AEAD_H

#include <stddef.h>
#include <uv.h>

#define KOTTE__AEAD_KEY_BYTES 32
#define KOTTE__AEAD_NONCE_BYTES 24
#define KOTTE__AEAD_TAG_BYTES 16
/* What kotte__aead_seal() adds to a plaintext. */
#define KOTTE__AEAD_OVERHEAD (KOTTE__AEAD_NONCE_BYTES + KOTTE__AEAD_TAG_BYTES)

/* Seals @p pt (@p pt_len bytes) under @p key, binding @p ad, into @p out:
 * pt_len + KOTTE__AEAD_OVERHEAD bytes (nonce, ciphertext, tag). Never fails. */
void kotte__aead_seal(const unsigned char key[KOTTE__AEAD_KEY_BYTES], const void *ad,
                      size_t ad_len, const void *pt, size_t pt_len, unsigned char *out);

/* Opens @p in (@p in_len bytes from kotte__aead_seal()) into @p pt
 * (in_len - KOTTE__AEAD_OVERHEAD bytes). 0, or -1 when the blob is too
 * short, was altered, or belongs to another key or ad (@p pt is then
 * unspecified: wipe it if it may hold anything). */
int kotte__aead_open(const unsigned char key[KOTTE__AEAD_KEY_BYTES], const void *ad,
                     size_t ad_len, const unsigned char *in, size_t in_len, unsigned char *pt);

/* Key memory shared by every thread that seals or opens with it. */
typedef struct kotte__key_pages {
  unsigned char *p; /* sodium_malloc */
  size_t len;
  int readable;      /* resting state: read-only (1) or no access (0) */
  uv_mutex_t mu;     /* guards users */
  unsigned int users; /* acquisitions in progress */
} kotte__key_pages;

/* Allocates @p len bytes of key memory, writable until
 * kotte__key_pages_lock(). 0, KOTTE_ENOMEM or KOTTE_EINTERNAL. */
int kotte__key_pages_new(kotte__key_pages *k, size_t len);

/* Ends the writable phase: the pages rest read-only (@p readable) or
 * inaccessible from now on. */
void kotte__key_pages_lock(kotte__key_pages *k, int readable);

/* The key bytes, readable until the matching kotte__key_pages_release().
 * Thread-safe: the pages are readable while any thread holds them. */
const unsigned char *kotte__key_pages_acquire(kotte__key_pages *k);
void kotte__key_pages_release(kotte__key_pages *k);

/* Wipes and frees the pages. A zeroed struct is a no-op. */
void kotte__key_pages_free(kotte__key_pages *k);

#endif
