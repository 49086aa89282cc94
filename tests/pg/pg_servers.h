/* Servers of a test's own (tests/pg/pg.sh, loopback only): start one (or a
 * standby of one), run pg.sh commands on it (restart, stop-server,
 * promote, ...). Needs KOTTE_SOURCE_DIR. */
#ifndef KOTTE_TEST_PG_SERVERS_H
#define KOTTE_TEST_PG_SERVERS_H

#include <stdio.h>
#include <string.h>

#include "pg_test_util.h"

#ifndef KOTTE_SOURCE_DIR
#error KOTTE_SOURCE_DIR must be defined
#endif

typedef struct server {
  char dir[256];
  char port[16];
} server;

static inline int sh(const char *args, char *out, size_t n) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "bash %s/tests/pg/pg.sh %s 2>&1", KOTTE_SOURCE_DIR, args);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t len = 0;
  char buf[4096];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, p)) > 0) {
    if (out && len + got < n) {
      memcpy(out + len, buf, got);
      len += got;
    }
  }
  if (out) out[len] = '\0';
  return pclose(p);
}

static inline void grab(const char *env, const char *key, char *out, size_t n) {
  char pat[64];
  snprintf(pat, sizeof pat, "export %s='", key);
  const char *p = strstr(env, pat);
  assert_non_null(p);
  p += strlen(pat);
  size_t i = 0;
  while (p[i] && p[i] != '\'' && i + 1 < n) {
    out[i] = p[i];
    i++;
  }
  out[i] = '\0';
}

static inline void server_start(server *s, const char *args) {
  char env[4096];
  int rc = sh(args, env, sizeof env);
  if (rc != 0) fprintf(stderr, "pg.sh %s: %s\n", args, env);
  assert_int_equal(rc, 0);
  grab(env, "KOTTE_TEST_PG_DIR", s->dir, sizeof s->dir);
  grab(env, "KOTTE_TEST_PG_PORT", s->port, sizeof s->port);
}

static inline void server_cmd(const char *cmd, const server *s, const char *extra) {
  char args[512];
  snprintf(args, sizeof args, "%s %s %s", cmd, s->dir, extra ? extra : "");
  char out[2048];
  int rc = sh(args, out, sizeof out);
  if (rc != 0) fprintf(stderr, "pg.sh %s: %s\n", args, out);
  assert_int_equal(rc, 0);
}

#endif
