/* kotte-server: configuration from the environment (Kotte's names, see
 * ../shared/DESIGN.md) plus the server's own listen address, limits and
 * timeouts. Command-line flags override the environment. */
#ifndef KS_CONFIG_H
#define KS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "client_ip.h"

typedef enum ks_storage { KS_STORE_MEMORY, KS_STORE_JSON_FILE, KS_STORE_POSTGRESQL } ks_storage;

typedef struct ks_config {
  /* where to listen: KOTTE_SERVER_HOST (0.0.0.0), KOTTE_SERVER_PORT (8000) */
  char host[256];
  int port;

  /* Kotte's settings */
  char environment[32];          /* ENVIRONMENT: development | production | test */
  int production;                /* environment == "production": Secure cookies */
  ks_storage session_storage;    /* SESSION_STORAGE_TYPE (json_file) */
  ks_storage credential_storage; /* CREDENTIAL_STORAGE_TYPE (json_file) */
  char session_path[1024];       /* SESSION_STORAGE_PATH (./data/sessions.journal) */
  char credential_path[1024];    /* CREDENTIAL_STORAGE_PATH (./data/connections.json) */
  int64_t session_max_age;       /* SESSION_MAX_AGE (3600) */
  int64_t session_idle_timeout;  /* SESSION_IDLE_TIMEOUT (1800) */
  int64_t session_touch_interval; /* SESSION_TOUCH_INTERVAL (-1: 1 % of the idle timeout) */
  int session_cache;             /* SESSION_CACHE (false; postgresql sessions only) */
  char session_cookie_name[65];  /* SESSION_COOKIE_NAME (kotte_session) */
  char db_host[256], db_name[128], db_user[128];
  int db_port;
  int db_connect_timeout;     /* DB_CONNECT_TIMEOUT, seconds (10) */
  unsigned db_pool_min_size;  /* DB_POOL_MIN_SIZE (1) */
  unsigned db_pool_max_size;  /* DB_POOL_MAX_SIZE (10) */
  unsigned db_pipeline_depth; /* KOTTE_DB_PIPELINE_DEPTH: queries per connection round trip (32) */
  int migrate_on_start;       /* KOTTE_MIGRATE_ON_START (false): apply sql/ before serving */
  char sql_dir[1024];         /* KOTTE_SQL_DIR: the sql/ folder it applies */
  int log_level;              /* LOG_LEVEL as a kotte_log_level */
  /* CORS_ORIGINS: a JSON array or comma-separated list (Kotte's default:
   * http://localhost:5173, http://localhost:3000); "*" allows any */
  char cors_origins[16][256];
  unsigned n_cors_origins;
  int cors_any;

  /* users: KOTTE_USERS_STORE (file | postgresql; postgresql when the
   * sessions are there), KOTTE_USERS_FILE (./data/users) for file */
  ks_storage users_store;
  char users_file[1024];

  /* HTTP limits and timeouts */
  size_t max_header_size;       /* KOTTE_MAX_HEADER_SIZE, request line + headers (16384) */
  unsigned max_headers;         /* KOTTE_MAX_HEADERS (64) */
  size_t max_body_size;         /* KOTTE_MAX_BODY_SIZE (65536) */
  unsigned read_timeout_ms;     /* KOTTE_READ_TIMEOUT_MS: first byte to full request (10000) */
  unsigned idle_timeout_ms;     /* KOTTE_IDLE_TIMEOUT_MS: keep-alive idle (75000: longer than ingress-nginx keeps idle upstream connections, 60 s) */
  unsigned shutdown_timeout_ms; /* KOTTE_SHUTDOWN_TIMEOUT_MS: SIGTERM drain bound (10000) */
  unsigned max_connections;     /* KOTTE_MAX_CONNECTIONS (4096) */
  unsigned max_password_checks; /* KOTTE_MAX_PASSWORD_CHECKS in flight (2) */

  /* Kotte's rate limits (RateLimitMiddleware), per replica */
  int rate_limit_enabled;          /* RATE_LIMIT_ENABLED (true) */
  unsigned rate_limit_per_minute;  /* RATE_LIMIT_PER_MINUTE, per client address (60) */
  unsigned rate_limit_per_user;    /* RATE_LIMIT_PER_USER (100) */
  unsigned rate_limit_max_keys;    /* KOTTE_RATE_LIMIT_MAX_KEYS, per limit (65536) */
  unsigned rate_limit_ipv6_prefix; /* KOTTE_RATE_LIMIT_IPV6_PREFIX: one key per /N (64) */
  /* FORWARDED_ALLOW_IPS (uvicorn's; 127.0.0.1): peers whose X-Forwarded-For
   * names the client */
  char forwarded_allow_ips[1024];
  ks_trust forwarded_allow;
} ks_config;

/* Fills @p cfg from the environment, then from argv (--host H, --port P).
 * On error writes a message (no secret) into err and returns -1. */
int ks_config_load(ks_config *cfg, int argc, char **argv, char *err, size_t errlen);

/* mkdir -p of the directory holding @p path (mode 0700). 0 or -1 (errno). */
int ks_make_parent(const char *path);

/* 1 if any store (sessions, credentials, users) is on PostgreSQL. */
int ks_config_uses_pg(const ks_config *cfg);

/* "memory" | "json_file" | "postgresql" */
const char *ks_storage_name(ks_storage s);

#endif
