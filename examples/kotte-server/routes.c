/* The route table (see routes.h). */
#include "routes.h"

#include <string.h>

#include <cjson/cJSON.h>

#include "server.h"

/* Kotte's routes, as Kotte's FastAPI app has them (backend/app/api/v1 at
 * the KOTTE_REF of k8s/Dockerfile.backend), and the server's own probes.
 * The health, readiness and metrics routes are this server's own answers
 * (its stores, its counters), not Kotte's: not `kotte`. */
#define PROBE(m, p, f) {HTTP_##m, p, f, KS_RL_NONE, 0, 0, 0}
#define KOTTE(m, p, f, auth, exempt) {HTTP_##m, p, f, KS_RL_CLIENT_USER, auth, exempt, 1}
static const ks_route routes[] = {
    PROBE(GET, "/api/v1/health", ks_h_health),
    PROBE(GET, "/api/v1/ready", ks_h_ready),
    PROBE(GET, "/metrics", ks_h_metrics),
    PROBE(GET, "/api/v1/metrics", ks_h_metrics),
    KOTTE(POST, "/api/v1/auth/login", ks_h_login, 0, 1),
    KOTTE(POST, "/api/v1/auth/logout", ks_h_logout, 1, 0),
    KOTTE(GET, "/api/v1/auth/me", ks_h_me, 1, 0),
    KOTTE(GET, "/api/v1/auth/csrf-token", ks_h_csrf_token, 1, 0),
    KOTTE(GET, "/api/v1/session/status", ks_h_session_status, 1, 0),
    KOTTE(GET, "/api/v1/connections", ks_h_connections_list, 1, 0),
    KOTTE(POST, "/api/v1/connections", ks_h_connections_create, 1, 0),
    KOTTE(GET, "/api/v1/connections/{id}", ks_h_connection_get, 1, 0),
    KOTTE(DELETE, "/api/v1/connections/{id}", ks_h_connection_delete, 1, 0),
};
#undef PROBE
#undef KOTTE
#define NROUTES (sizeof routes / sizeof routes[0])

const ks_route *ks_routes(size_t *n) {
  *n = NROUTES;
  return routes;
}

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

void ks_routes_match(enum http_method method, const char *path, char *param, size_t cap,
                     ks_route_match *out) {
  memset(out, 0, sizeof *out);
  for (size_t i = 0; i < NROUTES; i++) {
    char seg[256];
    size_t segcap = cap < sizeof seg ? cap : sizeof seg;
    if (!match(routes[i].pattern, path, seg, segcap)) continue;
    out->pattern = routes[i].pattern;
    if (routes[i].csrf_exempt) out->csrf_exempt = 1;
    if (out->route == NULL && routes[i].method == method) {
      out->route = &routes[i];
      if (strstr(routes[i].pattern, "{id}")) memcpy(param, seg, strlen(seg) + 1);
    }
  }
}

static int state_changing(enum http_method m) {
  return m == HTTP_POST || m == HTTP_PUT || m == HTTP_PATCH || m == HTTP_DELETE;
}

char *ks_routes_json(void) {
  cJSON *arr = cJSON_CreateArray();
  if (arr == NULL) return NULL;
  for (size_t i = 0; i < NROUTES; i++) {
    const ks_route *r = &routes[i];
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
      cJSON_Delete(o);
      cJSON_Delete(arr);
      return NULL;
    }
    const char *csrf = r->csrf_exempt ? "exempt" : state_changing(r->method) ? "checked" : "none";
    if (!cJSON_AddStringToObject(o, "method", http_method_str(r->method)) ||
        !cJSON_AddStringToObject(o, "path", r->pattern) ||
        !cJSON_AddBoolToObject(o, "auth", r->auth) || !cJSON_AddStringToObject(o, "csrf", csrf) ||
        !cJSON_AddStringToObject(o, "rate_limit", r->rl == KS_RL_NONE ? "none" : "client+user") ||
        !cJSON_AddBoolToObject(o, "kotte", r->kotte)) {
      cJSON_Delete(arr);
      return NULL;
    }
  }
  /* one entry a line, so that two tables diff entry by entry */
  char *lines[NROUTES] = {0};
  size_t total = 4, i = 0;
  for (cJSON *o = arr->child; o; o = o->next, i++) {
    if ((lines[i] = cJSON_PrintUnformatted(o)) == NULL) break;
    total += strlen(lines[i]) + 2;
  }
  char *out = i == NROUTES ? cJSON_malloc(total) : NULL;
  if (out) {
    size_t len = 0;
    out[len++] = '[';
    for (i = 0; i < NROUTES; i++) {
      out[len++] = '\n';
      size_t n = strlen(lines[i]);
      memcpy(out + len, lines[i], n);
      len += n;
      if (i + 1 < NROUTES) out[len++] = ',';
    }
    memcpy(out + len, "\n]", 3);
  }
  for (i = 0; i < NROUTES; i++) cJSON_free(lines[i]);
  cJSON_Delete(arr);
  return out;
}
