/* kotte-server: Prometheus metrics (text format 0.0.4), kept on the loop
 * thread. Label values come from fixed sets (route templates, methods,
 * status codes, error codes), so no client can grow the series without
 * bound. Names follow Kotte's (http_requests_total, ...). */
#ifndef KS_METRICS_H
#define KS_METRICS_H

#include <stddef.h>

typedef struct ks_metrics ks_metrics;
struct ks_server;

typedef enum ks_counter {
  KS_C_SESSIONS_CREATED,
  KS_C_SESSIONS_DESTROYED,
  KS_C_LOGINS_FAILED,
  KS_C_LOGINS_BUSY,
  KS_C__COUNT
} ks_counter;

ks_metrics *ks_metrics_new(void);
void ks_metrics_free(ks_metrics *m);

/* Records one answered request. */
void ks_metrics_request(ks_metrics *m, const char *method, const char *endpoint, int status,
                        double seconds);
/* Records one error envelope sent. */
void ks_metrics_error(ks_metrics *m, const char *code, const char *category);
void ks_metrics_inc(ks_metrics *m, ks_counter c);

/* Renders every metric, with the server's gauges; the caller frees the
 * text with free(). NULL when out of memory. */
char *ks_metrics_render(ks_metrics *m, const struct ks_server *srv, size_t *len);

#endif
