/* HTTP/1.1 connections: libuv streams fed to http-parser, one request at a
 * time per connection (see http.h for the model and the limits). */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netdb.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "log.h"

/* Bound of the lingering close: after an answer with Connection: close we
 * shut our side down and keep reading (discarding) for a moment, so that
 * unread request bytes do not make the kernel reset the connection before
 * the client read the answer. */
#define LINGER_MS 2000
#define LINGER_MAX_BYTES (1u << 20)
#define READ_CHUNK 65536
/* http-parser's own limit on the request head (process-wide) stays this
 * far above ours. It counts every byte as it scans, while our callbacks see
 * the URL and header bytes only at the end of each read: a parser limit
 * just above ours would fire first, in the middle of a 64 KiB read, and
 * turn a long URL (414) or header (431) into a bare parse error. With the
 * slack, our count (which gives the right status) trips first; the
 * parser's limit is left for the bytes no callback reports (blanks before
 * a URL or a header value), answered 431 (414 inside the URL). */
#define PARSER_HEADER_SLACK (READ_CHUNK + 4096)

enum conn_state { ST_IDLE, ST_READING, ST_BUSY, ST_WRITING, ST_CLOSING };

typedef struct hdr_off {
  size_t name_off, name_len, value_off, value_len;
} hdr_off;

struct ks_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t write_req;
  uv_write_t continue_req;
  uv_shutdown_t shutdown_req;
  http_parser parser;
  ks_http *h;
  ks_conn *prev, *next;
  enum conn_state state;
  int handles_open;
  int closed; /* close_now() ran */
  int close_after;
  int continue_pending;
  int head; /* the request being answered is a HEAD: no body goes out */
  unsigned requests;
  /* parser-callback errors */
  int reject_status;
  const char *reject_msg;
  /* the request being parsed: one arena for the request line and headers */
  char *arena;
  size_t arena_len, arena_cap, header_bytes;
  size_t url_len;
  int url_done;
  int in_value;
  int headers_done;     /* on_headers_complete ran: what follows is body or trailers */
  size_t trailer_bytes; /* trailer fields seen (counted, not kept) */
  hdr_off *hoff;
  unsigned nhdrs;
  ks_header *hdrs;
  char *body;
  size_t body_len, body_cap;
  ks_request req;
  char remote[64];
  struct sockaddr_storage peer;
  /* input read past a complete request (pipelining) */
  char *pending;
  size_t pending_len;
  /* the response being written */
  char *wbuf;
  size_t wlen;
  size_t discarded;
};

static char read_buf[READ_CHUNK]; /* one loop thread: read callbacks never overlap */
static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void feed(ks_conn *c, const char *data, size_t len);
static void close_now(ks_conn *c);

ks_http *ks_conn_http(ks_conn *c) { return c->h; }

const ks_header *ks_request_header_last(const ks_request *r, const char *name) {
  for (unsigned i = r->nheaders; i-- > 0;)
    if (strcasecmp(r->headers[i].name, name) == 0) return &r->headers[i];
  return NULL;
}

const ks_header *ks_request_header(const ks_request *r, const char *name) {
  for (unsigned i = 0; i < r->nheaders; i++)
    if (strcasecmp(r->headers[i].name, name) == 0) return &r->headers[i];
  return NULL;
}

/* ------------------------------------------------------------------ */
/* request buffers                                                     */
/* ------------------------------------------------------------------ */

static void free_request(ks_conn *c) {
  if (c->arena) {
    sodium_memzero(c->arena, c->arena_len);
    free(c->arena);
  }
  if (c->body) {
    /* bodies carry passwords (login, saved connections) */
    sodium_memzero(c->body, c->body_len);
    free(c->body);
  }
  free(c->hoff);
  free(c->hdrs);
  c->arena = c->body = NULL;
  c->hoff = NULL;
  c->hdrs = NULL;
  c->arena_len = c->arena_cap = c->header_bytes = c->url_len = 0;
  c->body_len = c->body_cap = 0;
  c->nhdrs = 0;
  c->url_done = c->in_value = c->headers_done = 0;
  c->trailer_bytes = 0;
  c->reject_status = 0;
  c->reject_msg = NULL;
  memset(&c->req, 0, sizeof c->req);
}

static void free_pending(ks_conn *c) {
  if (c->pending) {
    sodium_memzero(c->pending, c->pending_len);
    free(c->pending);
  }
  c->pending = NULL;
  c->pending_len = 0;
}

static int fail(ks_conn *c, int status, const char *msg) {
  if (!c->reject_status) {
    c->reject_status = status;
    c->reject_msg = msg;
  }
  return -1;
}

/* Appends header-section bytes, counting them against the limit. */
static int arena_put(ks_conn *c, const char *at, size_t len, int counted) {
  if (counted) {
    c->header_bytes += len;
    if (c->header_bytes > c->h->cfg->max_header_size)
      return fail(c, c->url_done ? 431 : 414,
                  c->url_done ? "Request header fields too large" : "URI too long");
  }
  if (c->arena_len + len > c->arena_cap) return fail(c, 431, "Request header fields too large");
  memcpy(c->arena + c->arena_len, at, len);
  c->arena_len += len;
  return 0;
}

static int end_piece(ks_conn *c) { return arena_put(c, "", 1, 0); }

/* ------------------------------------------------------------------ */
/* http-parser callbacks                                               */
/* ------------------------------------------------------------------ */

static void arm(ks_conn *c, unsigned ms);

static int on_message_begin(http_parser *p) {
  ks_conn *c = p->data;
  const ks_config *cfg = c->h->cfg;
  free_request(c);
  /* request line and headers, their NULs, and copies of path and query */
  c->arena_cap = 2 * cfg->max_header_size + 2 * (size_t)cfg->max_headers + 16;
  c->arena = malloc(c->arena_cap);
  c->hoff = calloc(cfg->max_headers, sizeof *c->hoff);
  if (c->arena == NULL || c->hoff == NULL) return fail(c, 503, "Out of memory");
  c->state = ST_READING;
  arm(c, cfg->read_timeout_ms); /* the whole request must arrive within it */
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  return arena_put(p->data, at, len, 1) == 0 ? 0 : -1;
}

/* The request line is complete once the first header field (or the end
 * of the header section) is reported: the URL is closed off and the
 * version checked. http-parser accepts any one-digit major version;
 * this server speaks HTTP/1.x only (RFC 9110 §15.6.6: 505; a higher 1.x
 * minor is served as 1.1, RFC 9110 §6.2). */
static int finish_url(ks_conn *c) {
  if (c->url_done) return 0;
  c->url_len = c->arena_len;
  c->url_done = 1;
  if (c->parser.http_major != 1) return fail(c, 505, "HTTP version not supported");
  return end_piece(c);
}

/* Trailer fields of a chunked body, which http-parser reports through the
 * header callbacks after on_headers_complete. They are read and dropped
 * (RFC 9110 §6.5.1 lets a recipient discard them; nothing here reads one,
 * and merging them into the header table would let a field arrive after
 * the checks made on the header section), but they count against a limit
 * of their own, the header section's size. */
static int trailer_bytes(ks_conn *c, size_t len) {
  c->trailer_bytes += len;
  if (c->trailer_bytes > c->h->cfg->max_header_size)
    return fail(c, 431, "Request trailer fields too large");
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  ks_conn *c = p->data;
  if (c->headers_done) return trailer_bytes(c, len);
  if (finish_url(c) != 0) return -1;
  if (c->in_value || c->nhdrs == 0) {
    if (c->nhdrs > 0) { /* close the previous value */
      hdr_off *prev = &c->hoff[c->nhdrs - 1];
      prev->value_len = c->arena_len - prev->value_off;
      if (end_piece(c) != 0) return -1;
    }
    if (c->nhdrs >= c->h->cfg->max_headers) return fail(c, 431, "Too many request header fields");
    c->hoff[c->nhdrs].name_off = c->arena_len;
    c->hoff[c->nhdrs].value_off = (size_t)-1;
    c->nhdrs++;
    c->in_value = 0;
  }
  return arena_put(c, at, len, 1) == 0 ? 0 : -1;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  ks_conn *c = p->data;
  if (c->headers_done) return trailer_bytes(c, len);
  if (c->nhdrs == 0) return fail(c, 400, "Malformed HTTP request"); /* http-parser never does */
  hdr_off *h = &c->hoff[c->nhdrs - 1];
  if (!c->in_value) {
    h->name_len = c->arena_len - h->name_off;
    if (end_piece(c) != 0) return -1;
    h->value_off = c->arena_len;
    c->in_value = 1;
  }
  return arena_put(c, at, len, 1) == 0 ? 0 : -1;
}

static void on_continue_written(uv_write_t *req, int status) {
  (void)status;
  ((ks_conn *)req->data)->continue_pending = 0;
}

static char *arena_copy(ks_conn *c, const char *s, size_t len) {
  char *dst = c->arena + c->arena_len;
  if (arena_put(c, s, len, 0) != 0 || end_piece(c) != 0) return NULL;
  return dst;
}

/* 1 if @p v is empty or uri-host[":" port] (RFC 9112 §3.2), as http-parser
 * reads the authority of an absolute URL: "http://" v "/" must parse with
 * nothing but a host (and port) before the path. */
static int valid_host(const char *v, size_t n) {
  if (n == 0) return 1; /* allowed: a target without an authority */
  char buf[300];
  if (n > sizeof buf - 8) return 0; /* a DNS name is at most 253 bytes */
  memcpy(buf, "http://", 7);
  memcpy(buf + 7, v, n);
  buf[7 + n] = '/';
  struct http_parser_url u;
  http_parser_url_init(&u);
  if (http_parser_parse_url(buf, 8 + n, 0, &u) != 0) return 0;
  unsigned allowed = 1u << UF_SCHEMA | 1u << UF_HOST | 1u << UF_PORT | 1u << UF_PATH;
  return (u.field_set & ~allowed) == 0 && (u.field_set & (1u << UF_HOST)) &&
         u.field_data[UF_PATH].off == 7 + n;
}

static int on_headers_complete(http_parser *p) {
  ks_conn *c = p->data;
  const ks_config *cfg = c->h->cfg;
  c->headers_done = 1; /* from here on the header table is fixed */
  if (finish_url(c) != 0) return -1;
  if (c->nhdrs > 0) {
    hdr_off *last = &c->hoff[c->nhdrs - 1];
    if (!c->in_value) { /* a field without a value (http-parser allows "X:") */
      last->name_len = c->arena_len - last->name_off;
      if (end_piece(c) != 0) return -1;
      last->value_off = c->arena_len;
    }
    last->value_len = c->arena_len - last->value_off;
    if (end_piece(c) != 0) return -1;
  }
  c->hdrs = calloc(c->nhdrs ? c->nhdrs : 1, sizeof *c->hdrs);
  if (c->hdrs == NULL) return fail(c, 503, "Out of memory");
  for (unsigned i = 0; i < c->nhdrs; i++) {
    c->hdrs[i].name = c->arena + c->hoff[i].name_off;
    c->hdrs[i].name_len = c->hoff[i].name_len;
    c->hdrs[i].value = c->arena + c->hoff[i].value_off;
    c->hdrs[i].value_len = c->hoff[i].value_len;
  }

  /* The target: origin-form ("/path?query") or absolute-form. */
  struct http_parser_url u;
  http_parser_url_init(&u);
  if (c->url_len == 0 ||
      http_parser_parse_url(c->arena, c->url_len, p->method == HTTP_CONNECT, &u) != 0)
    return fail(c, 400, "Malformed request target");
  const char *path = "/";
  size_t path_len = 1;
  if (u.field_set & (1 << UF_PATH)) {
    path = c->arena + u.field_data[UF_PATH].off;
    path_len = u.field_data[UF_PATH].len;
  }
  const char *query = "";
  size_t query_len = 0;
  if (u.field_set & (1 << UF_QUERY)) {
    query = c->arena + u.field_data[UF_QUERY].off;
    query_len = u.field_data[UF_QUERY].len;
  }
  /* arena_copy() appends behind the URL, which therefore stays in place */
  c->req.path = arena_copy(c, path, path_len);
  c->req.query = arena_copy(c, query, query_len);
  if (c->req.path == NULL || c->req.query == NULL) return -1;
  if (memchr(c->req.path, '\0', path_len)) return fail(c, 400, "Malformed request target");

  /* RFC 9112 §3.2: an HTTP/1.1 request without Host, any request with
   * more than one, or with a Host value that is no uri-host[:port], is
   * answered 400. */
  const ks_header *host = NULL;
  for (unsigned i = 0; i < c->nhdrs; i++) {
    if (strcasecmp(c->hdrs[i].name, "host") != 0) continue;
    if (host) return fail(c, 400, "More than one Host header field");
    host = &c->hdrs[i];
  }
  if (host == NULL && p->http_minor >= 1) return fail(c, 400, "Missing Host header field");
  if (host && !valid_host(host->value, host->value_len))
    return fail(c, 400, "Invalid Host header field");

  if ((p->flags & F_CONTENTLENGTH) && p->content_length > cfg->max_body_size)
    return fail(c, 413, "Request body too large");
  if (p->flags & F_CONTENTLENGTH) {
    c->body_cap = (size_t)p->content_length + 1;
    c->body = malloc(c->body_cap);
    if (c->body == NULL) return fail(c, 503, "Out of memory");
  }

  /* A client that waits for "100 Continue" (curl does, for bodies over
   * 1 KiB) gets it once the headers passed the limits. */
  const ks_header *expect = NULL;
  for (unsigned i = 0; i < c->nhdrs; i++)
    if (strcasecmp(c->hdrs[i].name, "expect") == 0) expect = &c->hdrs[i];
  if (expect && strcasecmp(expect->value, "100-continue") == 0 && p->http_minor >= 1 &&
      !c->continue_pending) {
    uv_buf_t b = uv_buf_init((char *)continue_line, sizeof continue_line - 1);
    c->continue_req.data = c;
    if (uv_write(&c->continue_req, (uv_stream_t *)&c->tcp, &b, 1, on_continue_written) == 0)
      c->continue_pending = 1; /* the request is reused only after its callback */
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  ks_conn *c = p->data;
  size_t max = c->h->cfg->max_body_size;
  if (c->body_len + len > max) return fail(c, 413, "Request body too large");
  if (c->body_len + len + 1 > c->body_cap) { /* chunked: grow */
    size_t cap = c->body_cap ? c->body_cap : 1024;
    while (cap < c->body_len + len + 1) cap *= 2;
    if (cap > max + 1) cap = max + 1;
    char *nb = malloc(cap);
    if (nb == NULL) return fail(c, 503, "Out of memory");
    if (c->body) {
      memcpy(nb, c->body, c->body_len);
      sodium_memzero(c->body, c->body_len);
      free(c->body);
    }
    c->body = nb;
    c->body_cap = cap;
  }
  memcpy(c->body + c->body_len, at, len);
  c->body_len += len;
  return 0;
}

static int on_message_complete(http_parser *p) {
  ks_conn *c = p->data;
  if (!http_should_keep_alive(p) || p->upgrade) c->close_after = 1;
  http_parser_pause(p, 1); /* one request at a time; see feed() */
  return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ------------------------------------------------------------------ */
/* connection lifecycle                                                */
/* ------------------------------------------------------------------ */

static void on_timer(uv_timer_t *t);

static void arm(ks_conn *c, unsigned ms) { uv_timer_start(&c->timer, on_timer, ms, 0); }

static void on_handle_closed(uv_handle_t *hd) {
  ks_conn *c = hd->data;
  if (--c->handles_open > 0) return;
  ks_http *h = c->h;
  free_request(c);
  free_pending(c);
  if (c->wbuf) {
    sodium_memzero(c->wbuf, c->wlen);
    free(c->wbuf);
  }
  free(c);
  h->nconns--;
  if (h->draining && h->nconns == 0 && h->on_drained) h->on_drained(h->ctx);
}

static void close_now(ks_conn *c) {
  if (c->closed) return;
  c->closed = 1;
  c->state = ST_CLOSING;
  /* unlink now so drain/force-close never see it again */
  if (c->prev)
    c->prev->next = c->next;
  else
    c->h->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  uv_read_stop((uv_stream_t *)&c->tcp);
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void alloc_cb(uv_handle_t *hd, size_t suggested, uv_buf_t *buf) {
  (void)hd;
  (void)suggested;
  *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  ks_conn *c = s->data;
  if (nread == 0) return;
  if (nread < 0) { /* EOF or error: nothing more can be answered */
    close_now(c);
    return;
  }
  if (c->state == ST_CLOSING) { /* lingering: discard */
    c->discarded += (size_t)nread;
    if (c->discarded > LINGER_MAX_BYTES) close_now(c);
  } else {
    feed(c, buf->base, (size_t)nread);
  }
  sodium_memzero(buf->base, (size_t)nread);
}

static void start_reading(ks_conn *c) {
  if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read) != 0) close_now(c);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  ks_conn *c = req->data;
  if (status < 0) close_now(c);
}

/* Half-close, then read and discard for a moment (see LINGER_MS). */
static void lingering_close(ks_conn *c) {
  c->state = ST_CLOSING;
  free_request(c);
  free_pending(c);
  c->shutdown_req.data = c;
  if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    close_now(c);
    return;
  }
  arm(c, LINGER_MS);
  start_reading(c);
}

static void reject(ks_conn *c, int status, const char *msg) {
  uv_read_stop((uv_stream_t *)&c->tcp);
  uv_timer_stop(&c->timer);
  free_pending(c);
  c->close_after = 1;
  c->state = ST_BUSY;
  c->h->on_reject(c, status, msg, c->h->ctx);
  if (c->state == ST_BUSY) close_now(c); /* not answered: just close */
}

static void on_timer(uv_timer_t *t) {
  ks_conn *c = t->data;
  switch (c->state) {
    case ST_READING: reject(c, 408, "Request timeout"); break;
    case ST_BUSY: break; /* never armed while the application holds it */
    case ST_IDLE:        /* keep-alive expired */
    case ST_WRITING:     /* the client does not read its answer */
    case ST_CLOSING: /* lingering is over */ close_now(c); break;
  }
}

static void dispatch(ks_conn *c) {
  c->state = ST_BUSY;
  c->requests++;
  uv_timer_stop(&c->timer);
  if (c->body == NULL) {
    c->body = malloc(1);
    if (c->body == NULL) {
      reject(c, 503, "Out of memory");
      return;
    }
  }
  c->body[c->body_len] = '\0';
  c->req.method = (enum http_method)c->parser.method;
  c->head = c->req.method == HTTP_HEAD;
  c->req.headers = c->hdrs;
  c->req.nheaders = c->nhdrs;
  c->req.body = c->body;
  c->req.body_len = c->body_len;
  c->req.remote = c->remote;
  c->req.peer = (const struct sockaddr *)&c->peer;
  if (c->h->draining) c->close_after = 1;
  c->h->on_request(c, &c->req, c->h->ctx);
}

/* Runs the parser over @p data. A complete request pauses it (see
 * on_message_complete); the rest of the input waits in c->pending. */
static void feed(ks_conn *c, const char *data, size_t len) {
  size_t n = http_parser_execute(&c->parser, &parser_settings, data, len);
  enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
  if (e == HPE_PAUSED) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (n < len && !c->close_after) {
      char *rest = malloc(len - n);
      if (rest == NULL) {
        reject(c, 503, "Out of memory");
        return;
      }
      memcpy(rest, data + n, len - n);
      c->pending = rest;
      c->pending_len = len - n;
    }
    dispatch(c);
    return;
  }
  if (c->reject_status)
    reject(c, c->reject_status, c->reject_msg);
  else if (e == HPE_HEADER_OVERFLOW) /* see PARSER_HEADER_SLACK */
    reject(c, !c->url_done && c->arena_len > 0 ? 414 : 431,
           !c->url_done && c->arena_len > 0 ? "URI too long" : "Request header fields too large");
  else if (e != HPE_OK)
    reject(c, 400, "Malformed HTTP request");
}

static void next_request(ks_conn *c) {
  free_request(c);
  c->head = 0;
  c->state = ST_IDLE;
  arm(c, c->h->cfg->idle_timeout_ms);
  http_parser_pause(&c->parser, 0);
  if (c->pending) {
    char *data = c->pending;
    size_t len = c->pending_len;
    c->pending = NULL;
    c->pending_len = 0;
    feed(c, data, len);
    sodium_memzero(data, len);
    free(data);
    if (c->state == ST_IDLE || c->state == ST_READING) start_reading(c);
  } else {
    start_reading(c);
  }
}

static void on_written(uv_write_t *req, int status) {
  ks_conn *c = req->data;
  sodium_memzero(c->wbuf, c->wlen); /* answers may carry a saved password */
  free(c->wbuf);
  c->wbuf = NULL;
  c->wlen = 0;
  if (c->closed) return;
  if (status < 0)
    close_now(c);
  else if (c->close_after)
    lingering_close(c);
  else
    next_request(c);
}

static const char *reason(int status) {
  const char *r = http_status_str((enum http_status)status);
  return r && *r && strcmp(r, "<unknown>") != 0 ? r : "Unknown";
}

static void http_date(char out[40]) {
  static time_t cached_at;
  static char cached[40];
  time_t now = time(NULL);
  if (now != cached_at) {
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached_at = now;
  }
  memcpy(out, cached, 40);
}

void ks_conn_respond(ks_conn *c, int status, const char *headers, const char *body, size_t body_len,
                     int close) {
  if (c->state != ST_BUSY || c->closed) {
    ks_logf(KOTTE_LOG_ERROR, "internal", "response for a connection that is not waiting for one");
    return;
  }
  if (close || c->h->draining) c->close_after = 1;
  char date[40];
  http_date(date);
  char head[256];
  int hn = snprintf(
      head, sizeof head, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Length: %zu\r\nConnection: %s\r\n",
      status, reason(status), date, body_len, c->close_after ? "close" : "keep-alive");
  size_t hl = headers ? strlen(headers) : 0;
  if (c->head) body_len = 0; /* Content-Length above still tells the size */
  size_t total = (size_t)hn + hl + 2 + body_len;
  c->wbuf = malloc(total);
  if (c->wbuf == NULL) {
    close_now(c);
    return;
  }
  memcpy(c->wbuf, head, (size_t)hn);
  if (hl) memcpy(c->wbuf + hn, headers, hl);
  memcpy(c->wbuf + hn + hl, "\r\n", 2);
  if (body_len) memcpy(c->wbuf + hn + hl + 2, body, body_len);
  c->wlen = total;
  c->state = ST_WRITING;
  arm(c, c->h->cfg->read_timeout_ms); /* the client must take it in time */
  uv_buf_t b = uv_buf_init(c->wbuf, (unsigned)total);
  c->write_req.data = c;
  if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
    sodium_memzero(c->wbuf, c->wlen);
    free(c->wbuf);
    c->wbuf = NULL;
    close_now(c);
  }
}

/* ------------------------------------------------------------------ */
/* listening                                                           */
/* ------------------------------------------------------------------ */

static void free_handle(uv_handle_t *hd) { free(hd); }

/* A connection's bookkeeping, before its socket is attached (NULL when
 * out of memory: the caller leaves the socket to the kernel). */
static ks_conn *conn_new(ks_http *h) {
  ks_conn *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->h = h;
  uv_tcp_init(h->loop, &c->tcp);
  uv_timer_init(h->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles_open = 2;
  c->next = h->conns;
  if (h->conns) h->conns->prev = c;
  h->conns = c;
  h->nconns++;
  return c;
}

/* The socket is attached: name the peer and wait for the first request. */
static void conn_start(ks_conn *c) {
  ks_http *h = c->h;
  h->accepted++;
  uv_tcp_nodelay(&c->tcp, 1);
  struct sockaddr_storage *ss = &c->peer;
  int sl = sizeof *ss;
  strcpy(c->remote, "unknown");
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)ss, &sl) == 0) {
    if (ss->ss_family == AF_INET6)
      uv_ip6_name((struct sockaddr_in6 *)ss, c->remote, sizeof c->remote);
    else if (ss->ss_family == AF_INET)
      uv_ip4_name((struct sockaddr_in *)ss, c->remote, sizeof c->remote);
  } else {
    ss->ss_family = AF_UNSPEC;
  }
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  c->state = ST_IDLE;
  /* the first request must come within the read timeout, later ones
   * within the keep-alive idle timeout */
  arm(c, h->cfg->read_timeout_ms);
  start_reading(c);
}

static void on_connection(uv_stream_t *server, int status) {
  ks_http *h = server->data;
  if (status < 0) {
    ks_logf(KOTTE_LOG_WARN, "accept_failed", "accept failed: %s", uv_strerror(status));
    return;
  }
  if (h->draining) return;
  if (h->nconns >= h->cfg->max_connections) {
    /* over the limit: accept and close at once, so the backlog drains */
    uv_tcp_t *t = malloc(sizeof *t);
    if (t == NULL) return;
    uv_tcp_init(h->loop, t);
    if (uv_accept(server, (uv_stream_t *)t) == 0) h->refused++;
    uv_close((uv_handle_t *)t, free_handle);
    return;
  }
  ks_conn *c = conn_new(h);
  if (c == NULL) return;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    close_now(c);
    return;
  }
  conn_start(c);
}

int ks_http_listen(ks_http *h, int *port_out) {
  struct sockaddr_storage addr;
  int rc = uv_ip4_addr(h->cfg->host, h->cfg->port, (struct sockaddr_in *)&addr);
  if (rc != 0) rc = uv_ip6_addr(h->cfg->host, h->cfg->port, (struct sockaddr_in6 *)&addr);
  if (rc != 0) { /* a name ("localhost"): resolved once, at start */
    uv_getaddrinfo_t gai;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc =
        uv_getaddrinfo(h->loop, &gai, NULL, h->cfg->host, NULL, &hints); /* no callback: blocking */
    if (rc != 0) return rc;
    memcpy(&addr, gai.addrinfo->ai_addr, gai.addrinfo->ai_addrlen);
    uv_freeaddrinfo(gai.addrinfo);
    if (addr.ss_family == AF_INET6)
      ((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)h->cfg->port);
    else
      ((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)h->cfg->port);
  }
  http_parser_set_max_header_size((uint32_t)(h->cfg->max_header_size + PARSER_HEADER_SLACK));
  uv_tcp_init(h->loop, &h->listener);
  h->listener.data = h;
  rc = uv_tcp_bind(&h->listener, (struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&h->listener, 1024, on_connection);
  if (rc != 0) {
    uv_close((uv_handle_t *)&h->listener, NULL);
    return rc;
  }
  h->listening = 1;
  struct sockaddr_storage bound;
  int bl = sizeof bound;
  *port_out = h->cfg->port;
  if (uv_tcp_getsockname(&h->listener, (struct sockaddr *)&bound, &bl) == 0)
    *port_out = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
  return 0;
}

static int input_waiting(ks_conn *c) {
  uv_os_fd_t fd;
  char b;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) return 0;
  return recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
}

/* Connections the kernel completed before the signal that the loop had not
 * accepted yet: closing the listener would reset them, and a client that
 * had sent its request would see ECONNRESET with no answer. libuv accepts
 * only from its connection callback, one socket per call, so the backlog is
 * emptied here with accept4() on the listener's descriptor and each socket
 * is handed to libuv with uv_tcp_open(). ks_http_drain() then treats them
 * as every other connection: a request already in the socket is served,
 * an empty one is closed like an idle keep-alive connection. */
static void take_backlog(ks_http *h) {
  uv_os_fd_t lfd;
  if (uv_fileno((uv_handle_t *)&h->listener, &lfd) != 0) return;
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return; /* EAGAIN: the backlog is empty; anything else: leave it */
    }
    if (h->nconns >= h->cfg->max_connections) {
      close(fd);
      h->refused++;
      continue;
    }
    ks_conn *c = conn_new(h);
    if (c == NULL) {
      close(fd);
      continue;
    }
    if (uv_tcp_open(&c->tcp, fd) != 0) {
      close(fd);
      close_now(c);
      continue;
    }
    conn_start(c);
  }
}

void ks_http_drain(ks_http *h) {
  if (h->draining) return;
  h->draining = 1;
  if (h->listening) {
    take_backlog(h);
    uv_close((uv_handle_t *)&h->listener, NULL);
    h->listening = 0;
  }
  for (ks_conn *c = h->conns, *next; c; c = next) {
    next = c->next;
    /* An idle connection is closed now, unless a request already waits in
     * the kernel's buffer (sent before the signal): that one is served. */
    if (c->state == ST_IDLE && !c->pending && !input_waiting(c))
      close_now(c);
    else
      c->close_after = 1; /* reading, busy or writing: finish this one */
  }
  if (h->nconns == 0 && h->on_drained) h->on_drained(h->ctx);
}

void ks_http_force_close(ks_http *h) {
  for (ks_conn *c = h->conns, *next; c; c = next) {
    next = c->next;
    if (c->state != ST_BUSY) close_now(c);
  }
}
