/* Sealing of session secrets with libsodium (see kpy_secret.h). */
#include "kpy_secret.h"

#include <sodium.h>
#include <string.h>

#include <kotte.h>

#define KPY_BLOB_VERSION 0x01
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define KEY_LEN crypto_aead_xchacha20poly1305_ietf_KEYBYTES

struct kpy_sealer {
  unsigned char *key; /* sodium_malloc'd, no access between calls */
};

int kpy_sealer_new(kpy_sealer **out, PyObject *key_material, const char *context) {
  *out = NULL;
  if (sodium_init() < 0) return KOTTE_EINTERNAL;
  if (context == NULL || strlen(context) != crypto_kdf_CONTEXTBYTES) return KOTTE_EINVAL;
  Py_buffer km;
  if (PyObject_GetBuffer(key_material, &km, PyBUF_SIMPLE) != 0) {
    PyErr_Clear();
    return KOTTE_EINVAL;
  }
  if (km.len < 1) {
    PyBuffer_Release(&km);
    return KOTTE_EINVAL;
  }
  kpy_sealer *s = calloc(1, sizeof *s);
  unsigned char *key = sodium_malloc(KEY_LEN);
  unsigned char master[crypto_kdf_KEYBYTES];
  if (s == NULL || key == NULL) {
    PyBuffer_Release(&km);
    free(s);
    sodium_free(key);
    return KOTTE_ENOMEM;
  }
  /* Any length of key material becomes a 256-bit master key; a purpose
   * specific subkey is derived from it so that the same MASTER_ENCRYPTION_KEY
   * can serve other uses without key reuse. */
  crypto_generichash(master, sizeof master, km.buf, (unsigned long long)km.len, NULL, 0);
  PyBuffer_Release(&km);
  crypto_kdf_derive_from_key(key, KEY_LEN, 1, context, master);
  sodium_memzero(master, sizeof master);
  sodium_mprotect_noaccess(key);
  s->key = key;
  *out = s;
  return 0;
}

void kpy_sealer_free(kpy_sealer *s) {
  if (s == NULL) return;
  sodium_free(s->key); /* sodium_free wipes */
  free(s);
}

PyObject *kpy_sealer_seal(kpy_sealer *s, PyObject *ad, PyObject *plaintext) {
  Py_buffer a, p;
  if (PyObject_GetBuffer(ad, &a, PyBUF_SIMPLE) != 0) return NULL;
  if (PyObject_GetBuffer(plaintext, &p, PyBUF_SIMPLE) != 0) {
    PyBuffer_Release(&a);
    return NULL;
  }
  Py_ssize_t n = 1 + NONCE_LEN + p.len + TAG_LEN;
  PyObject *out = PyBytes_FromStringAndSize(NULL, n);
  if (out != NULL) {
    unsigned char *b = (unsigned char *)PyBytes_AS_STRING(out);
    unsigned long long clen = 0;
    b[0] = KPY_BLOB_VERSION;
    randombytes_buf(b + 1, NONCE_LEN);
    sodium_mprotect_readonly(s->key);
    crypto_aead_xchacha20poly1305_ietf_encrypt(b + 1 + NONCE_LEN, &clen, p.buf,
                                               (unsigned long long)p.len, a.buf,
                                               (unsigned long long)a.len, NULL, b + 1, s->key);
    sodium_mprotect_noaccess(s->key);
  }
  PyBuffer_Release(&p);
  PyBuffer_Release(&a);
  return out;
}

PyObject *kpy_sealer_open(kpy_sealer *s, PyObject *ad, PyObject *blob, int *status) {
  *status = 0;
  Py_buffer a, c;
  if (PyObject_GetBuffer(ad, &a, PyBUF_SIMPLE) != 0) return NULL;
  if (PyObject_GetBuffer(blob, &c, PyBUF_SIMPLE) != 0) {
    PyBuffer_Release(&a);
    return NULL;
  }
  PyObject *out = NULL;
  const unsigned char *b = c.buf;
  if (c.len < 1 + NONCE_LEN + TAG_LEN || b[0] != KPY_BLOB_VERSION) {
    *status = KOTTE_EINVAL;
  } else {
    Py_ssize_t plen = c.len - 1 - NONCE_LEN - TAG_LEN;
    out = PyBytes_FromStringAndSize(NULL, plen);
    if (out != NULL) {
      unsigned long long mlen = 0;
      sodium_mprotect_readonly(s->key);
      int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
          (unsigned char *)PyBytes_AS_STRING(out), &mlen, NULL, b + 1 + NONCE_LEN,
          (unsigned long long)(c.len - 1 - NONCE_LEN), a.buf, (unsigned long long)a.len, b + 1,
          s->key);
      sodium_mprotect_noaccess(s->key);
      if (rc != 0) {
        Py_CLEAR(out);
        *status = KOTTE_EINTEGRITY;
      }
    }
  }
  PyBuffer_Release(&c);
  PyBuffer_Release(&a);
  return out;
}
