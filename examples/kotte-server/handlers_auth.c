/* The /api/v1/auth endpoints and /api/v1/session/status, as Kotte answers
 * them, and the session cookie they set. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "log.h"
#include "metrics.h"
#include "server.h"
#include "users.h"

/* ---- the session cookie (cookie.h) --------------------------------------- */

/* Sets ex->set_cookie to @p payload signed now, with Starlette's attributes
 * (path, Max-Age = SESSION_MAX_AGE, httponly, samesite=lax, secure in
 * production), written as Starlette writes them. */
static void sign_cookie(ks_ex *ex, const char *payload, size_t plen) {
  const ks_config *cfg = &ex->srv->cfg;
  char value[KS_COOKIE_VALUE_MAX + 1];
  ex->set_cookie[0] = '\0';
  if (ks_cookie_sign(&ex->srv->cookie_signer, payload, plen, ks_cookie_now(), value,
                     sizeof value) < 0)
    return;
  snprintf(ex->set_cookie, sizeof ex->set_cookie,
           "Set-Cookie: %s=%s; path=/; Max-Age=%lld; httponly; samesite=lax%s",
           cfg->session_cookie_name, value, (long long)cfg->session_max_age,
           cfg->production ? "; secure" : "");
  sodium_memzero(value, sizeof value);
}

void ks_set_session_cookie(ks_ex *ex, const char *id, const char *csrf) {
  if (id == NULL) { /* Starlette's answer to a session cleared by the request */
    const ks_config *cfg = &ex->srv->cfg;
    snprintf(ex->set_cookie, sizeof ex->set_cookie,
             "Set-Cookie: %s=null; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT; "
             "httponly; samesite=lax%s",
             cfg->session_cookie_name, cfg->production ? "; secure" : "");
    return;
  }
  char payload[KS_COOKIE_VALUE_MAX];
  int n = ks_cookie_session_payload(id, csrf && csrf[0] ? csrf : NULL, payload, sizeof payload);
  if (n > 0) sign_cookie(ex, payload, (size_t)n);
  else ex->set_cookie[0] = '\0';
  sodium_memzero(payload, sizeof payload);
}

void ks_session_cookie_read(ks_ex *ex) {
  const char *v;
  size_t vl;
  if (!ks_cookie_value(ex->req, ex->srv->cfg.session_cookie_name, &v, &vl)) return;
  ex->cookie_state = -1; /* present; good only if what follows says so */
  size_t plen;
  if (ks_cookie_unsign(&ex->srv->cookie_signer, v, vl, ks_cookie_now(),
                       ex->srv->cfg.session_max_age, &plen) != 0)
    return;
  if (ks_cookie_session_read(v, plen, ex->cookie_id, ex->cookie_csrf) != 0) return;
  ex->cookie_state = 1;
  sign_cookie(ex, v, plen); /* Starlette signs a non-empty session anew on every answer */
}

/* ---- login ------------------------------------------------------------ */

typedef struct login_ctx {
  char username[256]; /* as the client sent it, for the log */
  char user_id[256];
  char name[256];
  char csrf[KOTTE_TOKEN_LEN + 1];
} login_ctx;

static void log_auth(ks_ex *ex, kotte_log_level lvl, const char *event, const char *user_id,
                     const char *username, const char *msg) {
  cJSON *f = cJSON_CreateObject();
  if (f) {
    cJSON_AddStringToObject(f, "request_id", ex->request_id);
    if (user_id) cJSON_AddStringToObject(f, "user_id", user_id);
    if (username) cJSON_AddStringToObject(f, "username", username);
    cJSON_AddStringToObject(f, "ip", ex->client.text);
  }
  ks_log(lvl, event, f, msg);
}

static void noop_status(int status, void *ud) {
  (void)status;
  (void)ud;
}

static void on_session_created(int status, kotte_session *s, void *ud) {
  ks_ex *ex = ud;
  login_ctx *lc = ex->hctx;
  if (status != 0) {
    ks_reply_store_error(ex, status, "Session store");
    return;
  }
  ks_metrics_inc(ex->srv->metrics, KS_C_SESSIONS_CREATED);
  /* The id changes at every login; a session the client presented before
   * (possibly one planted on it) ends here. */
  if (ex->cookie_state == 1 && ex->srv->sessions && strcmp(ex->cookie_id, kotte_session_id(s)) != 0)
    kotte_session_delete(ex->srv->sessions, ex->cookie_id, noop_status, NULL);
  ks_set_session_cookie(ex, kotte_session_id(s), lc->csrf);
  kotte_session_free(s);
  log_auth(ex, KOTTE_LOG_INFO, "auth_success", lc->user_id, lc->name, "user logged in");
  cJSON *b = cJSON_CreateObject();
  if (b) {
    cJSON_AddStringToObject(b, "user_id", lc->user_id);
    cJSON_AddStringToObject(b, "username", lc->name);
    cJSON_AddBoolToObject(b, "authenticated", 1);
    cJSON_AddStringToObject(b, "csrf_token", lc->csrf);
  }
  ks_reply_json(ex, 200, b);
}

static void on_verified(int result, const char *user_id, const char *username, void *ud) {
  ks_ex *ex = ud;
  login_ctx *lc = ex->hctx;
  if (result == KS_USER_BUSY) {
    ks_metrics_inc(ex->srv->metrics, KS_C_LOGINS_BUSY);
    ks_reply_error(ex, 429, "RATE_LIMITED", "rate_limit",
                   "Rate limit exceeded. Please try again later.", NULL, 1);
    return;
  }
  if (result < 0) {
    ks_logf(KOTTE_LOG_ERROR, "users_unavailable", "users store failed: %s", kotte_strerror(result));
    ks_reply_error(ex, 503, "DB_UNAVAILABLE", "upstream", "Authentication service unavailable",
                   NULL, 1);
    return;
  }
  if (result != KS_USER_OK) {
    ks_metrics_inc(ex->srv->metrics, KS_C_LOGINS_FAILED);
    log_auth(ex, KOTTE_LOG_WARN, "auth_failed", NULL, lc->username, "failed login attempt");
    ks_reply_error(ex, 401, "AUTH_INVALID_SESSION", "authentication",
                   "Invalid username or password", NULL, 0);
    return;
  }
  if (ex->srv->sessions == NULL) {
    ks_reply_store_error(ex, KOTTE_ECLOSED, "Session store");
    return;
  }
  snprintf(lc->user_id, sizeof lc->user_id, "%s", user_id);
  snprintf(lc->name, sizeof lc->name, "%s", username);
  if (kotte_token_generate(lc->csrf) != 0) {
    ks_reply_store_error(ex, KOTTE_EINTERNAL, "Token generation");
    return;
  }
  /* Kotte's session: connection_config carries the username, the role is
   * "admin" for the user admin; the CSRF token lives in the session. */
  cJSON *d = cJSON_CreateObject();
  cJSON *cc = cJSON_AddObjectToObject(d, "connection_config");
  cJSON_AddStringToObject(cc, "username", lc->name);
  cJSON_AddStringToObject(d, "username", lc->name);
  cJSON_AddNullToObject(d, "graph_context");
  cJSON_AddStringToObject(cJSON_AddObjectToObject(d, "csrf_token"), "$secret", lc->csrf);
  cJSON_AddStringToObject(d, "role", strcmp(lc->name, "admin") == 0 ? "admin" : "user");
  char *data = cJSON_PrintUnformatted(d);
  ks_json_wipe_delete(d);
  if (data == NULL) {
    ks_reply_store_error(ex, KOTTE_ENOMEM, "Session store");
    return;
  }
  int rc = kotte_session_create(ex->srv->sessions, lc->user_id, data, on_session_created, ex);
  sodium_memzero(data, strlen(data));
  cJSON_free(data);
  if (rc != 0) ks_reply_store_error(ex, rc, "Session store");
}

/* Pydantic's messages for a missing or non-string field. */
static const char *string_field(ks_ex *ex, cJSON *body, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
  if (v == NULL) {
    ks_reply_invalid(ex, name, "Field required", "missing");
    return NULL;
  }
  if (!cJSON_IsString(v)) {
    ks_reply_invalid(ex, name, "Input should be a valid string", "string_type");
    return NULL;
  }
  return v->valuestring;
}

void ks_h_login(ks_ex *ex) {
  cJSON *body = ks_body_object(ex);
  if (body == NULL) return;
  const char *username = string_field(ex, body, "username");
  const char *password = username ? string_field(ex, body, "password") : NULL;
  if (username == NULL || password == NULL) {
    ks_json_wipe_delete(body);
    return;
  }
  login_ctx *lc = ks_ex_ctx(ex, sizeof *lc);
  if (lc == NULL) {
    ks_json_wipe_delete(body);
    ks_reply_store_error(ex, KOTTE_ENOMEM, "Login");
    return;
  }
  snprintf(lc->username, sizeof lc->username, "%s", username);
  ks_users_verify(ex->srv->users, username, password, on_verified, ex);
  ks_json_wipe_delete(body); /* the check works on its own copy */
}

/* ---- logout ------------------------------------------------------------ */

static void on_logout_deleted(int status, void *ud) {
  ks_ex *ex = ud;
  if (status != 0 && status != KOTTE_ENOTFOUND) {
    ks_reply_store_error(ex, status, "Session store");
    return;
  }
  ks_metrics_inc(ex->srv->metrics, KS_C_SESSIONS_DESTROYED);
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(ex->sdata, "username");
  log_auth(ex, KOTTE_LOG_INFO, "auth_logout", kotte_session_user_id(ex->session),
           cJSON_IsString(name) ? name->valuestring : NULL, "user logged out");
  ks_set_session_cookie(ex, NULL, NULL);
  cJSON *b = cJSON_CreateObject();
  if (b) cJSON_AddBoolToObject(b, "logged_out", 1);
  ks_reply_json(ex, 200, b);
}

void ks_h_logout(ks_ex *ex) {
  if (ex->srv->sessions == NULL) {
    ks_reply_store_error(ex, KOTTE_ECLOSED, "Session store");
    return;
  }
  int rc =
      kotte_session_delete(ex->srv->sessions, kotte_session_id(ex->session), on_logout_deleted, ex);
  if (rc != 0) ks_reply_store_error(ex, rc, "Session store");
}

/* ---- me ----------------------------------------------------------------- */

static void on_me_user(int result, const char *user_id, const char *username, void *ud) {
  ks_ex *ex = ud;
  if (result < 0) {
    ks_reply_error(ex, 503, "DB_UNAVAILABLE", "upstream", "Authentication service unavailable",
                   NULL, 1);
    return;
  }
  if (result != KS_USER_OK) {
    ks_reply_error(ex, 401, "AUTH_INVALID_SESSION", "authentication", "User not found", NULL, 0);
    return;
  }
  cJSON *b = cJSON_CreateObject();
  if (b) {
    cJSON_AddStringToObject(b, "user_id", user_id);
    cJSON_AddStringToObject(b, "username", username);
  }
  ks_reply_json(ex, 200, b);
}

void ks_h_me(ks_ex *ex) {
  const char *uid = kotte_session_user_id(ex->session);
  if (uid[0] == '\0') {
    ks_reply_error(ex, 401, "AUTH_INVALID_SESSION", "authentication", "Invalid session", NULL, 0);
    return;
  }
  ks_users_lookup(ex->srv->users, uid, on_me_user, ex);
}

/* ---- csrf-token ------------------------------------------------------------ */

static void reply_token(ks_ex *ex, const char *token) {
  cJSON *b = cJSON_CreateObject();
  if (b) cJSON_AddStringToObject(b, "csrf_token", token);
  ks_reply_json(ex, 200, b);
}

static void on_token_stored(int status, kotte_session *s, void *ud) {
  ks_ex *ex = ud;
  if (status == KOTTE_ENOTFOUND) {
    ks_reply_session_expired(ex);
    return;
  }
  if (status != 0) {
    ks_reply_store_error(ex, status, "Session store");
    return;
  }
  kotte_session_free(s);
  ks_set_session_cookie(ex, ex->cookie_id, ex->hctx); /* Kotte keeps it in the cookie too */
  reply_token(ex, ex->hctx);
}

void ks_h_csrf_token(ks_ex *ex) {
  const char *tok = ks_session_csrf(ex->sdata);
  if (tok) {
    if (strcmp(ex->cookie_csrf, tok) != 0) ks_set_session_cookie(ex, ex->cookie_id, tok);
    reply_token(ex, tok);
    return;
  }
  /* a session without a token (made by another client of the store):
   * mint one and keep it in the session, as Kotte does */
  char *token = ks_ex_ctx(ex, KOTTE_TOKEN_LEN + 1);
  if (token == NULL || kotte_token_generate(token) != 0 || ex->srv->sessions == NULL) {
    ks_reply_store_error(ex, token ? KOTTE_ECLOSED : KOTTE_ENOMEM, "Session store");
    return;
  }
  char patch[96];
  snprintf(patch, sizeof patch, "{\"csrf_token\":{\"$secret\":\"%s\"}}", token);
  int rc = kotte_session_update(ex->srv->sessions, kotte_session_id(ex->session), patch,
                                on_token_stored, ex);
  sodium_memzero(patch, sizeof patch);
  if (rc != 0) ks_reply_store_error(ex, rc, "Session store");
}

/* ---- session/status ----------------------------------------------------------- */

static const char *nonempty(const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* The port of a connection_config: 0 when absent (Kotte's default applies),
 * -1 when it is no port. */
static long config_port(const cJSON *cfg) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "port");
  if (v == NULL || cJSON_IsNull(v)) return 0;
  double d = -1;
  if (cJSON_IsNumber(v)) {
    d = v->valuedouble;
  } else if (cJSON_IsString(v) && v->valuestring[0] && strlen(v->valuestring) <= 5 &&
             strspn(v->valuestring, "0123456789") == strlen(v->valuestring)) {
    d = strtod(v->valuestring, NULL);
  }
  return d >= 1 && d <= 65535 && d == (double)(long)d ? (long)d : -1;
}

void ks_h_session_status(ks_ex *ex) {
  /* Kotte says "connected" when its process holds the session's graph
   * database connection. Every replica of libkotte's drop-in (re)opens it
   * from the shared session's connection_config, so the shared session says
   * it: connected when connection_config names a host, a database, a user
   * and a valid port, the rule of the drop-in's libkotte.kotte.db_pools.
   * target_of (the login's {"username": ...} is not a connection). This
   * server itself opens no graph database connection. */
  const cJSON *graph = cJSON_GetObjectItemCaseSensitive(ex->sdata, "graph_context");
  const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(ex->sdata, "connection_config");
  const char *host = nonempty(cfg, "host"), *db = nonempty(cfg, "database");
  long port = cJSON_IsObject(cfg) ? config_port(cfg) : -1;
  int connected = cJSON_IsObject(cfg) && host && db && nonempty(cfg, "user") && port >= 0;
  cJSON *b = cJSON_CreateObject();
  if (b) {
    cJSON_AddBoolToObject(b, "connected", connected);
    if (connected) {
      cJSON_AddStringToObject(b, "database", db);
      cJSON_AddStringToObject(b, "host", host);
      if (port > 0)
        cJSON_AddNumberToObject(b, "port", (double)port);
      else /* Kotte answers the config's port as it is: absent is null */
        cJSON_AddNullToObject(b, "port");
    } else {
      cJSON_AddNullToObject(b, "database");
      cJSON_AddNullToObject(b, "host");
      cJSON_AddNullToObject(b, "port");
    }
    if (cJSON_IsString(graph))
      cJSON_AddStringToObject(b, "current_graph", graph->valuestring);
    else
      cJSON_AddNullToObject(b, "current_graph");
  }
  ks_reply_json(ex, 200, b);
}
