/* Routing: the route table, Kotte's rate limits and CSRF rule, session
 * loading, and the answers to requests no route takes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "log.h"
#include "server.h"

/* R_UNLIMITED: probes and scraping, never rate-limited or counted. Kotte
 * limits every path; a probe refused with 429 gets a healthy pod restarted
 * or taken out of its Service, a refused scrape loses the metrics. */
enum { R_PUBLIC = 0, R_SESSION = 1, R_UNLIMITED = 2 };

struct ks_route {
  enum http_method method;
  const char *pattern; /* a trailing "{id}" matches one non-empty segment */
  void (*fn)(ks_ex *ex);
  int flags;
};

static const ks_route routes[] = {
    {HTTP_GET, "/api/v1/health", ks_h_health, R_PUBLIC | R_UNLIMITED},
    {HTTP_GET, "/api/v1/ready", ks_h_ready, R_PUBLIC | R_UNLIMITED},
    {HTTP_GET, "/metrics", ks_h_metrics, R_PUBLIC | R_UNLIMITED},
    {HTTP_GET, "/api/v1/metrics", ks_h_metrics, R_PUBLIC | R_UNLIMITED},
    {HTTP_POST, "/api/v1/auth/login", ks_h_login, R_PUBLIC},
    {HTTP_POST, "/api/v1/auth/logout", ks_h_logout, R_SESSION},
    {HTTP_GET, "/api/v1/auth/me", ks_h_me, R_SESSION},
    {HTTP_GET, "/api/v1/auth/csrf-token", ks_h_csrf_token, R_SESSION},
    {HTTP_GET, "/api/v1/session/status", ks_h_session_status, R_SESSION},
    {HTTP_GET, "/api/v1/connections", ks_h_connections_list, R_SESSION},
    {HTTP_POST, "/api/v1/connections", ks_h_connections_create, R_SESSION},
    {HTTP_GET, "/api/v1/connections/{id}", ks_h_connection_get, R_SESSION},
    {HTTP_DELETE, "/api/v1/connections/{id}", ks_h_connection_delete, R_SESSION},
};
#define NROUTES (sizeof routes / sizeof routes[0])

/* 1 if @p path matches @p pattern; copies a {id} segment into @p param. */
static int match(const char *pattern, const char *path, char *param, size_t cap) {
  const char *brace = strstr(pattern, "{id}");
  if (brace == NULL) return strcmp(pattern, path) == 0;
  size_t pre = (size_t)(brace - pattern);
  if (strncmp(pattern, path, pre) != 0) return 0;
  const char *seg = path + pre;
  size_t n = strlen(seg);
  if (n == 0 || n >= cap || strchr(seg, '/')) return 0;
  memcpy(param, seg, n + 1);
  return 1;
}

static int valid_request_id(const char *s, size_t n) {
  if (n == 0 || n > 128) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == '.' || c == ':'))
      return 0;
  }
  return 1;
}

/* ---- rate limits: Kotte's RateLimitMiddleware ---------------------------
 *
 * Order: the client's limit is checked (and the request counted) as soon
 * as the request is routed, before CSRF and before any store is asked, so
 * a flood is refused for the price of a table lookup. The user's limit
 * needs the session, which the request loads anyway (for CSRF or for its
 * route); it is checked right after that load, and a request it refuses
 * is taken off the client's count, since Kotte counts no refused request.
 * A request that never loads its session (login, an unknown path) is
 * counted against its client only. */

static void rate_limited(ks_ex *ex, const ks_rl_verdict *v, const char *user_id) {
  if (v->log) { /* a key's first refusal in a minute; the rest are counted */
    cJSON *f = cJSON_CreateObject();
    if (f) {
      cJSON_AddStringToObject(f, "request_id", ex->request_id);
      cJSON_AddStringToObject(f, "method", http_method_str(ex->req->method));
      cJSON_AddStringToObject(f, "path", ex->req->path);
      if (user_id) cJSON_AddStringToObject(f, "user_id", user_id);
      cJSON_AddStringToObject(f, "ip", ex->client.text);
      cJSON_AddNumberToObject(f, "refused_since_last_log", v->suppressed);
    }
    const char *event = user_id ? "rate_limit_exceeded_user" : "rate_limit_exceeded_ip";
    char msg[400];
    snprintf(msg, sizeof msg, "SECURITY: %s on %s %.300s", event, http_method_str(ex->req->method),
             ex->req->path);
    ks_log(KOTTE_LOG_WARN, event, f, msg);
  }
  if (user_id)
    ex->srv->rl_refused_user++;
  else
    ex->srv->rl_refused_client++;
  snprintf(ex->rl_headers, sizeof ex->rl_headers, "Retry-After: %u\r\n", v->retry_after);
  ks_reply_error(ex, 429, "RATE_LIMITED", "rate_limit",
                 "Rate limit exceeded. Please try again later.", cJSON_CreateNull(), 1);
}

/* Writes the digits of @p v at @p p; returns how many. */
static size_t put_uint(char *p, unsigned v) {
  char tmp[10];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
  return n;
}

/* The X-RateLimit-* lines of an admitted request. Every request comes
 * here, so no snprintf: the reset line changes once a second and is kept. */
static void set_rl_headers(ks_ex *ex, unsigned limit, unsigned count) {
  static time_t reset_for;
  static char reset[48];
  static size_t reset_len;
  time_t now = time(NULL);
  if (now != reset_for || reset_len == 0) {
    reset_len = (size_t)snprintf(reset, sizeof reset, "\r\nX-RateLimit-Reset: %lld\r\n",
                                 (long long)now + 60);
    reset_for = now;
  }
  static const char l1[] = "X-RateLimit-Limit: ", l2[] = "\r\nX-RateLimit-Remaining: ";
  char *p = ex->rl_headers; /* 160 bytes: 19 + 10 + 25 + 10 + 48 fit */
  memcpy(p, l1, sizeof l1 - 1);
  p += sizeof l1 - 1;
  p += put_uint(p, limit);
  memcpy(p, l2, sizeof l2 - 1);
  p += sizeof l2 - 1;
  p += put_uint(p, count < limit ? limit - count : 0);
  memcpy(p, reset, reset_len + 1);
}

/* The client's limit. 1 if the request goes on; else it was answered. */
static int limit_client(ks_ex *ex) {
  ks_server *srv = ex->srv;
  if (srv->rl_client == NULL || (ex->route && (ex->route->flags & R_UNLIMITED))) return 1;
  if (ex->client.ip.family)
    ks_rl_key_ip(&ex->rl_key, &ex->client.ip, srv->cfg.rate_limit_ipv6_prefix);
  else /* a name a trusted proxy sent that is no address */
    ks_rl_key_name(&ex->rl_key, 'n', ex->client.entry ? ex->client.entry : ex->client.text,
                   ex->client.entry ? ex->client.entry_len : strlen(ex->client.text));
  ks_rl_verdict v;
  ks_rl_hit(srv->rl_client, &ex->rl_key, uv_now(srv->loop), &v);
  if (!v.admitted) {
    rate_limited(ex, &v, NULL);
    return 0;
  }
  ex->rl_counted = 1;
  ex->rl_sec = v.sec;
  set_rl_headers(ex, srv->cfg.rate_limit_per_minute, v.count);
  return 1;
}

/* The user's limit, once the session is loaded. 1 if the request goes on. */
static int limit_user(ks_ex *ex) {
  ks_server *srv = ex->srv;
  if (srv->rl_user == NULL || !ex->rl_counted || ex->rl_user_checked) return 1;
  ex->rl_user_checked = 1;
  const char *uid = kotte_session_user_id(ex->session);
  if (uid == NULL || uid[0] == '\0') return 1;
  ks_rl_key k;
  ks_rl_key_name(&k, 'u', uid, strlen(uid));
  ks_rl_verdict v;
  ks_rl_hit(srv->rl_user, &k, uv_now(srv->loop), &v);
  if (v.admitted) return 1;
  ks_rl_undo(srv->rl_client, &ex->rl_key, ex->rl_sec);
  ex->rl_counted = 0;
  rate_limited(ex, &v, uid);
  return 0;
}

/* ---- sessions --------------------------------------------------------- */

/* Wipes and removes every {"$secret": ...} the store opened under @p node
 * (the drop-in's connection_config password): no handler needs one. The
 * top-level csrf_token stays: the CSRF check reads it (ks_session_csrf);
 * the parsed copy is wiped when the exchange ends, the store's own copy
 * when the session is freed. */
static void drop_secrets(cJSON *node, int depth) {
  if (depth > 64) return; /* as deep as the store looks for them */
  cJSON *c = node->child;
  while (c) {
    cJSON *next = c->next;
    if (depth == 0 && c->string && strcmp(c->string, "csrf_token") == 0) {
      /* kept */
    } else if (cJSON_IsObject(c) && cJSON_GetObjectItemCaseSensitive(c, "$secret")) {
      ks_json_wipe_delete(cJSON_DetachItemViaPointer(node, c));
    } else if (cJSON_IsObject(c) || cJSON_IsArray(c)) {
      drop_secrets(c, depth + 1);
    }
    c = next;
  }
}

static int load_session(ks_ex *ex, kotte_session *s) {
  ex->session = s;
  const char *data = kotte_session_data(s);
  ex->sdata = cJSON_Parse(data);
  if (ex->sdata && strstr(data, "\"$secret\"")) drop_secrets(ex->sdata, 0);
  return ex->sdata ? 0 : -1;
}

static void on_session(int status, kotte_session *s, void *ud) {
  ks_ex *ex = ud;
  if (status == KOTTE_ENOTFOUND)
    ks_reply_session_expired(ex);
  else if (status != 0)
    ks_reply_store_error(ex, status, "Session store");
  else if (load_session(ex, s) != 0)
    ks_reply_store_error(ex, KOTTE_EBADJSON, "Session store");
  else if (limit_user(ex))
    ex->next(ex);
}

void ks_with_session(ks_ex *ex, void (*next)(ks_ex *ex)) {
  if (ex->session) {
    next(ex);
    return;
  }
  /* no cookie, or one that cannot be ours: as Starlette, whose cookie
   * fails its signature check, this is "not logged in" */
  if (ex->cookie_state != 1) {
    ks_reply_auth_required(ex);
    return;
  }
  if (ex->srv->sessions == NULL) {
    ks_reply_store_error(ex, KOTTE_ECLOSED, "Session store");
    return;
  }
  ex->next = next;
  int rc = kotte_session_get(ex->srv->sessions, ex->cookie_id, on_session, ex);
  if (rc != 0) ks_reply_store_error(ex, rc, "Session store");
}

/* ---- CSRF: Kotte's CSRFMiddleware ------------------------------------- */

static void route(ks_ex *ex);

static void csrf_fail(ks_ex *ex) {
  cJSON *f = cJSON_CreateObject();
  if (f) {
    cJSON_AddStringToObject(f, "request_id", ex->request_id);
    cJSON_AddStringToObject(f, "method", http_method_str(ex->req->method));
    cJSON_AddStringToObject(f, "path", ex->req->path);
    cJSON_AddStringToObject(f, "client_ip", ex->client.text);
  }
  ks_log(KOTTE_LOG_WARN, "csrf_failure", f, "SECURITY: CSRF token validation failed");
  ks_reply_error(ex, 403, "INTERNAL_ERROR", "validation", "CSRF token validation failed", NULL, 0);
}

static void on_csrf_session(int status, kotte_session *s, void *ud) {
  ks_ex *ex = ud;
  if (status == KOTTE_ENOTFOUND) {
    csrf_fail(ex);
    return;
  }
  if (status != 0) {
    ks_reply_store_error(ex, status, "Session store");
    return;
  }
  if (load_session(ex, s) != 0) {
    ks_reply_store_error(ex, KOTTE_EBADJSON, "Session store");
    return;
  }
  if (!limit_user(ex)) return; /* Kotte limits before it checks CSRF */
  if (!ks_csrf_token_matches(ex->req, ex->sdata)) {
    csrf_fail(ex);
    return;
  }
  route(ex);
}

static int state_changing(enum http_method m) {
  return m == HTTP_POST || m == HTTP_PUT || m == HTTP_PATCH || m == HTTP_DELETE;
}

/* ---- dispatch --------------------------------------------------------- */

static void reply_detail(ks_ex *ex, int status, const char *detail) {
  /* FastAPI's own answer for unknown paths and methods */
  cJSON *b = cJSON_CreateObject();
  if (b) cJSON_AddStringToObject(b, "detail", detail);
  ks_reply_json(ex, status, b);
}

static void route(ks_ex *ex) {
  if (ex->route == NULL) {
    reply_detail(ex, ex->endpoint[0] == '/' ? 405 : 404,
                 ex->endpoint[0] == '/' ? "Method Not Allowed" : "Not Found");
    return;
  }
  if (ex->route->flags & R_SESSION)
    ks_with_session(ex, ex->route->fn);
  else
    ex->route->fn(ex);
}

static ks_ex *new_ex(ks_server *srv, ks_conn *c, ks_request *req) {
  ks_ex *ex = calloc(1, sizeof *ex);
  if (ex == NULL) return NULL;
  ex->srv = srv;
  ex->conn = c;
  ex->req = req;
  ex->start_ns = uv_hrtime();
  ex->endpoint = "other";
  srv->exchanges++;
  const ks_header *rid = req ? ks_request_header(req, "x-request-id") : NULL;
  if (rid && valid_request_id(rid->value, rid->value_len))
    memcpy(ex->request_id, rid->value, rid->value_len + 1);
  else
    ks_uuid4(ex->request_id);
  return ex;
}

/* ---- CORS: Kotte's CORSMiddleware (allow_credentials, any method and
 * header, origins from CORS_ORIGINS) ------------------------------------ */

static int origin_allowed(const ks_config *cfg, const ks_header *o) {
  if (o->value_len == 0 || o->value_len >= 200) return 0;
  for (unsigned i = 0; i < cfg->n_cors_origins; i++)
    if (strcmp(cfg->cors_origins[i], o->value) == 0) return 1;
  if (!cfg->cors_any) return 0;
  /* "*": echoed back, so it must be a plain origin */
  for (size_t i = 0; i < o->value_len; i++) {
    char ch = o->value[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          strchr(":/.-[]", ch)))
      return 0;
  }
  return 1;
}

/* Answers a preflight; 1 if it was one. */
static int cors(ks_ex *ex) {
  const ks_request *req = ex->req;
  const ks_header *origin = ks_request_header(req, "origin");
  int allowed = origin && origin_allowed(&ex->srv->cfg, origin);
  if (allowed)
    snprintf(ex->cors, sizeof ex->cors,
             "Access-Control-Allow-Origin: %s\r\nAccess-Control-Allow-Credentials: true\r\n"
             "Vary: Origin\r\n",
             origin->value);
  if (req->method != HTTP_OPTIONS || origin == NULL ||
      ks_request_header(req, "access-control-request-method") == NULL)
    return 0;
  ex->endpoint = "preflight";
  if (!allowed) {
    static const char no[] = "Disallowed CORS origin";
    ks_reply_raw(ex, 400, "text/plain; charset=utf-8", no, sizeof no - 1);
    return 1;
  }
  size_t n = strlen(ex->cors);
  n += (size_t)snprintf(ex->cors + n, sizeof ex->cors - n,
                        "Access-Control-Allow-Methods: DELETE, GET, HEAD, OPTIONS, PATCH, POST, "
                        "PUT\r\nAccess-Control-Max-Age: 600\r\n");
  /* any header is allowed: the requested ones are mirrored, if they are
   * plain header names */
  const ks_header *rh = ks_request_header(req, "access-control-request-headers");
  if (rh && rh->value_len < 200 &&
      strspn(rh->value,
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
             "OPQRSTUVWXYZ0123456789-_, ") == rh->value_len &&
      n < sizeof ex->cors)
    snprintf(ex->cors + n, sizeof ex->cors - n, "Access-Control-Allow-Headers: %s\r\n", rh->value);
  ks_reply_raw(ex, 200, "text/plain; charset=utf-8", "OK", 2);
  return 1;
}

void ks_router_on_request(ks_conn *c, ks_request *req, void *ctx) {
  ks_server *srv = ctx;
  ks_ex *ex = new_ex(srv, c, req);
  if (ex == NULL) {
    ks_conn_respond(c, 503, "Content-Type: application/json\r\n", "{}", 2, 1);
    return;
  }
  /* the client, as uvicorn's proxy headers make it */
  ks_ip peer;
  ks_ip_from_sockaddr(req->peer, &peer);
  const ks_header *xff = ks_request_header_last(req, "x-forwarded-for");
  ks_client_resolve(&ex->client, &srv->cfg.forwarded_allow, &peer, req->remote,
                    xff ? xff->value : NULL, xff ? xff->value_len : 0);
  if (cors(ex)) return; /* preflights: answered first, as Kotte's CORS middleware does */
  ks_session_cookie_read(ex);
  for (size_t i = 0; i < NROUTES; i++) {
    char param[sizeof ex->param];
    if (!match(routes[i].pattern, req->path, param, sizeof param)) continue;
    ex->endpoint = routes[i].pattern; /* path known: 405 unless a method matches */
    if (routes[i].method == req->method) {
      ex->route = &routes[i];
      memcpy(ex->param, param, sizeof param);
      break;
    }
  }
  if (!limit_client(ex)) return;
  /* As Kotte's middleware, CSRF comes before routing, for every
   * state-changing method on every path but login. */
  if (state_changing(req->method) && strcmp(req->path, "/api/v1/auth/login") != 0) {
    const ks_header *h = ks_request_header(req, "x-csrf-token");
    if (h == NULL || h->value_len == 0 || ex->cookie_state != 1) {
      csrf_fail(ex);
      return;
    }
    if (srv->sessions == NULL) {
      ks_reply_store_error(ex, KOTTE_ECLOSED, "Session store");
      return;
    }
    int rc = kotte_session_get(srv->sessions, ex->cookie_id, on_csrf_session, ex);
    if (rc != 0) ks_reply_store_error(ex, rc, "Session store");
    return;
  }
  route(ex);
}

void ks_router_on_reject(ks_conn *c, int status, const char *message, void *ctx) {
  ks_server *srv = ctx;
  ks_ex *ex = new_ex(srv, c, NULL);
  if (ex == NULL) return; /* the HTTP layer closes the connection */
  cJSON *f = cJSON_CreateObject();
  if (f) {
    cJSON_AddStringToObject(f, "request_id", ex->request_id);
    cJSON_AddNumberToObject(f, "status_code", status);
  }
  ks_log(KOTTE_LOG_WARN, "http_rejected", f, message);
  /* 505 is the client's doing (a version this server does not speak), so
   * it is answered as the other refusals of the request itself are */
  if (status >= 500 && status != 505)
    ks_reply_error(ex, status, "INTERNAL_ERROR", "internal", message, NULL, 1);
  else
    ks_reply_error(ex, status, "QUERY_VALIDATION_ERROR", "validation", message, NULL, 0);
}
