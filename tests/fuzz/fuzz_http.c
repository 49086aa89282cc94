/* libFuzzer target: whole byte streams through kotte-server's HTTP layer
 * and router, in process: the server's own objects (libkotte_server_core,
 * everything of kotte-server but main.c) on a real libuv loop, a real
 * loopback TCP connection to it, the session and credential stores on
 * memory and a users file with the user admin.
 *
 * Input: byte 0 says how the rest is sent, the rest is what a client sends
 * (one request, pipelined ones, chunked bodies with trailers, garbage):
 *   bits 0-5  0: one write; else pieces of 1..8*n bytes (n = these bits,
 *             sizes from a small generator seeded with byte 0), with a
 *             loop turn between pieces, so the server reads the stream
 *             split at changing points;
 *   bit 6     after the last piece the client resets the connection
 *             (SO_LINGER 0) without reading: the server's writes fail;
 *             otherwise it half-closes and reads every answer.
 * Invariants: no crash, leak or undefined behaviour (ASan, UBSan, LSan);
 * the connection ends (a hang is a libFuzzer timeout); what the server
 * sent is a sequence of complete, well-formed HTTP/1.1 responses (status
 * line, header fields, one Content-Length and exactly that many body bytes,
 * a Connection field; an interim 100 Continue has no body); no exchange is
 * left open; and a new connection still gets 200 from /api/v1/health. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "creds.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "users.h"
#include "users_internal.h"

static ks_server srv;
static uv_loop_t loop;

/* ---- the server, set up once ------------------------------------------ */

static void die(const char *what, const char *err) {
  fprintf(stderr, "fuzz_http: %s: %s\n", what, err);
  abort();
}

/* The users file holds admin with an argon2id hash of the lowest cost, and
 * the dummy hash checked for unknown users is replaced by one of the same
 * cost: the checks are the real ones (libsodium on libuv's thread pool),
 * only cheap enough for thousands of logins a second. */
static void cheap_users(const char *path) {
  char hash[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(hash, "admin", 5, crypto_pwhash_OPSLIMIT_MIN,
                            crypto_pwhash_MEMLIMIT_MIN, crypto_pwhash_ALG_ARGON2ID13) != 0)
    die("hash", "crypto_pwhash_str_alg failed");
  FILE *f = fopen(path, "w");
  if (f == NULL || fprintf(f, "admin:%s\n", hash) < 0 || fclose(f) != 0) die("users file", path);
}

static char dir[] = "/tmp/kotte-fuzz-http-XXXXXX";
static char users[64];

static void remove_files(void) {
  unlink(users);
  rmdir(dir);
}

static void setup(void) {
  if (mkdtemp(dir) == NULL) die("mkdtemp", dir);
  snprintf(users, sizeof users, "%s/users", dir);
  atexit(remove_files);
  if (sodium_init() < 0) die("sodium_init", "failed");
  cheap_users(users);
  setenv("KOTTE_SERVER_HOST", "127.0.0.1", 1);
  setenv("KOTTE_SERVER_PORT", "0", 1);
  setenv("SESSION_STORAGE_TYPE", "memory", 1);
  setenv("CREDENTIAL_STORAGE_TYPE", "memory", 1);
  setenv("KOTTE_USERS_FILE", users, 1);
  setenv("MASTER_ENCRYPTION_KEY",
         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 1);
  setenv("ENVIRONMENT", "development", 1);
  setenv("LOG_LEVEL", "DEBUG", 1); /* every log line is built (and fuzzed) ... */
  if (freopen("/dev/null", "w", stdout) == NULL) die("freopen", "stdout"); /* ... not shown */
  /* the limiter runs (X-Forwarded-For from 127.0.0.1 names the client),
   * with limits out of reach so that it never stops the fuzzing */
  setenv("RATE_LIMIT_ENABLED", "true", 1);
  setenv("RATE_LIMIT_PER_MINUTE", "1000000000", 1);
  setenv("RATE_LIMIT_PER_USER", "1000000000", 1);
  setenv("KOTTE_MAX_HEADER_SIZE", "4096", 1); /* limits within the inputs' reach */
  setenv("KOTTE_MAX_HEADERS", "16", 1);
  setenv("KOTTE_MAX_BODY_SIZE", "2048", 1);
  char err[1024];
  if (ks_config_load(&srv.cfg, 0, NULL, err, sizeof err) != 0) die("config", err);
  ks_log_init((kotte_log_level)srv.cfg.log_level);
  uv_loop_init(&loop);
  srv.loop = &loop;

  kotte_session_backend *be = NULL;
  kotte_session_options opts = KOTTE_SESSION_OPTIONS_INIT;
  opts.idle_timeout_s = srv.cfg.session_idle_timeout;
  opts.max_age_s = srv.cfg.session_max_age;
  /* as main.c: the CSRF token is a sealed secret of the session */
  kotte_keyring *kr = NULL;
  if (ks_keyring_open(&srv.cfg, &kr, err, sizeof err) != 0) die("key ring", err);
  opts.keyring = kr;
  if (kotte_session_backend_memory_new(&be) != 0 ||
      kotte_session_store_new(&srv.sessions, &loop, be, &opts) != 0)
    die("session store", kotte_error_detail());
  kotte_keyring_free(kr); /* the store holds its own reference */
  if (ks_users_open_file(&srv.users, &loop, &srv.cfg, err, sizeof err) != 0) die("users", err);
  unsigned char rnd[16];
  randombytes_buf(rnd, sizeof rnd);
  if (crypto_pwhash_str_alg(srv.users->dummy_hash, (const char *)rnd, sizeof rnd,
                            crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN,
                            crypto_pwhash_ALG_ARGON2ID13) != 0)
    die("dummy hash", "crypto_pwhash_str_alg failed");
  if (ks_creds_open(&srv.creds, &loop, NULL, &srv.cfg, err, sizeof err) != 0) die("creds", err);
  if ((srv.metrics = ks_metrics_new()) == NULL) die("metrics", "out of memory");
  if (ks_rl_new(&srv.rl_client, srv.cfg.rate_limit_per_minute, srv.cfg.rate_limit_max_keys) != 0 ||
      ks_rl_new(&srv.rl_user, srv.cfg.rate_limit_per_user, srv.cfg.rate_limit_max_keys) != 0)
    die("rate limits", "out of memory");
  srv.http.loop = &loop;
  srv.http.cfg = &srv.cfg;
  srv.http.on_request = ks_router_on_request;
  srv.http.on_reject = ks_router_on_reject;
  srv.http.ctx = &srv;
  int rc = ks_http_listen(&srv.http, &srv.port);
  if (rc != 0) die("listen", uv_strerror(rc));
}

/* ---- one client connection -------------------------------------------- */

typedef struct client {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_write_t write_req;
  uv_shutdown_t shutdown_req;
  uv_idle_t pacer; /* one loop turn between pieces */
  const uint8_t *data;
  size_t len, off;
  uint32_t rng;
  unsigned max_piece; /* 0: everything in one write */
  int abort_after;    /* reset instead of half-close, read nothing */
  int writing, closed, pacer_closed;
  char *in;
  size_t in_len, in_cap;
} client;

static void on_client_closed(uv_handle_t *h) { ((client *)h->data)->closed = 1; }
static void on_pacer_closed(uv_handle_t *h) { ((client *)h->data)->pacer_closed = 1; }

static void client_close(client *c) {
  if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_client_closed);
  if (!uv_is_closing((uv_handle_t *)&c->pacer)) uv_close((uv_handle_t *)&c->pacer, on_pacer_closed);
}

static void alloc_in(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  client *c = h->data;
  if (c->in_cap - c->in_len < 65536) {
    c->in_cap = c->in_cap * 2 + 65536;
    c->in = realloc(c->in, c->in_cap);
    if (c->in == NULL) abort();
  }
  (void)suggested;
  *buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  client *c = s->data;
  (void)buf;
  if (n > 0) c->in_len += (size_t)n;
  if (n < 0) client_close(c); /* EOF (the server closed) or reset */
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status; /* a reset connection: the read side tells */
}

static void on_piece_written(uv_write_t *req, int status) {
  client *c = req->data;
  c->writing = 0;
  if (status < 0) { /* the server closed or reset: stop sending */
    c->off = c->len;
    if (c->abort_after) client_close(c);
  }
}

/* Writes the next piece, once per loop turn; after the last one resets or
 * half-closes. */
static void pace(uv_idle_t *idle) {
  client *c = idle->data;
  if (c->writing || c->closed || uv_is_closing((uv_handle_t *)&c->tcp)) return;
  if (c->off < c->len) {
    size_t n = c->len - c->off;
    if (c->max_piece) {
      c->rng = c->rng * 1103515245u + 12345u;
      size_t piece = 1 + (c->rng >> 16) % c->max_piece;
      if (piece < n) n = piece;
    }
    uv_buf_t b = uv_buf_init((char *)c->data + c->off, (unsigned)n);
    c->off += n;
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_piece_written) == 0)
      c->writing = 1;
    else
      c->off = c->len;
    return;
  }
  uv_idle_stop(idle);
  if (c->abort_after) {
    uv_tcp_close_reset(&c->tcp, on_client_closed);
    uv_close((uv_handle_t *)&c->pacer, on_pacer_closed);
    return;
  }
  c->shutdown_req.data = c;
  if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) client_close(c);
}

static void on_connected(uv_connect_t *req, int status) {
  client *c = req->data;
  if (status < 0) {
    fprintf(stderr, "fuzz_http: connect: %s\n", uv_strerror(status));
    abort();
  }
  if (!c->abort_after) uv_read_start((uv_stream_t *)&c->tcp, alloc_in, on_client_read);
  uv_idle_start(&c->pacer, pace);
}

/* Sends @p data as @p mode says and runs the loop until the connection is
 * gone on both sides and no exchange is left; c->in holds what was read. */
static void exchange(client *c, const uint8_t *data, size_t len, uint8_t mode) {
  memset(c, 0, sizeof *c);
  c->data = data;
  c->len = len;
  c->max_piece = 8u * (mode & 0x3f);
  c->rng = mode * 2654435761u;
  c->abort_after = (mode & 0x40) != 0;
  uv_tcp_init(&loop, &c->tcp);
  uv_idle_init(&loop, &c->pacer);
  c->tcp.data = c->pacer.data = c->connect_req.data = c;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", srv.port, &a);
  if (uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&a, on_connected) != 0)
    abort();
  while (!(c->closed && c->pacer_closed && srv.http.nconns == 0 && srv.exchanges == 0))
    uv_run(&loop, UV_RUN_ONCE);
}

/* ---- what the server sent --------------------------------------------- */

static void bad(const char *why, const char *at, const char *all, size_t len) {
  fprintf(stderr, "fuzz_http: %s at offset %zu of %zu bytes the server sent:\n%.*s\n", why,
          (size_t)(at - all), len, (int)(len > 4000 ? 4000 : len), all);
  abort();
}

/* Every response: "HTTP/1.1 NNN reason", header fields, one Content-Length
 * (except 100 Continue) and Connection, then exactly that many body bytes
 * (none for a HEAD, whose answer is followed at once by the next one or
 * the end: bodies here never begin with "HTTP/1.1 "). */
static void check_responses(const char *p, size_t len, int head_possible) {
  const char *end = p + len, *all = p;
  while (p < end) {
    const char *eoh = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
    if (eoh == NULL) bad("response head cut short", p, all, len);
    if (end - p < 13 || memcmp(p, "HTTP/1.1 ", 9) != 0 || p[9] < '1' || p[9] > '5' ||
        p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' || p[12] != ' ')
      bad("not an HTTP/1.1 status line", p, all, len);
    int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    long clen = -1;
    int connection = 0;
    const char *line = memmem(p, (size_t)(eoh - p) + 2, "\r\n", 2) + 2;
    while (line < eoh + 2) {
      const char *eol = memmem(line, (size_t)(eoh + 2 - line), "\r\n", 2);
      const char *colon = memchr(line, ':', (size_t)(eol - line));
      if (colon == NULL || colon == line || colon[1] != ' ') bad("malformed header field", line, all, len);
      for (const char *q = line; q < colon; q++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", *q))
          bad("header name with a byte no token has", q, all, len);
      for (const char *q = colon + 2; q < eol; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f) bad("control byte in a header value", q, all, len);
      size_t nl = (size_t)(colon - line);
      if (nl == 14 && strncasecmp(line, "content-length", 14) == 0) {
        if (clen >= 0) bad("two Content-Length fields", line, all, len);
        char *e;
        clen = strtol(colon + 2, &e, 10);
        if (e != eol || clen < 0) bad("bad Content-Length", line, all, len);
      }
      if (nl == 10 && strncasecmp(line, "connection", 10) == 0) connection = 1;
      line = eol + 2;
    }
    p = eoh + 4;
    if (status == 100) {
      if (clen >= 0) bad("100 Continue with a Content-Length", p, all, len);
      continue;
    }
    if (clen < 0 || !connection) bad("no Content-Length or Connection field", p, all, len);
    if (end - p >= 9 && memcmp(p, "HTTP/1.1 ", 9) == 0) continue; /* a HEAD's answer */
    if (p == end && head_possible) break;                             /* the same, last */
    if (end - p < clen) bad("body cut short", p, all, len);
    p += clen;
  }
}

/* ---- the target ------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (srv.loop == NULL) setup();
  if (size == 0) return 0;
  client c;
  exchange(&c, data + 1, size - 1, data[0]);
  if (!c.abort_after) check_responses(c.in, c.in_len, memmem(data, size, "HEAD", 4) != NULL);
  free(c.in);

  static const char health[] =
      "GET /api/v1/health HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";
  exchange(&c, (const uint8_t *)health, sizeof health - 1, 0);
  if (c.in_len < 13 || memcmp(c.in, "HTTP/1.1 200 ", 13) != 0)
    bad("health after the input: not 200", c.in ? c.in : "", c.in ? c.in : "", c.in_len);
  check_responses(c.in, c.in_len, 0);
  free(c.in);
  return 0;
}
