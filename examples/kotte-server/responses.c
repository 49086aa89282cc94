/* Answers: JSON bodies, Kotte's error envelope, the
 * headers every answer carries, and the access log line and metrics of
 * each exchange. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "log.h"
#include "metrics.h"
#include "server.h"

/* Kotte's SecurityHeadersMiddleware (the API-relevant part). */
static const char security_headers[] =
    "X-Content-Type-Options: nosniff\r\n"
    "X-Frame-Options: DENY\r\n"
    "X-XSS-Protection: 1; mode=block\r\n"
    "Referrer-Policy: strict-origin-when-cross-origin\r\n"
    "Cache-Control: no-store\r\n";

static void finish(ks_ex *ex, int status, const char *content_type, const char *body, size_t len) {
  ks_server *srv = ex->srv;
  char headers[2048 + sizeof ex->set_cookie];
  int n = snprintf(headers, sizeof headers, "%s%s%s%sX-Request-ID: %s\r\n%s%s%s%s",
                   security_headers, content_type ? "Content-Type: " : "",
                   content_type ? content_type : "", content_type ? "\r\n" : "", ex->request_id,
                   ex->set_cookie, ex->set_cookie[0] ? "\r\n" : "", ex->cors, ex->rl_headers);
  if (n < 0 || (size_t)n >= sizeof headers) headers[0] = '\0';
  /* a request the HTTP layer refused is answered and closed */
  ks_conn_respond(ex->conn, status, headers, body, len, ex->req == NULL);
  if (ex->set_cookie[0]) { /* a session cookie is a bearer credential */
    sodium_memzero(headers, sizeof headers);
    sodium_memzero(ex->set_cookie, sizeof ex->set_cookie);
  }

  double secs = (double)(uv_hrtime() - ex->start_ns) / 1e9;
  const char *method = ex->req ? http_method_str(ex->req->method) : "-";
  ks_metrics_request(srv->metrics, method, ex->endpoint, status, secs);

  /* the access line: no query string, no header values, no body */
  cJSON *f = cJSON_CreateObject();
  if (f) {
    cJSON_AddStringToObject(f, "request_id", ex->request_id);
    cJSON_AddStringToObject(f, "method", method);
    char path[256];
    snprintf(path, sizeof path, "%s", ex->req ? ex->req->path : "-");
    cJSON_AddStringToObject(f, "path", path);
    cJSON_AddStringToObject(f, "endpoint", ex->endpoint);
    cJSON_AddNumberToObject(f, "status_code", status);
    cJSON_AddNumberToObject(f, "duration_ms", secs * 1000.0);
    if (ex->req) cJSON_AddStringToObject(f, "client_ip", ex->client.text);
  }
  ks_log(status >= 500 ? KOTTE_LOG_WARN : KOTTE_LOG_INFO, "http_request", f, "request handled");

  kotte_session_free(ex->session);
  ks_json_wipe_delete(ex->sdata); /* session data holds the CSRF token */
  srv->exchanges--;
  sodium_memzero(ex->cookie_id, sizeof ex->cookie_id);
  sodium_memzero(ex->cookie_csrf, sizeof ex->cookie_csrf);
  if (ex->hctx) {
    sodium_memzero(ex->hctx, ex->hctx_size); /* may hold a CSRF token */
    free(ex->hctx);
  }
  free(ex);
}

void *ks_ex_ctx(ks_ex *ex, size_t size) {
  ex->hctx = calloc(1, size);
  ex->hctx_size = ex->hctx ? size : 0;
  return ex->hctx;
}

void ks_reply_raw(ks_ex *ex, int status, const char *content_type, const char *body, size_t len) {
  finish(ex, status, content_type, body, len);
}

void ks_reply_json(ks_ex *ex, int status, cJSON *body) {
  char *text = body ? cJSON_PrintUnformatted(body) : NULL;
  if (body) ks_json_wipe_delete(body);
  const char *out = text ? text : "null";
  size_t len = strlen(out);
  finish(ex, status, "application/json", out, len);
  if (text) {
    sodium_memzero(text, len); /* may hold a saved connection's password */
    cJSON_free(text);
  }
}

void ks_reply_error(ks_ex *ex, int status, const char *code, const char *category,
                    const char *message, cJSON *details, int retryable) {
  char ts[40];
  ks_iso_now(ts);
  cJSON *root = cJSON_CreateObject();
  cJSON *e = cJSON_CreateObject();
  if (root && e) {
    cJSON_AddItemToObject(root, "error", e);
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "category", category);
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddItemToObject(e, "details", details ? details : cJSON_CreateObject());
    cJSON_AddStringToObject(e, "request_id", ex->request_id);
    cJSON_AddStringToObject(e, "timestamp", ts);
    cJSON_AddBoolToObject(e, "retryable", retryable);
  } else {
    cJSON_Delete(e);
    cJSON_Delete(details);
  }
  ks_metrics_error(ex->srv->metrics, code, category);
  ks_reply_json(ex, status, root);
}

void ks_reply_auth_required(ks_ex *ex) {
  ks_reply_error(ex, 401, "AUTH_REQUIRED", "authentication", "Authentication required", NULL, 0);
}

void ks_reply_session_expired(ks_ex *ex) {
  ks_reply_error(ex, 401, "AUTH_SESSION_EXPIRED", "authentication", "Session expired or invalid",
                 NULL, 0);
}

void ks_reply_store_error(ks_ex *ex, int rc, const char *what) {
  char msg[160];
  /* The code's name only: kotte_error_detail() may name a file path,
   * which a client has no business seeing; it goes to the log instead. */
  cJSON *f = cJSON_CreateObject();
  if (f) {
    cJSON_AddStringToObject(f, "request_id", ex->request_id);
    cJSON_AddStringToObject(f, "error", kotte_err_name(rc));
    cJSON_AddStringToObject(f, "detail", kotte_error_detail());
  }
  snprintf(msg, sizeof msg, "%s failed: %s", what, kotte_strerror(rc));
  ks_log(KOTTE_LOG_ERROR, "store_error", f, msg);
  switch (rc) {
    case KOTTE_ETOOBIG:
      ks_reply_error(ex, 413, "QUERY_VALIDATION_ERROR", "validation", "Value too large", NULL, 0);
      return;
    case KOTTE_EIO:
    case KOTTE_ETIMEDOUT:
    case KOTTE_ECANCELED:
    case KOTTE_ECLOSED:
    case KOTTE_EDB:
    case KOTTE_EPOOLTIMEOUT:
    case KOTTE_ETOOMANYWAITERS:
    case KOTTE_ELOCK:
      snprintf(msg, sizeof msg, "%s unavailable", what);
      ks_reply_error(ex, 503, "DB_UNAVAILABLE", "upstream", msg, NULL, 1);
      return;
    default:
      ks_reply_error(ex, 500, "INTERNAL_ERROR", "internal", "An internal error occurred", NULL, 0);
  }
}

void ks_reply_invalid(ks_ex *ex, const char *field, const char *msg, const char *type) {
  cJSON *details = cJSON_CreateObject();
  cJSON *errors = cJSON_AddArrayToObject(details, "errors");
  cJSON *one = cJSON_CreateObject();
  if (errors && one) {
    cJSON *loc = cJSON_AddArrayToObject(one, "loc");
    cJSON_AddItemToArray(loc, cJSON_CreateString("body"));
    if (field) cJSON_AddItemToArray(loc, cJSON_CreateString(field));
    cJSON_AddStringToObject(one, "msg", msg);
    cJSON_AddStringToObject(one, "type", type);
    cJSON_AddItemToArray(errors, one);
  } else {
    cJSON_Delete(one);
  }
  ks_reply_error(ex, 422, "QUERY_VALIDATION_ERROR", "validation", "Request validation failed",
                 details, 0);
}

cJSON *ks_body_object(ks_ex *ex) {
  /* FastAPI decodes a JSON body as UTF-8 before parsing it: bytes that are
   * not UTF-8 get its 400, and never reach a store or a log line. */
  if (kotte_utf8_check(ex->req->body, ex->req->body_len) != ex->req->body_len) {
    cJSON *b = cJSON_CreateObject();
    if (b) cJSON_AddStringToObject(b, "detail", "There was an error parsing the body");
    ks_reply_json(ex, 400, b);
    return NULL;
  }
  const char *type = NULL, *msg = NULL;
  cJSON *j = ks_json_body_parse(ex->req, &type, &msg);
  if (j == NULL) ks_reply_invalid(ex, NULL, msg, type);
  return j;
}
