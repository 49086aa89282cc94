/* libFuzzer target: the request parts kotte-server's handlers trust, read
 * by the functions they use (examples/kotte-server/request.h): the
 * session cookie (found as Starlette finds it, its signature checked, its
 * payload read), the CSRF header against the session's token, and the JSON
 * body.
 *
 * Input: header lines "Name: value" separated by LF, an empty line, then
 * the body (any bytes). A pseudo header "Session-CSRF" gives the token the
 * session data holds ("-" for a session whose csrf_token is no string).
 * The header table is allocated at its exact size, as the HTTP layer does,
 * so reading past it is an ASan report.
 * Invariants: no crash, leak or undefined behaviour; a cookie value lies
 * inside the first Cookie field; ids and CSRF tokens read from a payload
 * (signed or not) are a well-formed token and a short enough string; the CSRF verdict is
 * exactly "X-CSRF-Token non-empty and byte-equal to the session's token";
 * a body that is accepted is an object, passed kotte_json_text_check(),
 * and prints, parses and prints again to the same text; a body refused for a NUL is
 * one kotte_json_text_check() finds an escaped NUL in. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "cookie.h"
#include "request.h"

static void fail(const char *why) {
  fprintf(stderr, "fuzz_request: %s\n", why);
  abort();
}

/* Splits the header block into a table of exactly @p *n entries. */
static ks_header *headers_of(const char *block, size_t len, unsigned *n) {
  char *copy = strndup(block, len); /* a NUL cuts the block short: http-parser refuses one */
  size_t lines = 1;
  for (const char *p = copy; *p; p++) lines += *p == '\n';
  ks_header *tmp = malloc(lines * sizeof *tmp);
  unsigned i = 0;
  for (char *line = copy, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = '\0';
    char *colon = strchr(line, ':');
    if (colon == NULL) continue;
    *colon = '\0';
    char *value = colon + 1;
    while (*value == ' ' || *value == '\t') value++;
    tmp[i].name = strdup(line);
    tmp[i].name_len = strlen(line);
    tmp[i].value = strdup(value);
    tmp[i].value_len = strlen(value);
    i++;
  }
  free(copy);
  ks_header *h = malloc((i ? i : 1) * sizeof *h);
  memcpy(h, tmp, i * sizeof *h);
  free(tmp);
  *n = i;
  return h;
}

static void check_cookie(const ks_request *req) {
  const char *v;
  size_t vl;
  if (!ks_cookie_value(req, "kotte_session", &v, &vl)) return;
  /* the value lies inside the first Cookie field */
  const ks_header *h = ks_request_header(req, "cookie");
  if (h == NULL || v < h->value || v + vl > h->value + h->value_len) fail("cookie value not from the first Cookie field");
  static ks_cookie_signer signer;
  static int ready;
  if (!ready) {
    if (ks_cookie_signer_init(&signer, "fuzz-secret-key-0123456789", 26) != 0) fail("signer");
    ready = 1;
  }
  size_t plen;
  /* a signature that verifies: only by chance, or from a seed signed with
   * the key above; either way the payload is read like any other */
  if (ks_cookie_unsign(&signer, v, vl, 1700000000, 1209600, &plen) != 0) {
    /* and the payload reader must hold up on bytes no signature covered */
    plen = vl;
  }
  if (plen > vl) fail("payload longer than the value");
  char id[KOTTE_SESSION_ID_LEN + 1], csrf[KOTTE_TOKEN_LEN + 1];
  if (ks_cookie_session_read(v, plen, id, csrf) == 0) {
    if (!kotte_token_is_valid(id)) fail("session id read from a cookie is no token");
    if (strlen(csrf) > KOTTE_TOKEN_LEN) fail("csrf token read from a cookie is too long");
  }
  sodium_memzero(id, sizeof id);
  sodium_memzero(csrf, sizeof csrf);
}

static void check_csrf(const ks_request *req) {
  const ks_header *s = ks_request_header(req, "session-csrf");
  cJSON *sdata = cJSON_CreateObject();
  if (sdata == NULL) return;
  if (s && strcmp(s->value, "-") == 0)
    cJSON_AddNumberToObject(sdata, "csrf_token", 1);
  else if (s)
    cJSON_AddStringToObject(sdata, "csrf_token", s->value);
  const ks_header *h = ks_request_header(req, "x-csrf-token");
  int expect = s && strcmp(s->value, "-") != 0 && h && h->value_len > 0 &&
               strcmp(h->value, s->value) == 0;
  if (ks_csrf_token_matches(req, sdata) != expect) fail("CSRF verdict differs from byte equality");
  cJSON_Delete(sdata);
}

static void check_body(const ks_request *req) {
  const char *type = NULL, *msg = NULL;
  cJSON *j = ks_json_body_parse(req, &type, &msg);
  int chk = kotte_json_text_check(req->body, req->body_len);
  if (j == NULL) {
    if (type == NULL || msg == NULL) fail("refused without a reason");
    if (strcmp(type, "string_nul") == 0 && chk != KOTTE_EINVAL) fail("string_nul without a NUL");
    return;
  }
  if (!cJSON_IsObject(j) || chk != 0) fail("accepted a body that is no object or fails the check");
  /* printed, parsed and printed again: the same text (a tree compare
   * would trip over duplicate keys, which JSON allows) */
  char *text = cJSON_PrintUnformatted(j);
  if (text) {
    cJSON *back = cJSON_Parse(text);
    char *again = back ? cJSON_PrintUnformatted(back) : NULL;
    if (again == NULL || strcmp(text, again) != 0) fail("accepted body does not print back");
    cJSON_free(again);
    cJSON_Delete(back);
    cJSON_free(text);
  }
  ks_json_wipe_delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *d = (const char *)data;
  const char *sep = memmem(d, size, "\n\n", 2);
  size_t hlen = sep ? (size_t)(sep - d) : size;
  size_t boff = sep ? hlen + 2 : size;
  ks_request req;
  memset(&req, 0, sizeof req);
  req.headers = headers_of(d, hlen, &req.nheaders);
  req.body_len = size - boff;
  req.body = malloc(req.body_len + 1);
  memcpy(req.body, d + boff, req.body_len);
  req.body[req.body_len] = '\0';
  req.path = "/api/v1/connections";
  req.query = "";
  req.remote = "127.0.0.1";

  check_cookie(&req);
  check_csrf(&req);
  check_body(&req);

  for (unsigned i = 0; i < req.nheaders; i++) {
    free((char *)req.headers[i].name);
    free((char *)req.headers[i].value);
  }
  free(req.headers);
  free(req.body);
  return 0;
}
