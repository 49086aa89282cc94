/* Operations endpoints: /api/v1/health (liveness, no store touched),
 * /api/v1/ready (do the stores answer?) and /metrics. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "creds.h"
#include "log.h"
#include "metrics.h"
#include "pgconn.h"
#include "server.h"
#include "users.h"

void ks_h_health(ks_ex *ex) {
  char ts[40];
  ks_iso_now(ts);
  cJSON *b = cJSON_CreateObject();
  if (b) {
    cJSON_AddStringToObject(b, "status", "healthy");
    cJSON_AddStringToObject(b, "timestamp", ts);
    cJSON_AddStringToObject(b, "version", kotte_version());
  }
  ks_reply_json(ex, 200, b);
}

/* ---- ready ------------------------------------------------------------ */

enum { CHECK_SESSIONS, CHECK_USERS, CHECK_CREDS, CHECK_SCHEMA, NCHECKS };
static const char *const check_names[NCHECKS] = {"sessions", "users", "credentials", "schema"};

typedef struct ready_ctx {
  int waiting;
  int result[NCHECKS]; /* 0 answered, negative code otherwise, 1 not configured */
  char pg_reason[160]; /* PostgreSQL known to be away: why (ks_pg_pool_ready) */
  char schema_detail[512]; /* why the schema check failed: the remedy, no secret */
} ready_ctx;

static void ready_done(ks_ex *ex) {
  ready_ctx *rc = ex->hctx;
  if (--rc->waiting > 0) return;
  int ok = !ex->srv->shutting_down;
  char ts[40];
  ks_iso_now(ts);
  cJSON *b = cJSON_CreateObject();
  cJSON *stores = cJSON_CreateObject();
  const char *backends[NCHECKS] = {
      ex->srv->sessions ? kotte_session_store_backend_name(ex->srv->sessions) : "closed",
      ks_users_backend(ex->srv->users), ks_creds_backend(ex->srv->creds), "postgresql"};
  for (int i = 0; i < NCHECKS; i++) {
    if (rc->result[i] == 1) continue;
    cJSON *s = cJSON_AddObjectToObject(stores, check_names[i]);
    cJSON_AddStringToObject(s, "backend", backends[i]);
    cJSON_AddBoolToObject(s, "ok", rc->result[i] == 0);
    if (rc->result[i] < 0) {
      cJSON_AddStringToObject(s, "error", kotte_err_name(rc->result[i]));
      if (i == CHECK_SCHEMA && rc->schema_detail[0])
        cJSON_AddStringToObject(s, "reason", rc->schema_detail);
      else if (rc->pg_reason[0] && strcmp(backends[i], "postgresql") == 0)
        cJSON_AddStringToObject(s, "reason", rc->pg_reason);
      ok = 0;
    }
  }
  cJSON_AddStringToObject(b, "status", ok ? "ready" : "not_ready");
  cJSON_AddStringToObject(b, "timestamp", ts);
  cJSON_AddStringToObject(b, "version", kotte_version());
  /* Kotte's field: the session's own graph database connection, which
   * this server never holds */
  cJSON *db = cJSON_AddObjectToObject(b, "database");
  cJSON_AddBoolToObject(db, "connected", 0);
  cJSON_AddStringToObject(db, "status", "not_connected");
  cJSON_AddItemToObject(b, "stores", stores);
  if (ex->srv->shutting_down) cJSON_AddBoolToObject(b, "shutting_down", 1);
  ks_reply_json(ex, ok ? 200 : 503, b);
}

/* kotte_session_store_check(): json_file also fails while its journal
 * cannot be written (disk full, immutable file) until a write succeeds. */
static void on_session_probe(int status, void *ud) {
  ks_ex *ex = ud;
  ((ready_ctx *)ex->hctx)->result[CHECK_SESSIONS] = status;
  ready_done(ex);
}

static void on_users_probe(int result, const char *a, const char *b, void *ud) {
  (void)a;
  (void)b;
  ks_ex *ex = ud;
  ((ready_ctx *)ex->hctx)->result[CHECK_USERS] = result < 0 ? result : 0;
  ready_done(ex);
}

static void on_creds_probe(int status, void *ud) {
  ks_ex *ex = ud;
  ((ready_ctx *)ex->hctx)->result[CHECK_CREDS] = status;
  ready_done(ex);
}

static void on_schema_probe(int status, int version, void *ud) {
  (void)version;
  ks_ex *ex = ud;
  ready_ctx *rc = ex->hctx;
  rc->result[CHECK_SCHEMA] = status;
  /* a missing or older schema (or why it could not be read), with its
   * remedy: what an operator looking at an unready pod needs */
  if (status != 0) snprintf(rc->schema_detail, sizeof rc->schema_detail, "%s", kotte_error_detail());
  ready_done(ex);
}

void ks_h_ready(ks_ex *ex) {
  ready_ctx *rc = ks_ex_ctx(ex, sizeof *rc);
  if (rc == NULL) {
    ks_reply_store_error(ex, KOTTE_ENOMEM, "Readiness check");
    return;
  }
  rc->waiting = 1; /* held until every probe has started */
  /* PostgreSQL known to be away: the stores on it answer from the pool's
   * state at once; a probe would wait for a connection (acquire timeout). */
  int pg = ex->srv->pool ? ks_pg_pool_ready(ex->srv->pool, rc->pg_reason, sizeof rc->pg_reason) : 0;
#define ON_PG(name) (pg != 0 && strcmp((name), "postgresql") == 0)
  rc->waiting++;
  if (ex->srv->sessions && ON_PG(kotte_session_store_backend_name(ex->srv->sessions))) {
    rc->result[CHECK_SESSIONS] = pg;
    rc->waiting--;
  } else if (ex->srv->sessions == NULL ||
             kotte_session_store_check(ex->srv->sessions, on_session_probe, ex) != 0) {
    rc->result[CHECK_SESSIONS] = KOTTE_ECLOSED;
    rc->waiting--;
  }
  if (ON_PG(ks_users_backend(ex->srv->users))) {
    rc->result[CHECK_USERS] = pg;
  } else {
    rc->waiting++;
    ks_users_ping(ex->srv->users, on_users_probe, ex);
  }
  if (ex->srv->creds == NULL) {
    rc->result[CHECK_CREDS] = 1;
  } else if (ON_PG(ks_creds_backend(ex->srv->creds))) {
    rc->result[CHECK_CREDS] = pg;
  } else {
    rc->waiting++;
    ks_creds_ping(ex->srv->creds, on_creds_probe, ex);
  }
  rc->result[CHECK_SCHEMA] = 1;
  if (ex->srv->pool && pg != 0) {
    rc->result[CHECK_SCHEMA] = pg; /* not asked: it would wait for a connection */
  } else if (ex->srv->pool) {
    rc->waiting++;
    int src = kotte_pg_schema_check(ex->srv->pool, on_schema_probe, ex);
    if (src != 0) {
      rc->result[CHECK_SCHEMA] = src;
      rc->waiting--;
    }
  }
#undef ON_PG
  ready_done(ex);
}

/* ---- metrics ---------------------------------------------------------- */

void ks_h_metrics(ks_ex *ex) {
  size_t len = 0;
  char *text = ks_metrics_render(ex->srv->metrics, ex->srv, &len);
  if (text == NULL) {
    ks_reply_store_error(ex, KOTTE_ENOMEM, "Metrics");
    return;
  }
  ks_reply_raw(ex, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
  free(text);
}
