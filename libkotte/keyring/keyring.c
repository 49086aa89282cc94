/* The key ring: key forms, key ids, per-subject subkeys, and the blob
 * format around the one sealer (aead.h). Keys stay in key pages that are
 * inaccessible except while a seal or open is using them. */
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "keyring/aead.h"
#include "keyring/keyring_internal.h"

#define KEY_BYTES 32
#define RAW_ID_BYTES 8
#define BLOB_VERSION 1
#define HEADER_BYTES (1 + RAW_ID_BYTES)

_Static_assert(HEADER_BYTES + KOTTE__AEAD_OVERHEAD == KOTTE_SEAL_OVERHEAD,
               "KOTTE_SEAL_OVERHEAD must match the blob format");
_Static_assert(crypto_kdf_KEYBYTES == KEY_BYTES, "master keys are KDF keys");
_Static_assert(KOTTE__AEAD_KEY_BYTES == KEY_BYTES, "subkeys are AEAD keys");

/* Frozen: changing any of these changes every derived key or id. */
#define PASSPHRASE_SALT_LABEL "libkotte MASTER_ENCRYPTION_KEY passphrase v1"
#define PASSPHRASE_OPSLIMIT 3
#define PASSPHRASE_MEMLIMIT (64u * 1024u * 1024u)
#define PASSPHRASE_MIN_CHARS 32
#define KEY_ID_LABEL "libkotte key id v1"
#define SUBJECT_LABEL "libkotte subject v1"
static const char kdf_context[crypto_kdf_CONTEXTBYTES] = { 'k', 'o', 't', 't',
                                                           'e', 'K', 'R', '1' };

struct kotte_keyring {
  atomic_int refs;
  size_t n;
  /* n * KEY_BYTES, key 0 is current; shared by every thread: readable
   * while at least one seal or open runs, inaccessible otherwise */
  kotte__key_pages keys;
  unsigned char (*raw_ids)[RAW_ID_BYTES];
  char (*ids)[KOTTE_KEY_ID_LEN + 1];
  atomic_ullong opens;
};

/* ---- parsing the configured forms --------------------------------------- */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static size_t utf8_chars(const char *s, size_t n) {
  size_t chars = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) chars++;
  return chars;
}

static int decode_hex(const char *s, size_t n, unsigned char *out) {
  if (n != 2 * KEY_BYTES) return -1;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return -1;
  }
  size_t len = 0;
  return sodium_hex2bin(out, KEY_BYTES, s, n, NULL, &len, NULL) == 0 && len == KEY_BYTES ? 0 : -1;
}

static int decode_base64(const char *s, size_t n, unsigned char *out) {
  static const int variants[] = { sodium_base64_VARIANT_ORIGINAL,
                                  sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
                                  sodium_base64_VARIANT_URLSAFE,
                                  sodium_base64_VARIANT_URLSAFE_NO_PADDING };
  if (n != 43 && n != 44) return -1;
  for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
    size_t len = 0;
    const char *end = NULL;
    if (sodium_base642bin(out, KEY_BYTES, s, n, NULL, &len, &end, variants[v]) == 0 &&
        len == KEY_BYTES && end == s + n)
      return 0;
  }
  return -1;
}

static int derive_passphrase(const char *s, size_t n, unsigned char *out) {
  unsigned char salt[crypto_generichash_BYTES];
  crypto_generichash(salt, sizeof salt, (const unsigned char *)PASSPHRASE_SALT_LABEL,
                     strlen(PASSPHRASE_SALT_LABEL), NULL, 0);
  _Static_assert(crypto_pwhash_SALTBYTES <= crypto_generichash_BYTES, "salt fits");
  return crypto_pwhash(out, KEY_BYTES, s, n, salt, PASSPHRASE_OPSLIMIT, PASSPHRASE_MEMLIMIT,
                       crypto_pwhash_ALG_ARGON2ID13);
}

static int all_same(const unsigned char *k) {
  unsigned char diff = 0;
  for (size_t i = 1; i < KEY_BYTES; i++) diff |= (unsigned char)(k[i] ^ k[0]);
  return diff == 0;
}

#define EXPECTED                                                                         \
  "expected 32 random bytes as base64 (44 characters, e.g. from `openssl rand -base64 32`) " \
  "or as hex (64 characters), or a passphrase of at least 32 characters"

/* Turns one configured key (already trimmed) into 32 bytes at @p out. */
static int parse_key(const char *s, size_t n, const char *where, unsigned char *out) {
  if (decode_hex(s, n, out) == 0 || decode_base64(s, n, out) == 0) {
    if (all_same(out))
      return kotte__fail(KOTTE_EKEY, "%s: the 32 key bytes are all the same value, not random; %s",
                         where, EXPECTED);
    return 0;
  }
  size_t chars = utf8_chars(s, n);
  if (chars < PASSPHRASE_MIN_CHARS)
    return kotte__fail(KOTTE_EKEY, "%s: %s; got %zu characters", where, EXPECTED, chars);
  if (derive_passphrase(s, n, out) != 0)
    return kotte__fail(KOTTE_ENOMEM, "%s: the passphrase derivation (Argon2id, 64 MiB) failed "
                                     "for lack of memory", where);
  return 0;
}

static void trim(const char **s, size_t *n) {
  while (*n && is_space(**s)) (*s)++, (*n)--;
  while (*n && is_space((*s)[*n - 1])) (*n)--;
}

/* ---- construction ------------------------------------------------------- */

static void key_id_of(const unsigned char *key, unsigned char raw[RAW_ID_BYTES],
                      char hex[KOTTE_KEY_ID_LEN + 1]) {
  crypto_generichash(raw, RAW_ID_BYTES, (const unsigned char *)KEY_ID_LABEL,
                     strlen(KEY_ID_LABEL), key, KEY_BYTES);
  sodium_bin2hex(hex, KOTTE_KEY_ID_LEN + 1, raw, RAW_ID_BYTES);
}

static void ring_destroy(kotte_keyring *kr) {
  kotte__key_pages_free(&kr->keys); /* wipes */
  kotte__free(kr->raw_ids);
  kotte__free(kr->ids);
  kotte__free(kr);
}

/* Adds the key at slot kr->n unless it duplicates an earlier one. */
static void keep_unless_duplicate(kotte_keyring *kr) {
  unsigned char *k = kr->keys.p + kr->n * KEY_BYTES;
  for (size_t i = 0; i < kr->n; i++) {
    if (sodium_memcmp(kr->keys.p + i * KEY_BYTES, k, KEY_BYTES) == 0) {
      sodium_memzero(k, KEY_BYTES);
      return;
    }
  }
  key_id_of(k, kr->raw_ids[kr->n], kr->ids[kr->n]);
  kr->n++;
}

int kotte_keyring_new(kotte_keyring **out, const char *current, const char *previous) {
  kotte__clear_detail();
  if (out == NULL) return KOTTE_EINVAL;
  *out = NULL;
  if (current == NULL || current[0] == '\0')
    return kotte__fail(KOTTE_EINVAL, "MASTER_ENCRYPTION_KEY (the current key) is not set; %s",
                       EXPECTED);
  if (kotte__init() != 0) return KOTTE_EINTERNAL;
  size_t slots = 1;
  if (previous)
    for (const char *p = previous; *p; p++) slots += *p == ',';
  slots++;
  kotte_keyring *kr = kotte__calloc(1, sizeof *kr);
  if (kr == NULL) return KOTTE_ENOMEM;
  atomic_init(&kr->refs, 1);
  atomic_init(&kr->opens, 0);
  int rc = kotte__key_pages_new(&kr->keys, slots * KEY_BYTES);
  if (rc != 0) {
    kotte__free(kr);
    return rc;
  }
  kr->raw_ids = kotte__calloc(slots, RAW_ID_BYTES);
  kr->ids = kotte__calloc(slots, KOTTE_KEY_ID_LEN + 1);
  if (kr->raw_ids == NULL || kr->ids == NULL) {
    ring_destroy(kr);
    return KOTTE_ENOMEM;
  }
  const char *s = current;
  size_t n = strlen(current);
  trim(&s, &n);
  rc = parse_key(s, n, "MASTER_ENCRYPTION_KEY (current key)", kr->keys.p);
  if (rc != 0) {
    ring_destroy(kr);
    return rc;
  }
  keep_unless_duplicate(kr);
  size_t item = 0;
  for (const char *p = previous; p && *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    const char *k = p;
    item++;
    trim(&k, &len);
    if (len > 0) {
      char where[96];
      snprintf(where, sizeof where, "MASTER_ENCRYPTION_KEYS_PREVIOUS (item %zu)", item);
      if ((rc = parse_key(k, len, where, kr->keys.p + kr->n * KEY_BYTES)) != 0) {
        ring_destroy(kr);
        return rc;
      }
      keep_unless_duplicate(kr);
    }
    p = comma ? comma + 1 : p + len;
    if (!comma) break;
  }
  kotte__key_pages_lock(&kr->keys, 0);
  *out = kr;
  return 0;
}

int kotte_keyring_from_env(kotte_keyring **out) {
  kotte__clear_detail();
  return kotte_keyring_new(out, getenv("MASTER_ENCRYPTION_KEY"),
                           getenv("MASTER_ENCRYPTION_KEYS_PREVIOUS"));
}

kotte_keyring *kotte__keyring_ref(kotte_keyring *kr) {
  atomic_fetch_add(&kr->refs, 1);
  return kr;
}

void kotte_keyring_free(kotte_keyring *kr) {
  if (kr == NULL || atomic_fetch_sub(&kr->refs, 1) != 1) return;
  ring_destroy(kr);
}

const char *kotte_keyring_current_id(const kotte_keyring *kr) { return kr ? kr->ids[0] : ""; }

size_t kotte_keyring_count(const kotte_keyring *kr) { return kr ? kr->n : 0; }

const char *kotte_keyring_key_id(const kotte_keyring *kr, size_t i) {
  return (kr && i < kr->n) ? kr->ids[i] : NULL;
}

int kotte_keyring_has_key(const kotte_keyring *kr, const char *key_id) {
  if (kr == NULL || key_id == NULL) return 0;
  for (size_t i = 0; i < kr->n; i++)
    if (strcmp(kr->ids[i], key_id) == 0) return 1;
  return 0;
}

uint64_t kotte__keyring_open_count(kotte_keyring *kr) { return atomic_load(&kr->opens); }

const volatile unsigned char *kotte__keyring_key_memory(kotte_keyring *kr) { return kr->keys.p; }

/* ---- sealing ------------------------------------------------------------ */

size_t kotte_keyring_sealed_size(size_t pt_len) { return pt_len + KOTTE_SEAL_OVERHEAD; }

/* The subkey of key @p slot for @p subject. */
static void subkey_for(kotte_keyring *kr, size_t slot, const char *subject,
                       unsigned char sub[KEY_BYTES]) {
  unsigned char h[8];
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, sizeof h);
  crypto_generichash_update(&st, (const unsigned char *)SUBJECT_LABEL, sizeof SUBJECT_LABEL);
  crypto_generichash_update(&st, (const unsigned char *)subject, strlen(subject));
  crypto_generichash_final(&st, h, sizeof h);
  uint64_t id = 0;
  for (int i = 7; i >= 0; i--) id = (id << 8) | h[i];
  const unsigned char *keys = kotte__key_pages_acquire(&kr->keys);
  crypto_kdf_derive_from_key(sub, KEY_BYTES, id, kdf_context, keys + slot * KEY_BYTES);
  kotte__key_pages_release(&kr->keys);
}

/*
 * The AEAD's associated data: the blob header (version and key id), the
 * subject with its length, and the caller's ad. The subject is bound here as
 * well as in the subkey, so that even two subjects whose subkey ids collided
 * could never open each other's blobs.
 */
typedef struct full_ad {
  unsigned char stack[512];
  unsigned char *p;
  size_t len;
} full_ad;

static int full_ad_build(full_ad *f, const unsigned char *header, const char *subject,
                         const void *ad, size_t ad_len) {
  size_t slen = strlen(subject);
  if (slen > UINT32_MAX) return KOTTE_EINVAL;
  f->len = HEADER_BYTES + 4 + slen + ad_len;
  f->p = f->len <= sizeof f->stack ? f->stack : kotte__malloc(f->len);
  if (f->p == NULL) return KOTTE_ENOMEM;
  unsigned char *w = f->p;
  memcpy(w, header, HEADER_BYTES);
  w += HEADER_BYTES;
  for (int i = 0; i < 4; i++) *w++ = (unsigned char)(slen >> (8 * i));
  memcpy(w, subject, slen);
  w += slen;
  if (ad_len) memcpy(w, ad, ad_len);
  return 0;
}

static void full_ad_free(full_ad *f) {
  if (f->p != f->stack) kotte__free(f->p);
}

int kotte_keyring_seal(kotte_keyring *kr, const char *subject, const void *ad, size_t ad_len,
                       const void *pt, size_t pt_len, unsigned char *out, size_t out_cap,
                       size_t *out_len) {
  kotte__clear_detail();
  if (out_len) *out_len = 0;
  if (kr == NULL || subject == NULL || out == NULL || (ad == NULL && ad_len) ||
      (pt == NULL && pt_len) || pt_len > SIZE_MAX - KOTTE_SEAL_OVERHEAD)
    return KOTTE_EINVAL;
  if (out_cap < kotte_keyring_sealed_size(pt_len))
    return kotte__fail(KOTTE_EINVAL, "seal: the output buffer is too small");
  out[0] = BLOB_VERSION;
  memcpy(out + 1, kr->raw_ids[0], RAW_ID_BYTES);
  full_ad f;
  int rc = full_ad_build(&f, out, subject, ad, ad_len);
  if (rc != 0) return rc;
  unsigned char sub[KEY_BYTES];
  subkey_for(kr, 0, subject, sub);
  kotte__aead_seal(sub, f.p, f.len, pt, pt_len, out + HEADER_BYTES);
  sodium_memzero(sub, sizeof sub);
  full_ad_free(&f);
  if (out_len) *out_len = kotte_keyring_sealed_size(pt_len);
  return 0;
}

int kotte_keyring_blob_key_id(const unsigned char *blob, size_t len,
                              char out[KOTTE_KEY_ID_LEN + 1]) {
  kotte__clear_detail();
  if (blob == NULL || len < KOTTE_SEAL_OVERHEAD || blob[0] != BLOB_VERSION) {
    if (out) out[0] = '\0';
    return KOTTE_EINTEGRITY;
  }
  sodium_bin2hex(out, KOTTE_KEY_ID_LEN + 1, blob + 1, RAW_ID_BYTES);
  return 0;
}

/* Plaintexts carry their length in front, so kotte_secret_free() can wipe
 * all of it; 16 bytes keep the text aligned like any allocation. */
#define SECRET_PREFIX 16

static char *secret_alloc(size_t n) {
  unsigned char *p = kotte__malloc(SECRET_PREFIX + n + 1);
  if (p == NULL) return NULL;
  memcpy(p, &n, sizeof n);
  return (char *)p + SECRET_PREFIX;
}

void kotte_secret_free(char *secret) {
  if (secret == NULL) return;
  unsigned char *p = (unsigned char *)secret - SECRET_PREFIX;
  size_t n;
  memcpy(&n, p, sizeof n);
  sodium_memzero(p, SECRET_PREFIX + n + 1);
  kotte__free(p);
}

int kotte_keyring_open(kotte_keyring *kr, const char *subject, const void *ad, size_t ad_len,
                       const unsigned char *blob, size_t blob_len, char **out,
                       size_t *out_len) {
  kotte__clear_detail();
  if (out) *out = NULL;
  if (out_len) *out_len = 0;
  if (kr == NULL || subject == NULL || out == NULL || (ad == NULL && ad_len) || blob == NULL)
    return KOTTE_EINVAL;
  atomic_fetch_add(&kr->opens, 1);
  if (blob_len < KOTTE_SEAL_OVERHEAD || blob[0] != BLOB_VERSION)
    return kotte__fail(KOTTE_EINTEGRITY, "sealed value is truncated or of an unknown version");
  size_t slot;
  for (slot = 0; slot < kr->n; slot++)
    if (memcmp(kr->raw_ids[slot], blob + 1, RAW_ID_BYTES) == 0) break;
  if (slot == kr->n) {
    char id[KOTTE_KEY_ID_LEN + 1];
    sodium_bin2hex(id, sizeof id, blob + 1, RAW_ID_BYTES);
    return kotte__fail(KOTTE_EKEY, "sealed with key %s, which is not in the key ring (add it to "
                                   "MASTER_ENCRYPTION_KEYS_PREVIOUS)", id);
  }
  size_t pt_len = blob_len - KOTTE_SEAL_OVERHEAD;
  char *pt = secret_alloc(pt_len);
  if (pt == NULL) return KOTTE_ENOMEM;
  full_ad f;
  int rc = full_ad_build(&f, blob, subject, ad, ad_len);
  if (rc != 0) {
    kotte_secret_free(pt);
    return rc;
  }
  unsigned char sub[KEY_BYTES];
  subkey_for(kr, slot, subject, sub);
  int bad = kotte__aead_open(sub, f.p, f.len, blob + HEADER_BYTES, blob_len - HEADER_BYTES,
                             (unsigned char *)pt);
  sodium_memzero(sub, sizeof sub);
  full_ad_free(&f);
  if (bad) {
    kotte_secret_free(pt);
    return kotte__fail(KOTTE_EINTEGRITY, "sealed value failed its integrity check (altered, "
                                         "moved from another record, or a different key)");
  }
  pt[pt_len] = '\0';
  *out = pt;
  if (out_len) *out_len = pt_len;
  return 0;
}
