/* kotte-server: the server object and one request/response exchange. */
#ifndef KS_SERVER_H
#define KS_SERVER_H

#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include <kotte.h>
#include <kotte/pg.h>

#include "client_ip.h"
#include "config.h"
#include "cookie.h"
#include "http.h"
#include "ratelimit.h"
#include "request.h"
#include "routes.h"
#include "signals.h"

typedef struct ks_users ks_users;
typedef struct ks_metrics ks_metrics;
typedef struct ks_creds ks_creds;

typedef struct ks_server {
  uv_loop_t *loop;
  ks_config cfg;
  ks_http http;
  int port; /* bound port */
  /* stores; NULL once closed (a call then answers 503) */
  kotte_pg_pool *pool; /* when a store is on PostgreSQL */
  kotte_session_store *sessions;
  ks_creds *creds;
  ks_users *users;
  ks_metrics *metrics;
  ks_cookie_signer cookie_signer; /* from SESSION_SECRET_KEY */
  /* rate limits; NULL when RATE_LIMIT_ENABLED is false */
  ks_rl *rl_client; /* RATE_LIMIT_PER_MINUTE per client address */
  ks_rl *rl_user;   /* RATE_LIMIT_PER_USER per user */
  unsigned long long rl_refused_client, rl_refused_user;
  /* shutdown */
  ks_signals signals; /* SIGTERM, SIGINT */
  uv_timer_t drain_timer;
  uv_timer_t purge_timer;
  int shutting_down;
  int finished;
  unsigned exchanges; /* in flight */
} ks_server;

/* One request and its answer. Created for every complete request, freed
 * when the answer is handed to the connection. */
typedef struct ks_ex {
  ks_server *srv;
  ks_conn *conn;
  ks_request *req;
  const ks_route *route; /* the entry for this method and path, or NULL */
  const char *endpoint;  /* metrics label: the route's template or "other" */
  unsigned step;         /* the pipeline step it is at (router.c) */
  int csrf_exempt;       /* its path is exempt from the CSRF check (routes.h) */
  char param[128];      /* the {id} path segment, if the route has one */
  char request_id[130];
  uint64_t start_ns;
  ks_client client; /* the peer, or whom a trusted proxy names */
  /* rate limits: the client's count, taken back if the user's refuses */
  int rl_counted;
  int rl_user_checked;
  ks_rl_key rl_key;
  uint32_t rl_sec;
  char rl_headers[160]; /* X-RateLimit-* when admitted, Retry-After when refused */
  /* the session cookie (SESSION_COOKIE_NAME), as Starlette reads it */
  int cookie_state; /* 0 none, 1 signed and in date, -1 anything else */
  char cookie_id[KOTTE_SESSION_ID_LEN + 1];
  char cookie_csrf[KOTTE_TOKEN_LEN + 1]; /* its csrf_token, or "" */
  /* the session, once loaded */
  kotte_session *session;
  cJSON *sdata; /* its data, parsed */
  /* extra response headers */
  char set_cookie[KS_COOKIE_VALUE_MAX + 256];
  char cors[512];                 /* Access-Control-* lines for an allowed Origin */
  void (*no_session)(struct ks_ex *ex); /* the answer when the cookie's session is gone */
  void *hctx; /* a handler's own state, wiped and freed at the end */
  size_t hctx_size;
} ks_ex;

/* Allocates ex->hctx (zeroed) of @p size; NULL when out of memory. */
void *ks_ex_ctx(ks_ex *ex, size_t size);

/* ---- answers (responses.c): each ends the exchange ------------------- */

/* JSON answer; consumes @p body (NULL: "null"). */
void ks_reply_json(ks_ex *ex, int status, cJSON *body);
/* Kotte's error envelope: {"error": {code, category, message, details,
 * request_id, timestamp, retryable}}; consumes @p details (NULL: {}). */
void ks_reply_error(ks_ex *ex, int status, const char *code, const char *category,
                    const char *message, cJSON *details, int retryable);
/* Any other body (text/plain metrics, 204 with no body). */
void ks_reply_raw(ks_ex *ex, int status, const char *content_type, const char *body, size_t len);

/* Common errors. */
void ks_reply_auth_required(ks_ex *ex);                         /* 401 AUTH_REQUIRED */
void ks_reply_session_expired(ks_ex *ex);                       /* 401 AUTH_SESSION_EXPIRED */
void ks_reply_store_error(ks_ex *ex, int rc, const char *what); /* 503/500 by code */
/* 422 with the error envelope; details.errors = [{loc:["body",field], msg, type}] */
void ks_reply_invalid(ks_ex *ex, const char *field, const char *msg, const char *type);

/* The session cookie (handlers_auth.c). ks_session_cookie_read() reads
 * the request's and, when it is good, answers with it signed anew, as
 * Starlette does on every response; ks_set_session_cookie() sets it to
 * session @p id with @p csrf (may be NULL), or clears it when @p id is NULL. */
void ks_session_cookie_read(ks_ex *ex);
void ks_set_session_cookie(ks_ex *ex, const char *id, const char *csrf);

/* ---- request helpers ------------------------------------------------ */

/* The body as a JSON object (ks_json_body_parse() in request.h). A body
 * that is not UTF-8 gets FastAPI's answer, 400 {"detail": "There was an
 * error parsing the body"} (it decodes JSON bodies as UTF-8 before
 * parsing), so no client's bytes reach a store or a log; a body that is
 * not a valid JSON object gets 422. Either way NULL is returned. */
cJSON *ks_body_object(ks_ex *ex);

/* ---- routing (router.c) --------------------------------------------- */

void ks_router_on_request(ks_conn *c, ks_request *req, void *ctx);
void ks_router_on_reject(ks_conn *c, int status, const char *message, void *ctx);

/* ---- handlers ------------------------------------------------------- */

void ks_h_health(ks_ex *ex);
void ks_h_ready(ks_ex *ex);
void ks_h_metrics(ks_ex *ex);
void ks_h_login(ks_ex *ex);
void ks_h_logout(ks_ex *ex);
void ks_h_me(ks_ex *ex);
void ks_h_csrf_token(ks_ex *ex);
void ks_h_session_status(ks_ex *ex);
void ks_h_connections_list(ks_ex *ex);
void ks_h_connections_create(ks_ex *ex);
void ks_h_connection_get(ks_ex *ex);
void ks_h_connection_delete(ks_ex *ex);

#endif
