/* What the pool reports without touching the server: its counters, its
 * known state (for readiness probes that must not wait), and the values of
 * a query's result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_internal.h"

/* ---- statistics ---------------------------------------------------------------------- */

static void fill_stats(kotte_pg_pool *p, kotte_pg_pool_stats *out) {
  *out = p->stats;
  out->version = KOTTE_PG_STATS_VERSION;
  out->open = p->n_ready;
  out->connecting = p->n_connecting;
  out->waiting = p->waiting.n;
  out->idle = out->busy = out->in_flight = 0;
  for (kotte__pg_conn *c = p->conns; c; c = c->next) {
    if (c->state != CONN_READY) continue;
    if (c->inflight.n) out->busy++;
    else out->idle++;
    out->in_flight += c->inflight.n;
  }
}

/* Runs fill(p, out) on the pool's loop thread: at once when called there
 * (or for a pool without a runtime), else through the runtime. */
typedef struct fill_call {
  kotte_pg_pool *p;
  void *out;
  void (*fill)(kotte_pg_pool *p, void *out);
} fill_call;

static int fill_on_loop(void *arg) {
  fill_call *c = arg;
  c->fill(c->p, c->out);
  return 0;
}

static int fill_from_loop(kotte_pg_pool *p, void *out, void (*fill)(kotte_pg_pool *, void *)) {
  if (p->rt && !kotte_runtime_on_loop_thread(p->rt)) {
    fill_call c = { p, out, fill };
    return kotte_runtime_run(p->rt, fill_on_loop, &c);
  }
  fill(p, out);
  return 0;
}

static void fill_stats_any(kotte_pg_pool *p, void *out) { fill_stats(p, out); }

int kotte_pg_pool_get_stats(kotte_pg_pool *p, kotte_pg_pool_stats *out) {
  kotte__clear_detail();
  if (p == NULL || out == NULL) return KOTTE_EINVAL;
  if (out->version < 1 || out->version > KOTTE_PG_STATS_VERSION) return KOTTE_EVERSION;
  return fill_from_loop(p, out, fill_stats_any);
}

/* ---- known state ------------------------------------------------------------------- */

static void fill_state(kotte_pg_pool *p, kotte_pg_pool_state *out) {
  memset(out, 0, sizeof *out);
  out->version = KOTTE_PG_POOL_STATE_VERSION;
  out->ready = p->n_ready;
  out->connecting = p->n_connecting;
  out->failures = p->failures;
  out->failing = p->failures > 0 && p->n_ready == 0;
  out->failing_since = p->failing_since;
  uint64_t now = kotte__pg_now(p);
  if (p->failures > 0 && p->backoff_until > now) {
    uint64_t in = p->backoff_until - now;
    out->retry_in_ms = in > UINT32_MAX ? UINT32_MAX : (unsigned int)in;
  }
  snprintf(out->last_error, sizeof out->last_error, "%s", p->last_error);
}

static void fill_state_any(kotte_pg_pool *p, void *out) { fill_state(p, out); }

int kotte_pg_pool_get_state(kotte_pg_pool *p, kotte_pg_pool_state *out) {
  kotte__clear_detail();
  if (p == NULL || out == NULL) return KOTTE_EINVAL;
  if (out->version < 1 || out->version > KOTTE_PG_POOL_STATE_VERSION) return KOTTE_EVERSION;
  return fill_from_loop(p, out, fill_state_any);
}

/* ---- results ------------------------------------------------------------------------ */

#define RES(r) ((const PGresult *)(r))

int kotte_pg_result_ntuples(const kotte_pg_result *r) { return r ? PQntuples(RES(r)) : 0; }
int kotte_pg_result_nfields(const kotte_pg_result *r) { return r ? PQnfields(RES(r)) : 0; }

const char *kotte_pg_result_value(const kotte_pg_result *r, int row, int col) {
  if (r == NULL || row < 0 || col < 0 || row >= PQntuples(RES(r)) || col >= PQnfields(RES(r)))
    return "";
  return PQgetvalue(RES(r), row, col);
}

int kotte_pg_result_length(const kotte_pg_result *r, int row, int col) {
  if (r == NULL || row < 0 || col < 0 || row >= PQntuples(RES(r)) || col >= PQnfields(RES(r)))
    return 0;
  return PQgetlength(RES(r), row, col);
}

int kotte_pg_result_is_null(const kotte_pg_result *r, int row, int col) {
  if (r == NULL || row < 0 || col < 0 || row >= PQntuples(RES(r)) || col >= PQnfields(RES(r)))
    return 1;
  return PQgetisnull(RES(r), row, col);
}

uint64_t kotte_pg_result_affected(const kotte_pg_result *r) {
  const char *s = r ? PQcmdTuples((PGresult *)RES(r)) : "";
  return s && *s ? strtoull(s, NULL, 10) : 0;
}

const char *kotte_pg_result_sqlstate(const kotte_pg_result *r) {
  const char *s = r ? PQresultErrorField(RES(r), PG_DIAG_SQLSTATE) : NULL;
  return s ? s : "";
}

const char *kotte_pg_result_error(const kotte_pg_result *r) {
  const char *s = r ? PQresultErrorField(RES(r), PG_DIAG_MESSAGE_PRIMARY) : NULL;
  return s ? s : "";
}
