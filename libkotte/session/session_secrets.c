/* Sealed secrets inside session data.
 *
 * A caller marks a value as secret by writing it as {"$secret": VALUE}
 * anywhere in the data (for example connection_config.password). Before
 * anything reaches a backend, the store replaces each marker with
 * {"$sealed": "<base64url blob>"}: VALUE's compact JSON sealed with the
 * store's key ring (XChaCha20-Poly1305, see kotte_keyring_seal()). Reads
 * turn it back into {"$secret": VALUE}, so a read-modify-write by the
 * caller keeps the value marked and never writes it back in clear.
 *
 * The associated data is a fixed label: a blob opens only as a session
 * secret. It is not bound to the session id (regenerate changes the id)
 * nor to the user (an update carries no user id to the store).
 */
#include <sodium.h>
#include <string.h>

#include "core/json.h"
#include "session/session_internal.h"

#define AD_LABEL "kotte.session.secret.v1"
#define SECRET_KEY "$secret"
#define SEALED_KEY "$sealed"

/* A one-member object {"<name>": value}, else NULL. */
static cJSON *marker(cJSON *obj, const char *name) {
  if (!cJSON_IsObject(obj) || obj->child == NULL || obj->child->next != NULL) return NULL;
  return strcmp(obj->child->string, name) == 0 ? obj->child : NULL;
}

static int seal_value(kotte_keyring *kr, cJSON *obj, cJSON *value) {
  char *text = cJSON_PrintUnformatted(value);
  if (text == NULL) return KOTTE_ENOMEM;
  size_t len = strlen(text);
  size_t blob_cap = kotte_keyring_sealed_size(len), blob_len = 0;
  unsigned char *blob = kotte__malloc(blob_cap);
  int rc = blob ? kotte_keyring_seal(kr, "", AD_LABEL, sizeof AD_LABEL - 1, text, len, blob,
                                     blob_cap, &blob_len)
                : KOTTE_ENOMEM;
  sodium_memzero(text, len);
  cJSON_free(text);
  if (rc != 0) {
    kotte__free(blob);
    return rc;
  }
  size_t b64_cap = sodium_base64_ENCODED_LEN(blob_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  char *b64 = kotte__malloc(b64_cap);
  if (b64 == NULL) {
    kotte__free(blob);
    return KOTTE_ENOMEM;
  }
  sodium_bin2base64(b64, b64_cap, blob, blob_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  kotte__free(blob);
  cJSON *sealed = cJSON_CreateString(b64);
  kotte__free(b64);
  if (sealed == NULL) return KOTTE_ENOMEM;
  /* Wipe the plaintext held in the tree before it is freed. */
  if (cJSON_IsString(value) && value->valuestring)
    sodium_memzero(value->valuestring, strlen(value->valuestring));
  cJSON_DeleteItemFromObjectCaseSensitive(obj, SECRET_KEY);
  cJSON_AddItemToObject(obj, SEALED_KEY, sealed);
  return 0;
}

static int open_value(kotte_keyring *kr, cJSON *obj, cJSON *sealed) {
  if (!cJSON_IsString(sealed)) return kotte__fail(KOTTE_EINTEGRITY, "session secret: bad blob");
  const char *b64 = sealed->valuestring;
  size_t b64_len = strlen(b64), blob_len = 0;
  unsigned char *blob = kotte__malloc(b64_len + 1);
  if (blob == NULL) return KOTTE_ENOMEM;
  if (sodium_base642bin(blob, b64_len + 1, b64, b64_len, NULL, &blob_len, NULL,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
    kotte__free(blob);
    return kotte__fail(KOTTE_EINTEGRITY, "session secret: blob is not base64url");
  }
  char *text = NULL;
  size_t len = 0;
  int rc = kotte_keyring_open(kr, "", AD_LABEL, sizeof AD_LABEL - 1, blob, blob_len, &text, &len);
  kotte__free(blob);
  if (rc != 0) return rc;
  cJSON *value = cJSON_ParseWithLength(text, len);
  kotte_secret_free(text);
  if (value == NULL) return kotte__fail(KOTTE_EINTEGRITY, "session secret: not JSON inside");
  cJSON_DeleteItemFromObjectCaseSensitive(obj, SEALED_KEY);
  cJSON_AddItemToObject(obj, SECRET_KEY, value);
  return 0;
}

/* Zeroes every string and number under @p node before the tree is freed. */
static void wipe(cJSON *node) {
  for (; node; node = node->next) {
    if (cJSON_IsString(node) && node->valuestring)
      sodium_memzero(node->valuestring, strlen(node->valuestring));
    else if (cJSON_IsNumber(node))
      node->valuedouble = 0, node->valueint = 0;
    wipe(node->child);
  }
}

/* Applies seal (@p sealing) or open to every marker under @p node. */
static int walk(kotte_keyring *kr, cJSON *node, int sealing, int depth) {
  if (depth > 64) return 0; /* cJSON limits nesting; markers that deep are not ours */
  cJSON *m = marker(node, sealing ? SECRET_KEY : SEALED_KEY);
  if (m) {
    if (kr == NULL)
      return kotte__fail(KOTTE_EKEY, "session data holds a %s value but the store has no key ring",
                         sealing ? SECRET_KEY : SEALED_KEY);
    return sealing ? seal_value(kr, node, m) : open_value(kr, node, m);
  }
  for (cJSON *c = node ? node->child : NULL; c; c = c->next) {
    int rc = walk(kr, c, sealing, depth + 1);
    if (rc != 0) return rc;
  }
  return 0;
}

/* 1 if a {"$sealed": ...} marker occurs under @p node. */
static int reserved(cJSON *node, int depth) {
  if (depth > 64 || node == NULL) return 0;
  if (marker(node, SEALED_KEY)) return 1;
  for (cJSON *c = node->child; c; c = c->next)
    if (reserved(c, depth + 1)) return 1;
  return 0;
}

int kotte__session_prepare(kotte_keyring *kr, const char *text, size_t max, char **out,
                           size_t *out_len) {
  *out = NULL;
  if (text == NULL) text = "{}";
  size_t len = strlen(text);
  if (max && len > 4 * max + 1024) return KOTTE_ETOOBIG;
  /* A raw control character (which PostgreSQL's jsonb refuses, so the
   * backends would differ) or an escaped NUL (which cJSON cuts a string
   * at) is refused before anything is stored. */
  int rc = kotte_json_text_check(text, len);
  if (rc != 0) return rc;
  cJSON *j;
  rc = kotte__json_parse_object(text, len, &j);
  if (rc != 0) return rc;
  int secrets = strstr(text, "\"" SECRET_KEY "\"") != NULL;
  /* Sealed blobs come only from this store: a caller cannot plant one. */
  if (strstr(text, "\"" SEALED_KEY "\"") && reserved(j, 0))
    rc = kotte__fail(KOTTE_EBADJSON, "session data may not contain {\"" SEALED_KEY "\": ...}");
  if (rc == 0 && secrets) rc = walk(kr, j, 1, 0);
  /* With nothing sealed the tree is the caller's text: compact that. */
  if (rc == 0) rc = secrets ? kotte__json_print(j, max, out, out_len)
                            : kotte__json_compact(text, len, max, out, out_len);
  if (secrets) wipe(j);
  cJSON_Delete(j);
  return rc;
}

int kotte__session_reveal(kotte_keyring *kr, const char *data, size_t len, char **out,
                          size_t *out_len) {
  *out = NULL;
  if (memmem(data, len, "\"" SEALED_KEY "\"", sizeof SEALED_KEY + 1) == NULL) return 0;
  cJSON *j;
  int rc = kotte__json_parse_object(data, len, &j);
  if (rc != 0) return KOTTE_ECORRUPT;
  rc = walk(kr, j, 0, 0);
  if (rc == 0) rc = kotte__json_print(j, 0, out, out_len);
  /* The revealed text is the only plaintext copy we keep; the tree goes. */
  if (rc != 0 && *out) {
    sodium_memzero(*out, strlen(*out));
    kotte__free(*out);
    *out = NULL;
  }
  wipe(j);
  cJSON_Delete(j);
  return rc;
}
