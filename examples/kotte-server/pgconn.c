/* The PostgreSQL pool and the session backend's key material. */
#include "pgconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <kotte.h>

#include "log.h"

/* Appends key='value' with libpq's quoting (backslash and quote escaped). */
static void put(char *buf, size_t cap, size_t *len, const char *key, const char *value) {
  if (*len + strlen(key) + 4 >= cap) return;
  *len += (size_t)snprintf(buf + *len, cap - *len, "%s%s='", *len ? " " : "", key);
  for (const char *p = value; *p && *len + 3 < cap; p++) {
    if (*p == '\\' || *p == '\'') buf[(*len)++] = '\\';
    buf[(*len)++] = *p;
  }
  if (*len + 2 < cap) buf[(*len)++] = '\'';
  buf[*len] = '\0';
}

char *ks_pg_conninfo(const ks_config *cfg) {
  const char *pw = getenv("DB_PASSWORD");
  size_t cap = 4096 + (pw ? 2 * strlen(pw) : 0);
  char *buf = sodium_malloc(cap);
  if (buf == NULL) return NULL;
  size_t len = 0;
  char num[32];
  buf[0] = '\0';
  put(buf, cap, &len, "host", cfg->db_host);
  snprintf(num, sizeof num, "%d", cfg->db_port);
  put(buf, cap, &len, "port", num);
  put(buf, cap, &len, "dbname", cfg->db_name);
  put(buf, cap, &len, "user", cfg->db_user);
  /* Kotte's default password is "postgres" too */
  put(buf, cap, &len, "password", pw && *pw ? pw : "postgres");
  snprintf(num, sizeof num, "%d", cfg->db_connect_timeout);
  put(buf, cap, &len, "connect_timeout", num);
  put(buf, cap, &len, "application_name", "kotte-server");
  return buf;
}

void ks_pg_conninfo_free(char *conninfo) {
  if (conninfo) sodium_free(conninfo); /* sodium_free wipes */
}

int ks_pg_pool_open(kotte_pg_pool **out, uv_loop_t *loop, const ks_config *cfg, char *err,
                    size_t errlen) {
  char *ci = ks_pg_conninfo(cfg);
  if (ci == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  kotte_pg_pool_options o = KOTTE_PG_POOL_OPTIONS_INIT;
  o.conninfo = ci;
  o.min_size = cfg->db_pool_min_size;
  o.max_size = cfg->db_pool_max_size;
  o.connect_timeout_ms = (unsigned)cfg->db_connect_timeout * 1000u;
  /* Queries submitted in one loop turn share a round trip and a commit
   * (kotte/pg.h): under load, one WAL flush serves many session slides. */
  o.pipeline_depth = cfg->db_pipeline_depth;
  int rc = kotte_pg_pool_new(out, loop, &o);
  ks_pg_conninfo_free(ci);
  if (rc != 0) {
    /* the detail never holds the conninfo (kotte/pg.h) */
    snprintf(err, errlen, "PostgreSQL pool: %s %s", kotte_strerror(rc), kotte_error_detail());
    return -1;
  }
  return 0;
}

static void nudge_done(int status, const kotte_pg_result *res, void *ud) {
  (void)status;
  (void)res;
  (void)ud;
}

int ks_pg_pool_ready(kotte_pg_pool *pool, char *reason, size_t n) {
  kotte_pg_pool_state st = {.version = KOTTE_PG_POOL_STATE_VERSION};
  reason[0] = '\0';
  if (kotte_pg_pool_get_state(pool, &st) != 0 || !st.failing) return 0;
  if (st.connecting == 0 && st.retry_in_ms == 0) {
    kotte_pg_query q = KOTTE_PG_QUERY_INIT;
    q.sql = "SELECT 1";
    kotte_pg_pool_query(pool, &q, nudge_done, NULL); /* ends by itself, or at pool free */
  }
  /* libpq's reason is what follows its last ": "; what precedes it names
   * the host, which an unauthenticated probe answer should not */
  const char *why = strrchr(st.last_error, ':');
  why = why ? why + 1 : st.last_error;
  while (*why == ' ') why++;
  snprintf(reason, n, "%u connection attempt%s failed in a row: %s", st.failures,
           st.failures == 1 ? "" : "s", *why ? why : "unknown");
  return KOTTE_EDB;
}

int ks_pg_session_secret(unsigned char **out, size_t *len, char *err, size_t errlen) {
  const char *s = getenv("SESSION_SECRET_KEY");
  if (s && *s) {
    size_t n = strlen(s);
    if (n < 16) {
      snprintf(err, errlen, "SESSION_SECRET_KEY must be at least 16 bytes");
      return -1;
    }
    *out = sodium_malloc(n);
    if (*out == NULL) goto oom;
    memcpy(*out, s, n);
    *len = n;
    return 0;
  }
  const char *m = getenv("MASTER_ENCRYPTION_KEY");
  if (m && *m) {
    static const unsigned char personal[crypto_generichash_blake2b_PERSONALBYTES] =
        "kotte-pg-session"; /* exactly 16 bytes, as Python's person= */
    *out = sodium_malloc(32);
    if (*out == NULL) goto oom;
    crypto_generichash_blake2b_salt_personal(*out, 32, (const unsigned char *)m, strlen(m), NULL, 0,
                                             NULL, personal);
    *len = 32;
    return 0;
  }
  snprintf(err, errlen,
           "SESSION_STORAGE_TYPE=postgresql needs SESSION_SECRET_KEY (or MASTER_ENCRYPTION_KEY), "
           "the same on every replica");
  return -1;
oom:
  snprintf(err, errlen, "out of memory");
  return -1;
}

typedef struct schema_wait {
  int done, status, version;
  char detail[1024];
} schema_wait;

static void on_schema(int status, int version, void *ud) {
  schema_wait *w = ud;
  w->done = 1;
  w->status = status;
  w->version = version;
  snprintf(w->detail, sizeof w->detail, "%s", kotte_error_detail());
}

int ks_pg_schema_startup(kotte_pg_pool *pool, uv_loop_t *loop, const ks_config *cfg, char *err,
                         size_t errlen) {
  if (cfg->migrate_on_start) {
    char *ci = ks_pg_conninfo(cfg);
    if (ci == NULL) {
      snprintf(err, errlen, "out of memory");
      return -1;
    }
    unsigned applied = 0;
    ks_logf(KOTTE_LOG_INFO, "schema_migrating",
            "KOTTE_MIGRATE_ON_START: applying %.900s (waits for any other migrator)", cfg->sql_dir);
    int rc = kotte_pg_migrate(ci, cfg->sql_dir, NULL, &applied);
    ks_pg_conninfo_free(ci);
    if (rc != 0) {
      snprintf(err, errlen, "KOTTE_MIGRATE_ON_START: %s: %s", kotte_strerror(rc),
               kotte_error_detail());
      return -1;
    }
    ks_logf(KOTTE_LOG_INFO, "schema_migrated", "%u migration(s) applied", applied);
  }
  schema_wait w = {0, 0, -1, ""};
  int rc = kotte_pg_schema_check(pool, on_schema, &w);
  if (rc != 0) {
    snprintf(err, errlen, "schema check: %s %s", kotte_strerror(rc), kotte_error_detail());
    return -1;
  }
  while (!w.done) uv_run(loop, UV_RUN_ONCE);
  if (w.status == KOTTE_ESCHEMA) {
    snprintf(err, errlen, "%s", w.detail);
    return -1;
  }
  if (w.status != 0)
    ks_logf(KOTTE_LOG_WARN, "schema_unchecked",
            "the database schema could not be checked at start (%s: %s); /api/v1/ready checks "
            "it again",
            kotte_err_name(w.status), w.detail);
  else
    ks_logf(KOTTE_LOG_INFO, "schema_ok", "database schema version %d (needs %d)", w.version,
            KOTTE_PG_SCHEMA_VERSION);
  return 0;
}
