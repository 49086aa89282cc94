/* kotte-server: HTTP/1.1 connections on libuv, parsed by http-parser.
 *
 * One request per connection is handled at a time: when a request is
 * complete the parser is paused and reading stops until the application
 * has answered it and the answer has been handed to the kernel; then the
 * next pipelined request (if any bytes are left) or reading resumes. So a
 * connection holds at most one request, one response and one read buffer.
 *
 * Limits: request line + headers (max_header_size), header count
 * (max_headers), body (max_body_size, also when chunked). Timeouts: a
 * request must arrive completely within read_timeout_ms of its first byte
 * (slowloris), a response must be taken by the client within the same
 * bound, and a keep-alive connection is closed after idle_timeout_ms
 * without a new request. Errors in the request itself get 400 (also an
 * HTTP/1.1 request without Host, or with several), 408, 413, 414, 431 or
 * 505 (a version other than HTTP/1.x) and the connection is closed (after
 * a short lingering close so the client can read the answer). Trailer
 * fields of a chunked body are read within the header-size limit and
 * dropped: they never reach the request's header table. */
#ifndef KS_HTTP_H
#define KS_HTTP_H

#include <stddef.h>

#include <http_parser.h>
#include <uv.h>

#include "config.h"

typedef struct ks_header {
  const char *name; /* NUL-terminated, as received */
  size_t name_len;
  const char *value; /* NUL-terminated, as received */
  size_t value_len;
} ks_header;

typedef struct ks_request {
  enum http_method method;
  const char *path;  /* NUL-terminated, without the query string */
  const char *query; /* NUL-terminated, "" when none */
  ks_header *headers;
  unsigned nheaders;
  char *body; /* NUL-terminated (also when empty) */
  size_t body_len;
  const char *remote;          /* peer address, as text */
  const struct sockaddr *peer; /* the same; sa_family AF_UNSPEC if unknown */
} ks_request;

/* First header named @p name (case-insensitive), or NULL. */
const ks_header *ks_request_header(const ks_request *r, const char *name);
/* Last header named @p name, or NULL. */
const ks_header *ks_request_header_last(const ks_request *r, const char *name);

typedef struct ks_conn ks_conn;
typedef struct ks_http ks_http;

/* A complete request: answer it exactly once with ks_conn_respond(),
 * now or later (the request and connection stay valid until then). */
typedef void (*ks_request_fn)(ks_conn *c, ks_request *req, void *ctx);
/* A request the HTTP layer refused (400, 408, 413, 414, 431, 503, 505): answer it
 * with ks_conn_respond() before returning; the connection closes after. */
typedef void (*ks_reject_fn)(ks_conn *c, int status, const char *message, void *ctx);
/* Called once after ks_http_drain() when the last connection has closed. */
typedef void (*ks_drained_fn)(void *ctx);

struct ks_http {
  uv_loop_t *loop;
  const ks_config *cfg;
  ks_request_fn on_request;
  ks_reject_fn on_reject;
  ks_drained_fn on_drained;
  void *ctx;
  /* private */
  uv_tcp_t listener;
  int listening;
  int draining;
  ks_conn *conns;
  unsigned nconns;
  unsigned long long accepted, refused;
};

/* Binds and listens on cfg->host:cfg->port. Returns 0 or a libuv error;
 * *port_out gets the bound port (useful with port 0). */
int ks_http_listen(ks_http *h, int *port_out);

/* Stops accepting, closes idle connections and lets busy ones finish
 * their current request (answered with Connection: close). */
void ks_http_drain(ks_http *h);

/* After the drain bound: closes every connection not waiting for the
 * application (those close as soon as they are answered). */
void ks_http_force_close(ks_http *h);

/* Answers the current request. @p headers is a block of complete
 * "Name: value\r\n" lines (or NULL); Content-Length, Date and Connection
 * are added here. @p close forces Connection: close. The body is copied. */
void ks_conn_respond(ks_conn *c, int status, const char *headers, const char *body, size_t body_len,
                     int close);

/* The connection's HTTP layer (for the application's context). */
ks_http *ks_conn_http(ks_conn *c);

#endif
