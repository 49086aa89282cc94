/* Configuration: environment first, flags override. Secrets (DB_PASSWORD,
 * MASTER_ENCRYPTION_KEY, SESSION_SECRET_KEY, ADMIN_PASSWORD) are read where
 * they are used and never copied into this struct, so it can be logged. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <kotte.h>

#include "cookie.h"

#ifndef KS_INSTALLED_SQL_DIR
#define KS_INSTALLED_SQL_DIR "/usr/local/share/kotte/sql"
#endif
#ifndef KS_SOURCE_SQL_DIR
#define KS_SOURCE_SQL_DIR "sql"
#endif

const char *ks_storage_name(ks_storage s) {
  switch (s) {
    case KS_STORE_MEMORY: return "memory";
    case KS_STORE_JSON_FILE: return "json_file";
    case KS_STORE_POSTGRESQL: return "postgresql";
  }
  return "?";
}

static int copy_str(char *dst, size_t cap, const char *src, const char *name, char *err,
                    size_t errlen) {
  size_t n = strlen(src);
  if (n >= cap) {
    snprintf(err, errlen, "%s is too long (at most %zu bytes)", name, cap - 1);
    return -1;
  }
  memcpy(dst, src, n + 1);
  return 0;
}

static int env_str(char *dst, size_t cap, const char *name, const char *def, char *err,
                   size_t errlen) {
  const char *v = getenv(name);
  return copy_str(dst, cap, v && *v ? v : def, name, err, errlen);
}

static int parse_int(const char *s, long long lo, long long hi, long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end != '\0' || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static int env_int(long long *out, const char *name, long long def, long long lo, long long hi,
                   char *err, size_t errlen) {
  const char *v = getenv(name);
  if (v == NULL || *v == '\0') {
    *out = def;
    return 0;
  }
  if (parse_int(v, lo, hi, out) != 0) {
    snprintf(err, errlen, "%s must be an integer between %lld and %lld", name, lo, hi);
    return -1;
  }
  return 0;
}

/* A boolean as pydantic reads one (Kotte's settings): true/false, 1/0,
 * yes/no, on/off, t/f, y/n, in any case. */
static int env_bool(int *out, const char *name, int def, char *err, size_t errlen) {
  static const char *const yes[] = {"1", "true", "yes", "on", "t", "y"};
  static const char *const no[] = {"0", "false", "no", "off", "f", "n"};
  const char *v = getenv(name);
  if (v == NULL || *v == '\0') {
    *out = def;
    return 0;
  }
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    if (strcasecmp(v, yes[i]) == 0) {
      *out = 1;
      return 0;
    }
    if (strcasecmp(v, no[i]) == 0) {
      *out = 0;
      return 0;
    }
  }
  snprintf(err, errlen, "%s must be true or false (also 1/0, yes/no, on/off)", name);
  return -1;
}

static int env_storage(ks_storage *out, const char *name, char *err, size_t errlen) {
  const char *v = getenv(name);
  if (v == NULL || *v == '\0' || strcasecmp(v, "json_file") == 0)
    *out = KS_STORE_JSON_FILE;
  else if (strcasecmp(v, "memory") == 0)
    *out = KS_STORE_MEMORY;
  else if (strcasecmp(v, "postgresql") == 0)
    *out = KS_STORE_POSTGRESQL;
  else {
    snprintf(err, errlen, "%s must be memory, json_file or postgresql", name);
    return -1;
  }
  return 0;
}

/* CORS_ORIGINS as Kotte reads it: '["a","b"]' or "a,b". */
static int parse_cors(ks_config *cfg, char *err, size_t errlen) {
  const char *v = getenv("CORS_ORIGINS");
  if (v == NULL || *v == '\0') v = "http://localhost:5173,http://localhost:3000";
  char buf[4096];
  if (strlen(v) >= sizeof buf) {
    snprintf(err, errlen, "CORS_ORIGINS is too long");
    return -1;
  }
  /* A JSON array is turned into the comma form: its strings are plain
   * origins, so dropping brackets and quotes is enough. */
  size_t n = 0;
  for (const char *p = v; *p; p++)
    if (*p != '[' && *p != ']' && *p != '"') buf[n++] = *p;
  buf[n] = '\0';
  cfg->n_cors_origins = 0;
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    while (*tok == ' ' || *tok == '\t') tok++;
    size_t l = strlen(tok);
    while (l && (tok[l - 1] == ' ' || tok[l - 1] == '\t')) tok[--l] = '\0';
    if (l == 0) continue;
    if (strcmp(tok, "*") == 0) {
      cfg->cors_any = 1;
      continue;
    }
    if (cfg->n_cors_origins == sizeof cfg->cors_origins / sizeof cfg->cors_origins[0] ||
        l >= sizeof cfg->cors_origins[0]) {
      snprintf(err, errlen, "CORS_ORIGINS: at most 16 origins of at most 255 bytes");
      return -1;
    }
    memcpy(cfg->cors_origins[cfg->n_cors_origins++], tok, l + 1);
  }
  return 0;
}

int ks_make_parent(const char *path) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash == NULL || slash == dir) return 0;
  *slash = '\0';
  for (char *p = dir + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) return -1;
  return 0;
}

int ks_config_uses_pg(const ks_config *cfg) {
  return cfg->session_storage == KS_STORE_POSTGRESQL ||
         cfg->credential_storage == KS_STORE_POSTGRESQL || cfg->users_store == KS_STORE_POSTGRESQL;
}

int ks_config_load(ks_config *cfg, int argc, char **argv, char *err, size_t errlen) {
  memset(cfg, 0, sizeof *cfg);
  long long v;
#define INT(field, name, def, lo, hi)                                \
  do {                                                               \
    if (env_int(&v, name, def, lo, hi, err, errlen) != 0) return -1; \
    cfg->field = v;                                                  \
  } while (0)
#define STR(field, name, def) \
  if (env_str(cfg->field, sizeof cfg->field, name, def, err, errlen) != 0) return -1

  STR(host, "KOTTE_SERVER_HOST", "0.0.0.0");
  INT(port, "KOTTE_SERVER_PORT", 8000, 0, 65535);
  STR(environment, "ENVIRONMENT", "development");
  cfg->production = strcmp(cfg->environment, "production") == 0;
  if (env_storage(&cfg->session_storage, "SESSION_STORAGE_TYPE", err, errlen) != 0) return -1;
  if (env_storage(&cfg->credential_storage, "CREDENTIAL_STORAGE_TYPE", err, errlen) != 0) return -1;
  STR(session_path, "SESSION_STORAGE_PATH", "./data/sessions.journal");
  STR(credential_path, "CREDENTIAL_STORAGE_PATH", "./data/connections.json");
  INT(session_max_age, "SESSION_MAX_AGE", 3600, 1, 366LL * 86400);
  INT(session_idle_timeout, "SESSION_IDLE_TIMEOUT", 1800, 1, 366LL * 86400);
  /* unset or -1: 1 % of each session's idle timeout (libkotte's default) */
  INT(session_touch_interval, "SESSION_TOUCH_INTERVAL", -1, -1, 366LL * 86400);
  if (cfg->session_touch_interval > cfg->session_idle_timeout) {
    snprintf(err, errlen, "SESSION_TOUCH_INTERVAL must be at most SESSION_IDLE_TIMEOUT");
    return -1;
  }
  /* on by default here: see docs/session-cache.md */
  if (env_bool(&cfg->session_cache, "SESSION_CACHE", 0, err, errlen) != 0) return -1;
  STR(session_cookie_name, "SESSION_COOKIE_NAME", "kotte_session");
  if (!ks_cookie_name_valid(cfg->session_cookie_name)) {
    snprintf(err, errlen, "SESSION_COOKIE_NAME must be a cookie name (letters, digits, !#$%%&'*+-.^_`|~)");
    return -1;
  }
  STR(db_host, "DB_HOST", "localhost");
  INT(db_port, "DB_PORT", 5432, 1, 65535);
  STR(db_name, "DB_NAME", "postgres");
  STR(db_user, "DB_USER", "postgres");
  INT(db_connect_timeout, "DB_CONNECT_TIMEOUT", 10, 1, 3600);
  INT(db_pool_min_size, "DB_POOL_MIN_SIZE", 1, 0, 1000);
  INT(db_pool_max_size, "DB_POOL_MAX_SIZE", 10, 1, 1000);
  INT(db_pipeline_depth, "KOTTE_DB_PIPELINE_DEPTH", 32, 1, 256);
  if (env_bool(&cfg->migrate_on_start, "KOTTE_MIGRATE_ON_START", 0, err, errlen) != 0) return -1;
  struct stat sql_st;
  STR(sql_dir, "KOTTE_SQL_DIR",
      stat(KS_INSTALLED_SQL_DIR, &sql_st) == 0 ? KS_INSTALLED_SQL_DIR : KS_SOURCE_SQL_DIR);
  if (cfg->db_pool_min_size > cfg->db_pool_max_size) {
    snprintf(err, errlen, "DB_POOL_MIN_SIZE must not exceed DB_POOL_MAX_SIZE");
    return -1;
  }
  STR(users_file, "KOTTE_USERS_FILE", "./data/users");
  const char *us = getenv("KOTTE_USERS_STORE");
  if (us == NULL || *us == '\0')
    cfg->users_store =
        cfg->session_storage == KS_STORE_POSTGRESQL ? KS_STORE_POSTGRESQL : KS_STORE_JSON_FILE;
  else if (strcasecmp(us, "file") == 0)
    cfg->users_store = KS_STORE_JSON_FILE;
  else if (strcasecmp(us, "postgresql") == 0)
    cfg->users_store = KS_STORE_POSTGRESQL;
  else {
    snprintf(err, errlen, "KOTTE_USERS_STORE must be file or postgresql");
    return -1;
  }

  const char *lvl = getenv("LOG_LEVEL");
  cfg->log_level = KOTTE_LOG_INFO;
  if (lvl && *lvl) {
    if (strcasecmp(lvl, "DEBUG") == 0)
      cfg->log_level = KOTTE_LOG_DEBUG;
    else if (strcasecmp(lvl, "INFO") == 0)
      cfg->log_level = KOTTE_LOG_INFO;
    else if (strcasecmp(lvl, "WARNING") == 0 || strcasecmp(lvl, "WARN") == 0)
      cfg->log_level = KOTTE_LOG_WARN;
    else if (strcasecmp(lvl, "ERROR") == 0 || strcasecmp(lvl, "CRITICAL") == 0)
      cfg->log_level = KOTTE_LOG_ERROR;
    else {
      snprintf(err, errlen, "LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR");
      return -1;
    }
  }

  if (parse_cors(cfg, err, errlen) != 0) return -1;

  INT(max_header_size, "KOTTE_MAX_HEADER_SIZE", 16384, 1024, 1 << 20);
  INT(max_headers, "KOTTE_MAX_HEADERS", 64, 8, 1024);
  INT(max_body_size, "KOTTE_MAX_BODY_SIZE", 65536, 1024, 16 << 20);
  INT(read_timeout_ms, "KOTTE_READ_TIMEOUT_MS", 10000, 100, 600000);
  INT(idle_timeout_ms, "KOTTE_IDLE_TIMEOUT_MS", 75000, 100, 3600000);
  INT(shutdown_timeout_ms, "KOTTE_SHUTDOWN_TIMEOUT_MS", 10000, 0, 600000);
  INT(max_connections, "KOTTE_MAX_CONNECTIONS", 4096, 1, 1000000);
  INT(max_password_checks, "KOTTE_MAX_PASSWORD_CHECKS", 2, 1, 64);

  /* Kotte's defaults; a limit of 0 (which Kotte would take as "refuse
   * everything") is refused: RATE_LIMIT_ENABLED=false turns limiting off */
  if (env_bool(&cfg->rate_limit_enabled, "RATE_LIMIT_ENABLED", 1, err, errlen) != 0) return -1;
  INT(rate_limit_per_minute, "RATE_LIMIT_PER_MINUTE", 60, 1, 1000000000);
  INT(rate_limit_per_user, "RATE_LIMIT_PER_USER", 100, 1, 1000000000);
  INT(rate_limit_max_keys, "KOTTE_RATE_LIMIT_MAX_KEYS", 65536, 1, 1 << 20);
  INT(rate_limit_ipv6_prefix, "KOTTE_RATE_LIMIT_IPV6_PREFIX", 64, 32, 128);
  /* uvicorn's reading: unset is 127.0.0.1, set and empty trusts no peer */
  const char *fwd = getenv("FORWARDED_ALLOW_IPS");
  if (copy_str(cfg->forwarded_allow_ips, sizeof cfg->forwarded_allow_ips, fwd ? fwd : "127.0.0.1",
               "FORWARDED_ALLOW_IPS", err, errlen) != 0)
    return -1;
  if (ks_trust_parse(&cfg->forwarded_allow, fwd, err, errlen) != 0) return -1;
#undef INT
#undef STR

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if ((strcmp(a, "--host") == 0 || strcmp(a, "--port") == 0) && i + 1 < argc) {
      const char *val = argv[++i];
      if (a[2] == 'h') {
        if (copy_str(cfg->host, sizeof cfg->host, val, "--host", err, errlen) != 0) return -1;
      } else if (parse_int(val, 0, 65535, &v) != 0) {
        snprintf(err, errlen, "--port must be between 0 and 65535");
        return -1;
      } else {
        cfg->port = (int)v;
      }
    } else {
      snprintf(err, errlen, "unknown argument '%.64s' (try --help)", a);
      return -1;
    }
  }
  return 0;
}
