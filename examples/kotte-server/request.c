/* Cookie, CSRF header and JSON body of a request (see request.h). */
#include "request.h"

#include <string.h>
#include <strings.h>

#include <sodium.h>

int ks_cookie_value(const ks_request *req, const char *name, const char **value, size_t *len) {
  /* Starlette reads the first Cookie header; within it, the last pair
   * with the name wins, its value unquoted. Hand-written: a Cookie header
   * is "k=v; k=v" pairs (RFC 6265 section 4.2.1), and no library already
   * linked here splits it. */
  const ks_header *h = ks_request_header(req, "cookie");
  if (h == NULL) return 0;
  size_t name_len = strlen(name);
  const char *v = NULL;
  size_t vl = 0;
  const char *p = h->value, *end = h->value + h->value_len;
  while (p < end) {
    const char *semi = memchr(p, ';', (size_t)(end - p));
    const char *chunk_end = semi ? semi : end;
    const char *eq = memchr(p, '=', (size_t)(chunk_end - p));
    if (eq) {
      const char *k = p, *ke = eq;
      while (k < ke && (*k == ' ' || *k == '\t')) k++;
      while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
      if ((size_t)(ke - k) == name_len && memcmp(k, name, name_len) == 0) {
        const char *vs = eq + 1, *ve = chunk_end;
        while (vs < ve && (*vs == ' ' || *vs == '\t')) vs++;
        while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        if (ve - vs >= 2 && vs[0] == '"' && ve[-1] == '"') vs++, ve--;
        v = vs;
        vl = (size_t)(ve - vs);
      }
    }
    p = semi ? semi + 1 : end;
  }
  if (v == NULL) return 0;
  *value = v;
  *len = vl;
  return 1;
}

/* The token is stored as {"$secret": TOKEN}: the session store seals it
 * with the key ring before any backend sees it and hands it back marked
 * the same way (kotte/session.h), so neither the json_file journal nor
 * kotte_sessions ever holds it in clear. A plain string (a session written
 * before, or by another client of the store) is still read. */
const char *ks_session_csrf(const cJSON *sdata) {
  const cJSON *tok = cJSON_GetObjectItemCaseSensitive(sdata, "csrf_token");
  if (cJSON_IsObject(tok)) tok = cJSON_GetObjectItemCaseSensitive(tok, "$secret");
  return cJSON_IsString(tok) && tok->valuestring[0] ? tok->valuestring : NULL;
}

int ks_csrf_token_matches(const ks_request *req, const cJSON *sdata) {
  const ks_header *h = ks_request_header(req, "x-csrf-token");
  const char *tok = ks_session_csrf(sdata);
  return tok != NULL && h != NULL && h->value_len != 0 && strlen(tok) == h->value_len &&
         sodium_memcmp(tok, h->value, h->value_len) == 0;
}

static void wipe_strings(cJSON *j) {
  for (cJSON *it = j->child; it; it = it->next) {
    if (cJSON_IsString(it) && it->valuestring)
      sodium_memzero(it->valuestring, strlen(it->valuestring));
    else if (it->child)
      wipe_strings(it);
  }
}

void ks_json_wipe_delete(cJSON *j) {
  if (j == NULL) return;
  wipe_strings(j);
  cJSON_Delete(j);
}

static const char not_an_object[] =
    "Input should be a valid dictionary or object to extract fields from";

cJSON *ks_json_body_parse(const ks_request *req, const char **type, const char **msg) {
  const ks_header *ct = ks_request_header(req, "content-type");
  if (ct) {
    /* FastAPI reads a body as JSON only for application/json or
     * application/...+json; anything else fails validation. This also keeps
     * cross-site HTML forms (which cannot send JSON types) out. */
    const char *v = ct->value;
    size_t n = strcspn(v, "; \t");
    int json = (n == 16 && strncasecmp(v, "application/json", 16) == 0) ||
               (n > 17 && strncasecmp(v, "application/", 12) == 0 &&
                strncasecmp(v + n - 5, "+json", 5) == 0);
    if (!json) {
      *type = "model_attributes_type";
      *msg = not_an_object;
      return NULL;
    }
  }
  /* cJSON ends a string at a NUL, raw or escaped ("pw\u0000x" reads as
   * "pw") and takes raw control characters JSON does not allow: such a
   * body is refused, not read shortened. */
  int chk = kotte_json_text_check(req->body, req->body_len);
  if (chk != 0) {
    *type = chk == KOTTE_EINVAL ? "string_nul" : "json_invalid";
    *msg = chk == KOTTE_EINVAL ? "String should not contain NUL characters" : "JSON decode error";
    return NULL;
  }
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(req->body, req->body_len, &end, 0);
  if (j) {
    while (end < req->body + req->body_len &&
           (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
      end++;
  }
  if (j == NULL || end != req->body + req->body_len) {
    ks_json_wipe_delete(j);
    *type = "json_invalid";
    *msg = "JSON decode error";
    return NULL;
  }
  if (!cJSON_IsObject(j)) {
    ks_json_wipe_delete(j);
    *type = "model_attributes_type";
    *msg = not_an_object;
    return NULL;
  }
  return j;
}
