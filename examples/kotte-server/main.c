/* kotte-server: Kotte's session and saved-connection API in C, on libuv.
 *
 *   kotte-server [--host ADDR] [--port PORT]     serve (configured by env)
 *   kotte-server user add|passwd NAME            password from stdin
 *   kotte-server user del NAME
 *   kotte-server user list
 *   kotte-server routes                          the route table as JSON
 *
 * The loop thread owns everything: connections, the session store (async
 * API), the users store and the metrics. SIGTERM/SIGINT stop accepting,
 * let requests in flight finish within KOTTE_SHUTDOWN_TIMEOUT_MS, close
 * the stores and exit 0. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include <kotte.h>

#include "creds.h"
#include "log.h"
#include "metrics.h"
#include "pgconn.h"
#include "server.h"
#include "users.h"
#include "users_pg.h"

#define PURGE_EVERY_MS (5 * 60 * 1000)

static void usage(FILE *out) {
  fputs(
      "usage: kotte-server [--host ADDR] [--port PORT]\n"
      "       kotte-server user add|passwd NAME   (reads the password from stdin)\n"
      "       kotte-server user del NAME\n"
      "       kotte-server user list\n"
      "       kotte-server routes                 (the route table as JSON)\n"
      "\n"
      "Serves Kotte's /api/v1 auth, session and saved-connection endpoints.\n"
      "Configured by the environment: KOTTE_SERVER_HOST (0.0.0.0), KOTTE_SERVER_PORT (8000),\n"
      "SESSION_STORAGE_TYPE and CREDENTIAL_STORAGE_TYPE (memory|json_file|postgresql;\n"
      "json_file), SESSION_STORAGE_PATH (./data/sessions.journal), CREDENTIAL_STORAGE_PATH\n"
      "(./data/connections.json), SESSION_MAX_AGE (3600), SESSION_IDLE_TIMEOUT (1800),\n"
      "SESSION_TOUCH_INTERVAL (1 % of the idle timeout; 0: every read writes), SESSION_CACHE\n"
      "(false; true: postgresql sessions read through a LISTEN/NOTIFY-kept cache),\n"
      "SESSION_SECRET_KEY (signs the session cookie), SESSION_COOKIE_NAME (kotte_session),\n"
      "KOTTE_MIGRATE_ON_START (false: a missing or older schema stops the start) and\n"
      "KOTTE_SQL_DIR (the sql/ folder it applies),\n"
      "DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD, MASTER_ENCRYPTION_KEY, ENVIRONMENT,\n"
      "LOG_LEVEL, KOTTE_USERS_FILE (./data/users), ADMIN_PASSWORD (seeds the user admin),\n"
      "KOTTE_MAX_HEADER_SIZE, KOTTE_MAX_HEADERS, KOTTE_MAX_BODY_SIZE, KOTTE_READ_TIMEOUT_MS,\n"
      "KOTTE_IDLE_TIMEOUT_MS, KOTTE_SHUTDOWN_TIMEOUT_MS, KOTTE_MAX_CONNECTIONS,\n"
      "KOTTE_MAX_PASSWORD_CHECKS; rate limits as Kotte's: RATE_LIMIT_ENABLED (true),\n"
      "RATE_LIMIT_PER_MINUTE (60 per client address), RATE_LIMIT_PER_USER (100),\n"
      "KOTTE_RATE_LIMIT_MAX_KEYS (65536), KOTTE_RATE_LIMIT_IPV6_PREFIX (64), and\n"
      "FORWARDED_ALLOW_IPS (127.0.0.1; \"*\" for any): proxies whose X-Forwarded-For\n"
      "names the client.\n",
      out);
}

/* ------------------------------------------------------------------ */
/* user subcommand                                                     */
/* ------------------------------------------------------------------ */

#define PASSWORD_MAX 4096

/* Reads one line from stdin (without echo on a terminal) into a
 * sodium_malloc'd buffer; NULL when out of memory. *why is set (and the
 * buffer freed) when the line cannot be a password: a NUL byte (C strings
 * would cut it there, and a login's JSON never carries one), more than
 * PASSWORD_MAX bytes (never cut short in silence), or not UTF-8 (a login's
 * JSON body could never carry it). */
static char *read_password(const char *prompt, const char **why) {
  int tty = isatty(STDIN_FILENO);
  struct termios old, quiet;
  *why = NULL;
  if (tty) {
    fputs(prompt, stderr);
    tcgetattr(STDIN_FILENO, &old);
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  size_t cap = PASSWORD_MAX + 2; /* a trailing \r and the terminator */
  char *buf = sodium_malloc(cap);
  size_t n = 0;
  int ch, nul = 0, over = 0;
  while (buf && (ch = getchar()) != EOF && ch != '\n') {
    if (ch == '\0') nul = 1;
    if (n + 1 < cap)
      buf[n++] = (char)ch;
    else
      over = 1;
  }
  if (buf) {
    if (n && buf[n - 1] == '\r') n--;
    buf[n] = '\0';
    if (nul)
      *why = "the password holds a NUL byte";
    else if (over || n > PASSWORD_MAX)
      *why = "the password is longer than 4096 bytes";
    else if (kotte_utf8_check(buf, n) != n)
      *why = "the password is not UTF-8";
  }
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    fputc('\n', stderr);
  }
  if (*why) {
    sodium_free(buf);
    return NULL;
  }
  return buf;
}

static int user_command(int argc, char **argv) {
  ks_config cfg;
  char err[512];
  if (ks_config_load(&cfg, 0, NULL, err, sizeof err) != 0) {
    fprintf(stderr, "kotte-server: %s\n", err);
    return 2;
  }
  if (sodium_init() < 0) {
    fprintf(stderr, "kotte-server: libsodium failed to initialise\n");
    return 1;
  }
  const char *verb = argc > 2 ? argv[2] : "";
  int pg = cfg.users_store == KS_STORE_POSTGRESQL;
  if (strcmp(verb, "list") == 0 && argc == 3) {
    if ((pg ? ks_users_pg_list(&cfg, stdout, err, sizeof err)
            : ks_users_file_list(cfg.users_file, stdout, err, sizeof err)) != 0) {
      fprintf(stderr, "kotte-server: %s\n", err);
      return 1;
    }
    return 0;
  }
  if (argc != 4 || (strcmp(verb, "add") && strcmp(verb, "passwd") && strcmp(verb, "del"))) {
    usage(stderr);
    return 2;
  }
  const char *name = argv[3];
  if (!ks_username_valid(name)) {
    fprintf(stderr, "kotte-server: a username is 1 to 64 of A-Z a-z 0-9 . _ @ -\n");
    return 2;
  }
  if (strcmp(verb, "del") == 0 && pg) {
    fprintf(stderr,
            "kotte-server: users in kotte_users are deleted in the database (the "
            "application role may not delete them)\n");
    return 2;
  }
  if (strcmp(verb, "del") == 0) {
    int rc = ks_users_file_delete(cfg.users_file, name, err, sizeof err);
    if (rc < 0)
      fprintf(stderr, "kotte-server: %s\n", err);
    else if (rc == 1)
      fprintf(stderr, "kotte-server: no user %s\n", name);
    else
      printf("deleted user %s from %s\n", name, cfg.users_file);
    return rc == 0 ? 0 : 1;
  }
  if (!pg && ks_make_parent(cfg.users_file) != 0) {
    fprintf(stderr, "kotte-server: cannot create the directory of %s: %s\n", cfg.users_file,
            strerror(errno));
    return 1;
  }
  const char *why;
  char *pw = read_password("password: ", &why);
  if (pw == NULL) {
    fprintf(stderr, "kotte-server: %s\n", why ? why : "out of memory");
    return why ? 2 : 1;
  }
  int replace = strcmp(verb, "passwd") == 0;
  int rc = pg ? ks_users_pg_put(&cfg, name, pw, replace, err, sizeof err)
              : ks_users_file_put(cfg.users_file, name, pw, replace, err, sizeof err);
  sodium_free(pw);
  if (rc != 0) {
    fprintf(stderr, "kotte-server: %s\n", err);
    return 1;
  }
  printf("%s user %s in %s\n", strcmp(verb, "add") == 0 ? "added" : "updated", name,
         pg ? "kotte_users" : cfg.users_file);
  return 0;
}

/* ------------------------------------------------------------------ */
/* shutdown                                                            */
/* ------------------------------------------------------------------ */

static void close_stores(ks_server *srv) {
  if (srv->sessions) {
    kotte_session_store_free(srv->sessions); /* in-flight ops: KOTTE_ECANCELED */
    srv->sessions = NULL;
  }
  if (srv->creds) {
    ks_creds_close(srv->creds);
    srv->creds = NULL;
  }
  if (srv->users) {
    ks_users_close(srv->users);
    srv->users = NULL;
  }
  if (srv->pool) { /* after every store that uses it; its queries end ECANCELED */
    kotte_pg_pool_free(srv->pool);
    srv->pool = NULL;
  }
}

/* Every connection is gone: release the rest and let the loop end. */
static void finish(void *ctx) {
  ks_server *srv = ctx;
  if (srv->finished) return;
  srv->finished = 1;
  close_stores(srv);
  uv_close((uv_handle_t *)&srv->drain_timer, NULL);
  uv_close((uv_handle_t *)&srv->purge_timer, NULL);
  /* Signals are still taken (a repeated SIGTERM is ignored while the
   * stores finish closing) but no longer keep the loop running. */
  uv_unref((uv_handle_t *)&srv->signals.async);
  ks_lifecyclef("shutdown_complete", "all connections closed, stores closed");
}

static void on_drain_timeout(uv_timer_t *t) {
  ks_server *srv = t->data;
  ks_logf(KOTTE_LOG_WARN, "shutdown_timeout", "%u connections still open after %u ms: closing them",
          srv->http.nconns, srv->cfg.shutdown_timeout_ms);
  /* cancel store operations (their requests get 503) and drop the rest */
  close_stores(srv);
  ks_http_force_close(&srv->http);
}

static void on_signal(void *ctx, int signum) {
  ks_server *srv = ctx;
  if (srv->shutting_down) {
    if (signum == SIGINT) {
      ks_logf(KOTTE_LOG_WARN, "shutdown_forced", "second interrupt: closing now");
      on_drain_timeout(&srv->drain_timer);
    }
    return;
  }
  srv->shutting_down = 1;
  ks_lifecyclef(
      "shutdown_started", "%s: no longer accepting; finishing %u open connections within %u ms",
      signum == SIGTERM ? "SIGTERM" : "SIGINT", srv->http.nconns, srv->cfg.shutdown_timeout_ms);
  uv_timer_stop(&srv->purge_timer);
  uv_timer_start(&srv->drain_timer, on_drain_timeout, srv->cfg.shutdown_timeout_ms, 0);
  ks_http_drain(&srv->http); /* may call finish() at once */
}

static void on_purged(int status, uint64_t count, void *ud) {
  (void)ud;
  if (status == 0 && count > 0)
    ks_logf(KOTTE_LOG_INFO, "sessions_purged", "purged %llu expired sessions",
            (unsigned long long)count);
  else if (status != 0 && status != KOTTE_ECANCELED)
    ks_logf(KOTTE_LOG_WARN, "sessions_purge_failed", "purging expired sessions failed: %s",
            kotte_strerror(status));
}

static void on_purge_timer(uv_timer_t *t) {
  ks_server *srv = t->data;
  if (srv->sessions) kotte_session_purge_expired(srv->sessions, on_purged, NULL);
}

/* ------------------------------------------------------------------ */
/* serve                                                               */
/* ------------------------------------------------------------------ */

static int open_sessions(ks_server *srv, char *err, size_t errlen) {
  kotte_session_backend *be = NULL;
  int rc;
  switch (srv->cfg.session_storage) {
    case KS_STORE_MEMORY: rc = kotte_session_backend_memory_new(&be); break;
    case KS_STORE_JSON_FILE:
      if (ks_make_parent(srv->cfg.session_path) != 0) {
        snprintf(err, errlen, "cannot create the directory of %.900s: %s", srv->cfg.session_path,
                 strerror(errno));
        return -1;
      }
    {
      unsigned char *secret;
      size_t len;
      if (ks_session_secret(&srv->cfg, &secret, &len, err, errlen) != 0) return -1;
      rc = kotte_session_backend_json_file_new(&be, srv->loop, srv->cfg.session_path, secret, len);
      sodium_free(secret);
      break;
    }
    case KS_STORE_POSTGRESQL: {
      unsigned char *secret;
      size_t len;
      if (ks_pg_session_secret(&secret, &len, err, errlen) != 0) return -1;
      kotte_session_pg_options po = KOTTE_SESSION_PG_OPTIONS_INIT;
      po.cache = srv->cfg.session_cache;
      rc = kotte_session_backend_postgresql_new_v2(&be, srv->pool, secret, len, &po);
      sodium_free(secret);
      break;
    }
    default: rc = KOTTE_EINVAL;
  }
  if (rc != 0) {
    snprintf(err, errlen, "session store (%s): %s %s", ks_storage_name(srv->cfg.session_storage),
             kotte_strerror(rc), kotte_error_detail());
    return -1;
  }
  /* The CSRF token is kept in the session as a sealed secret
   * (handlers_auth.c): no backend ever holds it in clear. Sessions the
   * Python drop-in connected hold a sealed password too: without the key
   * ring every read of them would fail with KOTTE_EKEY. */
  kotte_keyring *kr;
  if (ks_keyring_open(&srv->cfg, &kr, err, errlen) != 0) {
    kotte_session_backend_free(be);
    return -1;
  }
  kotte_session_options opts = KOTTE_SESSION_OPTIONS_INIT;
  opts.idle_timeout_s = srv->cfg.session_idle_timeout;
  opts.max_age_s = srv->cfg.session_max_age;
  opts.keyring = kr;
  opts.touch_interval_s = srv->cfg.session_touch_interval;
  rc = kotte_session_store_new(&srv->sessions, srv->loop, be, &opts);
  kotte_keyring_free(kr); /* the store holds its own reference */
  if (rc != 0) {
    kotte_session_backend_free(be);
    snprintf(err, errlen, "session store: %s %s", kotte_strerror(rc), kotte_error_detail());
    return -1;
  }
  return 0;
}

static int open_users(ks_server *srv, char *err, size_t errlen) {
  if (srv->cfg.users_store == KS_STORE_POSTGRESQL)
    return ks_users_open_pg(&srv->users, srv->loop, srv->pool, &srv->cfg, err, errlen);
  if (ks_make_parent(srv->cfg.users_file) != 0) {
    snprintf(err, errlen, "cannot create the directory of %.900s: %s", srv->cfg.users_file,
             strerror(errno));
    return -1;
  }
  return ks_users_open_file(&srv->users, srv->loop, &srv->cfg, err, errlen);
}

static void log_started(ks_server *srv) {
  cJSON *f = cJSON_CreateObject();
  if (f) {
    cJSON_AddStringToObject(f, "host", srv->cfg.host);
    cJSON_AddNumberToObject(f, "port", srv->port);
    cJSON_AddStringToObject(f, "environment", srv->cfg.environment);
    cJSON_AddStringToObject(f, "session_storage", kotte_session_store_backend_name(srv->sessions));
    cJSON_AddStringToObject(f, "credential_storage", ks_creds_backend(srv->creds));
    cJSON_AddStringToObject(f, "users", ks_users_backend(srv->users));
    if (srv->pool) {
      cJSON_AddStringToObject(f, "db_host", srv->cfg.db_host);
      cJSON_AddNumberToObject(f, "db_port", srv->cfg.db_port);
      cJSON_AddStringToObject(f, "db_name", srv->cfg.db_name);
    }
    if (srv->rl_client) {
      cJSON_AddNumberToObject(f, "rate_limit_per_minute", srv->cfg.rate_limit_per_minute);
      cJSON_AddNumberToObject(f, "rate_limit_per_user", srv->cfg.rate_limit_per_user);
    } else {
      cJSON_AddBoolToObject(f, "rate_limit_enabled", 0);
    }
    cJSON_AddStringToObject(f, "forwarded_allow_ips", srv->cfg.forwarded_allow_ips);
    cJSON_AddNumberToObject(f, "pid", (double)getpid());
    cJSON_AddStringToObject(f, "version", kotte_version());
  }
  char msg[512];
  const char *shown = strcmp(srv->cfg.host, "0.0.0.0") == 0 ? "127.0.0.1" : srv->cfg.host;
  snprintf(msg, sizeof msg, "kotte-server listening on http://%s%s%s:%d",
           strchr(shown, ':') ? "[" : "", shown, strchr(shown, ':') ? "]" : "", srv->port);
  ks_log_lifecycle("listening", f, msg);
}

/* The cookie's signing key: SESSION_SECRET_KEY, as Kotte signs its cookie
 * with it. Kotte refuses to start in production without one and otherwise
 * makes up a key of its own; so does this server (sessions then do not
 * survive a restart, and other replicas cannot read its cookies). */
static int cookie_signer(ks_server *srv, char *err, size_t errlen) {
  const char *secret = getenv("SESSION_SECRET_KEY");
  if (secret && *secret) {
    if (ks_cookie_signer_init(&srv->cookie_signer, secret, strlen(secret)) == 0) return 0;
    snprintf(err, errlen, "SESSION_SECRET_KEY: cannot derive the cookie key (libcrypto)");
    return -1;
  }
  if (srv->cfg.production) {
    snprintf(err, errlen, "SESSION_SECRET_KEY must be set in production environment");
    return -1;
  }
  char made[KOTTE_TOKEN_LEN + 1];
  int rc = kotte_token_generate(made) == 0 &&
                   ks_cookie_signer_init(&srv->cookie_signer, made, strlen(made)) == 0
               ? 0
               : -1;
  sodium_memzero(made, sizeof made);
  if (rc != 0) {
    snprintf(err, errlen, "cannot make a session cookie key");
    return -1;
  }
  ks_logf(KOTTE_LOG_WARN, "session_secret_generated",
          "SESSION_SECRET_KEY not set, using generated key. Set SESSION_SECRET_KEY in production!");
  return 0;
}

static int serve(int argc, char **argv) {
  static ks_server srv; /* static: reachable from signal callbacks, zeroed */
  char err[1024];
  /* before any thread exists, so that every thread inherits the mask */
  if (ks_signals_block() != 0) {
    fprintf(stderr, "kotte-server: cannot block SIGTERM/SIGINT\n");
    return 1;
  }
  if (ks_config_load(&srv.cfg, argc, argv, err, sizeof err) != 0) {
    fprintf(stderr, "kotte-server: %s\n", err);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  ks_log_init((kotte_log_level)srv.cfg.log_level);
  if (sodium_init() < 0) {
    ks_logf(KOTTE_LOG_ERROR, "startup_failed", "libsodium failed to initialise");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  uv_loop_t loop;
  uv_loop_init(&loop);
  srv.loop = &loop;

  int rc = cookie_signer(&srv, err, sizeof err);
  if (rc == 0 && ks_config_uses_pg(&srv.cfg))
    rc = ks_pg_pool_open(&srv.pool, &loop, &srv.cfg, err, sizeof err);
  if (rc == 0 && srv.pool) rc = ks_pg_schema_startup(srv.pool, &loop, &srv.cfg, err, sizeof err);
  if (rc == 0) rc = open_sessions(&srv, err, sizeof err);
  if (rc == 0) rc = open_users(&srv, err, sizeof err);
  if (rc == 0) rc = ks_creds_open(&srv.creds, &loop, srv.pool, &srv.cfg, err, sizeof err);
  if (rc == 0 && (srv.metrics = ks_metrics_new()) == NULL) {
    snprintf(err, sizeof err, "out of memory");
    rc = -1;
  }
  if (rc == 0 && srv.cfg.rate_limit_enabled &&
      (ks_rl_new(&srv.rl_client, srv.cfg.rate_limit_per_minute, srv.cfg.rate_limit_max_keys) != 0 ||
       ks_rl_new(&srv.rl_user, srv.cfg.rate_limit_per_user, srv.cfg.rate_limit_max_keys) != 0)) {
    snprintf(err, sizeof err, "out of memory");
    rc = -1;
  }
  if (rc == 0) {
    int src = ks_signals_start(&srv.signals, &loop, on_signal, &srv);
    if (src != 0) {
      snprintf(err, sizeof err, "cannot start the signal thread: %s", uv_strerror(src));
      rc = -1;
    }
  }
  if (rc == 0) {
    srv.http.loop = &loop;
    srv.http.cfg = &srv.cfg;
    srv.http.on_request = ks_router_on_request;
    srv.http.on_reject = ks_router_on_reject;
    srv.http.on_drained = finish;
    srv.http.ctx = &srv;
    int lrc = ks_http_listen(&srv.http, &srv.port);
    if (lrc != 0) {
      snprintf(err, sizeof err, "cannot listen on %s:%d: %s", srv.cfg.host, srv.cfg.port,
               uv_strerror(lrc));
      rc = -1;
    }
  }
  if (rc != 0) {
    ks_log(KOTTE_LOG_ERROR, "startup_failed", NULL, err);
    fprintf(stderr, "kotte-server: %s\n", err);
    close_stores(&srv);
    if (srv.signals.cb) ks_signals_stop(&srv.signals);
    uv_run(&loop, UV_RUN_DEFAULT); /* let the stores release their handles */
    uv_loop_close(&loop);
    ks_metrics_free(srv.metrics);
    ks_rl_free(srv.rl_client);
    ks_rl_free(srv.rl_user);
    ks_cookie_signer_wipe(&srv.cookie_signer);
    return 1;
  }

  uv_timer_init(&loop, &srv.drain_timer);
  uv_timer_init(&loop, &srv.purge_timer);
  srv.drain_timer.data = srv.purge_timer.data = &srv;
  uv_timer_start(&srv.purge_timer, on_purge_timer, PURGE_EVERY_MS, PURGE_EVERY_MS);
  log_started(&srv);

  uv_run(&loop, UV_RUN_DEFAULT);
  /* a SIGTERM or SIGINT from now on stays pending: the exit is not cut short */
  ks_signals_stop(&srv.signals);
  /* anything still closing (store handles) finishes here */
  while (uv_loop_close(&loop) == UV_EBUSY) uv_run(&loop, UV_RUN_DEFAULT);
  ks_metrics_free(srv.metrics);
  ks_rl_free(srv.rl_client);
  ks_rl_free(srv.rl_user);
  ks_cookie_signer_wipe(&srv.cookie_signer);
  ks_lifecyclef("stopped", "kotte-server stopped");
  return 0;
}

/* `kotte-server routes`: what a deployment may route here (routes.h). No
 * configuration is read: the table is the binary's. */
static int routes_command(void) {
  char *text = ks_routes_json();
  if (text == NULL) {
    fprintf(stderr, "kotte-server: out of memory\n");
    return 1;
  }
  int ok = puts(text) >= 0 && fflush(stdout) == 0;
  cJSON_free(text);
  return ok ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    usage(stdout);
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    printf("kotte-server (libkotte %s)\n", kotte_version());
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "user") == 0) return user_command(argc, argv);
  if (argc == 2 && strcmp(argv[1], "routes") == 0) return routes_command();
  return serve(argc, argv);
}
