/* kotte-server: the route table, as data.
 *
 * Every path the server answers is one entry here, and the entry carries
 * what the request pipeline (router.c) does before its handler runs: does
 * it need a session, is its path exempt from Kotte's CSRF check, which
 * rate-limit class it is in. No step of the pipeline names a path.
 *
 * The table is also what a deployment may route here: `kotte-server
 * routes` prints it as JSON (ks_routes_json), and tests/k8s checks every
 * Ingress path of the mixed overlays (k8s/components/kotte-server) against
 * it, so no path is sent to kotte-server that it does not answer as Kotte
 * does (the `kotte` flag). */
#ifndef KS_ROUTES_H
#define KS_ROUTES_H

#include <stddef.h>

#include "http.h"

struct ks_ex;

/* Kotte's RateLimitMiddleware limits every request; probes and scraping
 * are not limited here (a probe refused with 429 gets a healthy pod
 * restarted, a refused scrape loses the metrics). */
typedef enum {
  KS_RL_CLIENT_USER = 0, /* the client's limit, then the user's once the session is known */
  KS_RL_NONE = 1         /* never limited, never counted */
} ks_rl_class;

typedef struct ks_route {
  enum http_method method;
  const char *pattern; /* a trailing "{id}" matches one non-empty segment */
  void (*fn)(struct ks_ex *ex);
  ks_rl_class rl;
  unsigned auth : 1;        /* needs a live session; 401 without one */
  unsigned csrf_exempt : 1; /* the path (every method on it) skips the CSRF check, as
                               Kotte's CSRFMiddleware skips login by path */
  unsigned kotte : 1;       /* answers exactly as Kotte's route does: an Ingress may
                               send this method and path here instead of to Kotte */
} ks_route;

/* What the table says about one request. */
typedef struct ks_route_match {
  const ks_route *route; /* the entry for this method and path, or NULL */
  const char *pattern;   /* the path's pattern when some entry has the path, else NULL
                            (a known path with no entry for the method is a 405) */
  int csrf_exempt;       /* some entry of this path is csrf_exempt */
} ks_route_match;

/* The table; *n gets its length. */
const ks_route *ks_routes(size_t *n);

/* Looks up @p method and @p path. A "{id}" segment is copied into @p param
 * (@p cap bytes; a longer one does not match). */
void ks_routes_match(enum http_method method, const char *path, char *param, size_t cap,
                     ks_route_match *out);

/* The table as a JSON array, one object per entry: method, path, auth,
 * csrf ("checked" for state-changing methods, "exempt", "none" for safe
 * ones), rate_limit ("client+user" | "none"), kotte. Free with cJSON_free();
 * NULL when out of memory. */
char *ks_routes_json(void);

#endif
