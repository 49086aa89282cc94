/* The request pipeline: each request runs through the steps of `pipeline`
 * below, in order, as Kotte's middleware stack orders them (CORS, then the
 * rate limit, CSRF, the session, the route). What a step does for a
 * request comes from its route entry (routes.h: auth, csrf_exempt, rate
 * limit class), never from its path. The last stage, the access log line
 * and the metrics, runs on every answer (responses.c), also on an answer a
 * step gives early, as h2o's loggers run after whichever handler answered. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "log.h"
#include "routes.h"
#include "server.h"

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
  if (srv->rl_client == NULL || (ex->route && ex->route->rl == KS_RL_NONE)) return 1;
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

/* ---- the chain -------------------------------------------------------- */

/* What a step returns. */
enum {
  STEP_NEXT,  /* go on with the next step */
  STEP_DONE,  /* the request was answered (ex is gone) */
  STEP_PAUSED /* waiting for the session store; the step runs again when it answers */
};

typedef struct {
  const char *name; /* for the reader: the table below is the order */
  int (*run)(ks_ex *ex);
} step;

static void run_pipeline(ks_ex *ex);

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

/* The session named by the cookie, for the step that needs it first (CSRF
 * or the route's auth). Loaded once; the user's rate limit is checked as
 * soon as it is known (Kotte limits before it checks CSRF). */
static void on_session(int status, kotte_session *s, void *ud) {
  ks_ex *ex = ud;
  if (status == KOTTE_ENOTFOUND)
    ex->no_session(ex);
  else if (status != 0)
    ks_reply_store_error(ex, status, "Session store");
  else if (load_session(ex, s) != 0)
    ks_reply_store_error(ex, KOTTE_EBADJSON, "Session store");
  else if (limit_user(ex))
    run_pipeline(ex); /* the step that asked runs again, now with the session */
}

static int fetch_session(ks_ex *ex, void (*no_session)(ks_ex *ex)) {
  if (ex->srv->sessions == NULL) {
    ks_reply_store_error(ex, KOTTE_ECLOSED, "Session store");
    return STEP_DONE;
  }
  ex->no_session = no_session;
  int rc = kotte_session_get(ex->srv->sessions, ex->cookie_id, on_session, ex);
  if (rc != 0) {
    ks_reply_store_error(ex, rc, "Session store");
    return STEP_DONE;
  }
  return STEP_PAUSED;
}

static int state_changing(enum http_method m) {
  return m == HTTP_POST || m == HTTP_PUT || m == HTTP_PATCH || m == HTTP_DELETE;
}

static int cors(ks_ex *ex);

/* CORS: preflights are answered first, as Kotte's CORS middleware does. */
static int step_cors(ks_ex *ex) {
  return cors(ex) ? STEP_DONE : STEP_NEXT;
}

/* The session cookie, and the route entry of the method and path. */
static int step_route(ks_ex *ex) {
  ks_request *req = ex->req;
  ks_session_cookie_read(ex);
  ks_route_match m;
  ks_routes_match(req->method, req->path, ex->param, sizeof ex->param, &m);
  ex->route = m.route;
  ex->csrf_exempt = m.csrf_exempt;
  if (m.pattern) ex->endpoint = m.pattern; /* path known: 405 unless a method matches */
  return STEP_NEXT;
}

/* Kotte's RateLimitMiddleware: the client's limit, counted as soon as the
 * request is routed, before CSRF and before any store is asked, so a flood
 * is refused for the price of a table lookup. The user's limit needs the
 * session: it is checked when the session is loaded (on_session), and a
 * request it refuses is taken off the client's count, since Kotte counts
 * no refused request. A request that never loads its session (login, an
 * unknown path) is counted against its client only. */
static int step_rate_limit(ks_ex *ex) {
  return limit_client(ex) ? STEP_NEXT : STEP_DONE;
}

/* Kotte's CSRFMiddleware: before routing, for every state-changing method
 * on every path but those its route entries exempt. */
static int step_csrf(ks_ex *ex) {
  if (!state_changing(ex->req->method) || ex->csrf_exempt) return STEP_NEXT;
  if (ex->session == NULL) {
    const ks_header *h = ks_request_header(ex->req, "x-csrf-token");
    if (h == NULL || h->value_len == 0 || ex->cookie_state != 1) {
      csrf_fail(ex);
      return STEP_DONE;
    }
    return fetch_session(ex, csrf_fail);
  }
  if (!ks_csrf_token_matches(ex->req, ex->sdata)) {
    csrf_fail(ex);
    return STEP_DONE;
  }
  return STEP_NEXT;
}

/* The route's auth: a live session, or 401. */
static int step_session(ks_ex *ex) {
  if (ex->route == NULL || !ex->route->auth || ex->session) return STEP_NEXT;
  /* no cookie, or one that cannot be ours: as Starlette, whose cookie
   * fails its signature check, this is "not logged in" */
  if (ex->cookie_state != 1) {
    ks_reply_auth_required(ex);
    return STEP_DONE;
  }
  return fetch_session(ex, ks_reply_session_expired);
}

static void reply_detail(ks_ex *ex, int status, const char *detail) {
  /* FastAPI's own answer for unknown paths and methods */
  cJSON *b = cJSON_CreateObject();
  if (b) cJSON_AddStringToObject(b, "detail", detail);
  ks_reply_json(ex, status, b);
}

static int step_handler(ks_ex *ex) {
  if (ex->route == NULL) {
    int known = ex->endpoint[0] == '/';
    reply_detail(ex, known ? 405 : 404, known ? "Method Not Allowed" : "Not Found");
  } else {
    ex->route->fn(ex);
  }
  return STEP_DONE;
}

static const step pipeline[] = {
    {"cors", step_cors},       {"route", step_route},     {"rate_limit", step_rate_limit},
    {"csrf", step_csrf},       {"session", step_session}, {"handler", step_handler},
};

static void run_pipeline(ks_ex *ex) {
  while (ex->step < sizeof pipeline / sizeof pipeline[0]) {
    int r = pipeline[ex->step].run(ex);
    if (r != STEP_NEXT) return; /* answered (ex is gone), or paused at this step */
    ex->step++;
  }
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
  run_pipeline(ex);
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
