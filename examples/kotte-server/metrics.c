/* Prometheus metrics. Counters and histograms live in small arrays
 * searched linearly: a few dozen series at most (see metrics.h). */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "users.h"

#define MAX_SERIES 512
/* Prometheus' default buckets (seconds), as Kotte's histogram uses. */
static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25,
                                 0.5,   0.75, 1.0,   2.5,  5.0,   7.5, 10.0};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

typedef struct req_series {
  const char *method, *endpoint; /* static strings */
  int status;
  unsigned long long count;
} req_series;

typedef struct hist_series {
  const char *method, *endpoint;
  unsigned long long bucket[NBUCKETS];
  unsigned long long count;
  double sum;
} hist_series;

typedef struct err_series {
  const char *code, *category;
  unsigned long long count;
} err_series;

struct ks_metrics {
  req_series req[MAX_SERIES];
  size_t nreq;
  hist_series hist[MAX_SERIES];
  size_t nhist;
  err_series err[64];
  size_t nerr;
  unsigned long long counters[KS_C__COUNT];
  unsigned long long dropped;
};

ks_metrics *ks_metrics_new(void) { return calloc(1, sizeof(ks_metrics)); }
void ks_metrics_free(ks_metrics *m) { free(m); }

void ks_metrics_request(ks_metrics *m, const char *method, const char *endpoint, int status,
                        double seconds) {
  if (m == NULL) return;
  req_series *r = NULL;
  for (size_t i = 0; i < m->nreq && !r; i++)
    if (m->req[i].status == status && m->req[i].method == method && m->req[i].endpoint == endpoint)
      r = &m->req[i];
  if (r == NULL && m->nreq < MAX_SERIES) {
    r = &m->req[m->nreq++];
    r->method = method;
    r->endpoint = endpoint;
    r->status = status;
  }
  if (r)
    r->count++;
  else
    m->dropped++;

  hist_series *h = NULL;
  for (size_t i = 0; i < m->nhist && !h; i++)
    if (m->hist[i].method == method && m->hist[i].endpoint == endpoint) h = &m->hist[i];
  if (h == NULL && m->nhist < MAX_SERIES) {
    h = &m->hist[m->nhist++];
    h->method = method;
    h->endpoint = endpoint;
  }
  if (h == NULL) return;
  for (size_t b = 0; b < NBUCKETS; b++)
    if (seconds <= buckets[b]) h->bucket[b]++;
  h->count++;
  h->sum += seconds;
}

void ks_metrics_error(ks_metrics *m, const char *code, const char *category) {
  if (m == NULL) return;
  for (size_t i = 0; i < m->nerr; i++)
    if (strcmp(m->err[i].code, code) == 0 && strcmp(m->err[i].category, category) == 0) {
      m->err[i].count++;
      return;
    }
  if (m->nerr < sizeof m->err / sizeof m->err[0]) {
    m->err[m->nerr].code = code; /* string literals from the handlers */
    m->err[m->nerr].category = category;
    m->err[m->nerr++].count = 1;
  }
}

void ks_metrics_inc(ks_metrics *m, ks_counter c) {
  if (m) m->counters[c]++;
}

typedef struct sbuf {
  char *p;
  size_t len, cap;
  int oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...) {
  if (b->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->oom = 1;
      return;
    }
    if ((size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap * 2 + (size_t)n;
    char *np = realloc(b->p, cap);
    if (np == NULL) {
      b->oom = 1;
      return;
    }
    b->p = np;
    b->cap = cap;
  }
}

char *ks_metrics_render(ks_metrics *m, const ks_server *srv, size_t *len) {
  sbuf b = {malloc(8192), 0, 8192, 0};
  if (b.p == NULL) return NULL;
  put(&b,
      "# HELP http_requests_total Total number of HTTP requests\n"
      "# TYPE http_requests_total counter\n");
  for (size_t i = 0; i < m->nreq; i++)
    put(&b, "http_requests_total{method=\"%s\",endpoint=\"%s\",status_code=\"%d\"} %llu\n",
        m->req[i].method, m->req[i].endpoint, m->req[i].status, m->req[i].count);
  put(&b,
      "# HELP http_request_duration_seconds HTTP request duration in seconds\n"
      "# TYPE http_request_duration_seconds histogram\n");
  for (size_t i = 0; i < m->nhist; i++) {
    const hist_series *h = &m->hist[i];
    for (size_t k = 0; k < NBUCKETS; k++)
      put(&b,
          "http_request_duration_seconds_bucket{method=\"%s\",endpoint=\"%s\",le=\"%g\"} %llu\n",
          h->method, h->endpoint, buckets[k], h->bucket[k]);
    put(&b,
        "http_request_duration_seconds_bucket{method=\"%s\",endpoint=\"%s\",le=\"+Inf\"} %llu\n",
        h->method, h->endpoint, h->count);
    put(&b, "http_request_duration_seconds_count{method=\"%s\",endpoint=\"%s\"} %llu\n", h->method,
        h->endpoint, h->count);
    put(&b, "http_request_duration_seconds_sum{method=\"%s\",endpoint=\"%s\"} %.9f\n", h->method,
        h->endpoint, h->sum);
  }
  put(&b, "# HELP errors_total Total number of errors\n# TYPE errors_total counter\n");
  for (size_t i = 0; i < m->nerr; i++)
    put(&b, "errors_total{error_code=\"%s\",error_category=\"%s\"} %llu\n", m->err[i].code,
        m->err[i].category, m->err[i].count);
  put(&b,
      "# HELP session_creations_total Total number of sessions created\n"
      "# TYPE session_creations_total counter\nsession_creations_total %llu\n",
      m->counters[KS_C_SESSIONS_CREATED]);
  put(&b,
      "# HELP session_destructions_total Total number of sessions destroyed\n"
      "# TYPE session_destructions_total counter\nsession_destructions_total %llu\n",
      m->counters[KS_C_SESSIONS_DESTROYED]);
  put(&b,
      "# HELP kotte_login_failures_total Failed logins (wrong username or password)\n"
      "# TYPE kotte_login_failures_total counter\nkotte_login_failures_total %llu\n",
      m->counters[KS_C_LOGINS_FAILED]);
  put(&b,
      "# HELP kotte_login_rejected_busy_total Logins refused because too many password "
      "checks were queued\n# TYPE kotte_login_rejected_busy_total counter\n"
      "kotte_login_rejected_busy_total %llu\n",
      m->counters[KS_C_LOGINS_BUSY]);
  put(&b,
      "# HELP kotte_http_connections Open client connections\n"
      "# TYPE kotte_http_connections gauge\nkotte_http_connections %u\n",
      srv->http.nconns);
  put(&b,
      "# HELP kotte_http_connections_accepted_total Accepted client connections\n"
      "# TYPE kotte_http_connections_accepted_total counter\n"
      "kotte_http_connections_accepted_total %llu\n",
      srv->http.accepted);
  put(&b,
      "# HELP kotte_http_connections_refused_total Connections closed at once because "
      "KOTTE_MAX_CONNECTIONS were open\n# TYPE kotte_http_connections_refused_total counter\n"
      "kotte_http_connections_refused_total %llu\n",
      srv->http.refused);
  put(&b,
      "# HELP kotte_requests_in_flight Requests being handled\n"
      "# TYPE kotte_requests_in_flight gauge\nkotte_requests_in_flight %u\n",
      srv->exchanges);
  if (srv->rl_client) {
    ks_rl_stats rc, ru;
    ks_rl_get_stats(srv->rl_client, &rc);
    ks_rl_get_stats(srv->rl_user, &ru);
    put(&b,
        "# HELP kotte_rate_limited_total Requests refused with 429 by a rate limit\n"
        "# TYPE kotte_rate_limited_total counter\n"
        "kotte_rate_limited_total{limit=\"client\"} %llu\n"
        "kotte_rate_limited_total{limit=\"user\"} %llu\n"
        "# HELP kotte_rate_limit_keys Clients and users with requests in the window\n"
        "# TYPE kotte_rate_limit_keys gauge\n"
        "kotte_rate_limit_keys{limit=\"client\"} %u\nkotte_rate_limit_keys{limit=\"user\"} %u\n"
        "# HELP kotte_rate_limit_evictions_total Keys forgotten before their window ended "
        "because KOTTE_RATE_LIMIT_MAX_KEYS were tracked\n"
        "# TYPE kotte_rate_limit_evictions_total counter\n"
        "kotte_rate_limit_evictions_total{limit=\"client\"} %llu\n"
        "kotte_rate_limit_evictions_total{limit=\"user\"} %llu\n",
        srv->rl_refused_client, srv->rl_refused_user, rc.keys, ru.keys, rc.evictions,
        ru.evictions);
  }
  ks_users_stats us;
  ks_users_get_stats(srv->users, &us);
  put(&b,
      "# HELP kotte_password_checks_in_flight Password hash checks running or queued\n"
      "# TYPE kotte_password_checks_in_flight gauge\n"
      "kotte_password_checks_in_flight{state=\"running\"} %u\n"
      "kotte_password_checks_in_flight{state=\"queued\"} %u\n",
      us.running, us.queued);
  if (srv->pool) {
    kotte_pg_pool_stats ps;
    memset(&ps, 0, sizeof ps);
    ps.version = KOTTE_PG_STATS_VERSION;
    if (kotte_pg_pool_get_stats(srv->pool, &ps) == 0) {
      const char *db = srv->cfg.db_name; /* a label value: no quote, backslash or newline */
      char dbl[128];
      size_t j = 0;
      for (const char *p = db; *p && j + 1 < sizeof dbl; p++)
        dbl[j++] = (*p == '"' || *p == '\\' || *p == '\n') ? '_' : *p;
      dbl[j] = '\0';
      put(&b,
          "# HELP db_pool_size Number of connections in the pool\n"
          "# TYPE db_pool_size gauge\n"
          "db_pool_size{database=\"%s\",type=\"total\"} %u\n"
          "db_pool_size{database=\"%s\",type=\"available\"} %u\n"
          "db_pool_size{database=\"%s\",type=\"in_use\"} %u\n",
          dbl, ps.open, dbl, ps.idle, dbl, ps.busy);
      put(&b,
          "# HELP kotte_pg_pool_connecting Connection attempts under way\n"
          "# TYPE kotte_pg_pool_connecting gauge\nkotte_pg_pool_connecting %u\n"
          "# HELP kotte_pg_pool_waiting Queries waiting for a connection\n"
          "# TYPE kotte_pg_pool_waiting gauge\nkotte_pg_pool_waiting %u\n"
          "# HELP kotte_pg_pool_in_flight Queries sent and not yet answered\n"
          "# TYPE kotte_pg_pool_in_flight gauge\nkotte_pg_pool_in_flight %u\n",
          ps.connecting, ps.waiting, ps.in_flight);
      const struct {
        const char *name, *help;
        uint64_t v;
      } c[] = {
          {"kotte_pg_pool_queries_total", "Queries completed", ps.queries},
          {"kotte_pg_pool_errors_total", "Queries that failed", ps.errors},
          {"kotte_pg_pool_timeouts_total", "Waits for a connection that timed out",
           ps.pool_timeouts},
          {"kotte_pg_pool_query_timeouts_total", "Queries that timed out", ps.query_timeouts},
          {"kotte_pg_pool_connects_total", "Connections established", ps.connects},
          {"kotte_pg_pool_connect_failures_total", "Failed connection attempts",
           ps.connect_failures},
          {"kotte_pg_pool_connections_lost_total", "Connections that broke while open",
           ps.connections_lost},
      };
      for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        put(&b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", c[i].name, c[i].help, c[i].name,
            c[i].name, (unsigned long long)c[i].v);
      put(&b,
          "# HELP kotte_pg_pool_acquire_wait_seconds_total Time queries waited for a "
          "connection\n# TYPE kotte_pg_pool_acquire_wait_seconds_total counter\n"
          "kotte_pg_pool_acquire_wait_seconds_total %.6f\n",
          (double)ps.acquire_wait_us_total / 1e6);
    }
  }
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  *len = b.len;
  return b.p;
}
