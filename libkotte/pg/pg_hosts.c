/* Starting a connection with the hosts of a multi-host conninfo in a
 * rotated order.
 *
 * libpq tries the hosts of "host=a,b" in order and moves on when one
 * refuses or fails; but in non-blocking mode it never gives up on a host
 * that does not answer at all (a dropped SYN, a hung server): that is the
 * pool's connect timeout, which ends the whole attempt. Were the next
 * attempt to start with the same host, a silent first host would keep the
 * pool from ever reaching the others. So after an attempt times out the
 * pool starts the next one a host further on (PostgreSQL 15's libpq has no
 * load_balance_hosts to ask for this). */
#include <sodium.h>
#include <string.h>

#include "pg/pg_internal.h"

#define MAX_HOSTS 64

/* Splits @p list at commas into @p item (pointers into @p copy). */
static int split(char *copy, char *item[MAX_HOSTS]) {
  int n = 0;
  char *s = copy;
  for (;;) {
    if (n == MAX_HOSTS) return -1;
    item[n++] = s;
    char *comma = strchr(s, ',');
    if (comma == NULL) break;
    *comma = '\0';
    s = comma + 1;
  }
  return n;
}

static int count(const char *list) {
  int n = 1;
  for (const char *s = list; *s; s++) n += *s == ',';
  return n;
}

/* @p list with its @p n items rotated left by @p by, in kotte__malloc memory. */
static char *rotated(const char *list, int n, unsigned int by) {
  size_t len = strlen(list);
  char *copy = kotte__strdup(list);
  char *out = kotte__malloc(len + 1);
  char *item[MAX_HOSTS];
  if (copy == NULL || out == NULL || split(copy, item) != n) {
    kotte__free(copy);
    kotte__free(out);
    return NULL;
  }
  char *o = out;
  for (int i = 0; i < n; i++) {
    const char *it = item[(i + by) % (unsigned int)n];
    size_t l = strlen(it);
    if (i) *o++ = ',';
    memcpy(o, it, l);
    o += l;
  }
  *o = '\0';
  kotte__free(copy);
  return out;
}

PGconn *kotte__pg_connect_start(const char *conninfo, unsigned int rotation) {
  if (rotation == 0) return PQconnectStart(conninfo);
  PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
  if (opts == NULL) return PQconnectStart(conninfo); /* checked at pool creation */
  size_t n_opts = 0;
  const char *hosts = NULL;
  for (PQconninfoOption *o = opts; o->keyword; o++) {
    n_opts++;
    if (o->val && o->val[0] && (strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0))
      if (hosts == NULL || count(o->val) > count(hosts)) hosts = o->val;
  }
  int n_hosts = hosts ? count(hosts) : 1;
  PGconn *pg = NULL;
  const char **keys = kotte__calloc(n_opts + 1, sizeof *keys);
  const char **vals = kotte__calloc(n_opts + 1, sizeof *vals);
  char **owned = kotte__calloc(n_opts + 1, sizeof *owned);
  if (keys && vals && owned) {
    size_t k = 0;
    int ok = 1;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
      if (o->val == NULL) continue;
      keys[k] = o->keyword;
      vals[k] = o->val;
      /* the lists that run parallel to the hosts turn with them; a single
       * port (or any other single value) applies to every host */
      if (n_hosts > 1 && count(o->val) == n_hosts &&
          (strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0 ||
           strcmp(o->keyword, "port") == 0)) {
        owned[k] = rotated(o->val, n_hosts, rotation % (unsigned int)n_hosts);
        if (owned[k] == NULL) ok = 0;
        vals[k] = owned[k];
      }
      k++;
    }
    if (ok) pg = PQconnectStartParams(keys, vals, 0);
    for (size_t i = 0; i < n_opts; i++) kotte__free(owned[i]);
  }
  kotte__free(keys);
  kotte__free(vals);
  kotte__free(owned);
  /* the parsed options may hold a password */
  for (PQconninfoOption *o = opts; o->keyword; o++)
    if (o->val) sodium_memzero(o->val, strlen(o->val));
  PQconninfoFree(opts);
  return pg;
}
