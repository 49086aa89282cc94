/* One libpq connection driven by a uv_poll_t: non-blocking connect (the
 * poll handle follows PQsocket() as PQconnectPoll() moves between hosts),
 * the on-connect SQL, then pipeline mode: queries go out as Bind/Execute,
 * batches end with a Sync, and results are matched to queries in order. */
#include <poll.h>
#include <sys/stat.h>
#include <sodium.h>
#include <string.h>

#include "pg/pg_internal.h"

static void on_poll(uv_poll_t *h, int status, int events);

/* ---- the poll handle ------------------------------------------------------ */

static void poll_release(kotte__pg_conn *c) {
  kotte__pg_poll *ph = c->poll;
  if (ph == NULL) return;
  c->poll = NULL;
  ph->conn = NULL;
  /* uv_close stops polling now; the struct goes in the close callback. */
  uv_close((uv_handle_t *)&ph->h, kotte__pg_handle_closed);
}

/* Polls the connection's current socket for @p events, re-creating the
 * handle when libpq moved to another socket (a fd number may even be
 * reused for the new socket: the old handle is stopped first). */
static int watch(kotte__pg_conn *c, int events) {
  int fd = PQsocket(c->pg);
  if (fd < 0) return -1;
  /* While connecting, libpq may close a socket and open the next one under
   * the same number: the socket's inode tells them apart. */
  ino_t ino = 0;
  if (c->state != CONN_READY) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    ino = st.st_ino;
  }
  if (c->poll && (c->poll->fd != fd || (c->state != CONN_READY && c->poll->ino != ino)))
    poll_release(c);
  if (c->poll == NULL) {
    kotte__pg_poll *ph = kotte__calloc(1, sizeof *ph);
    if (ph == NULL) return -1;
    if (uv_poll_init_socket(c->pool->loop, &ph->h, fd) != 0) {
      kotte__free(ph);
      return -1;
    }
    ph->h.data = ph;
    ph->conn = c;
    ph->pool = c->pool;
    ph->fd = fd;
    ph->ino = ino;
    c->pool->n_handles++;
    uv_unref((uv_handle_t *)&ph->h); /* the pool's async handle holds the loop */
    c->poll = ph;
  }
  if (c->poll->events != events) {
    if (uv_poll_start(&c->poll->h, events, on_poll) != 0) return -1;
    c->poll->events = events;
  }
  return 0;
}

static int ready_events(kotte__pg_conn *c) {
  return UV_READABLE | (c->want_write ? UV_WRITABLE : 0);
}

/* ---- steps: what the next results belong to ----------------------------------- */

static int step_push(kotte__pg_conn *c, kotte__pg_step s) {
  if (c->steps_n == c->steps_cap) {
    size_t cap = c->steps_cap ? c->steps_cap * 2 : 16;
    kotte__pg_step *n = kotte__malloc(cap * sizeof *n);
    if (n == NULL) return -1;
    for (size_t i = 0; i < c->steps_n; i++) n[i] = c->steps[(c->steps_head + i) % c->steps_cap];
    kotte__free(c->steps);
    c->steps = n;
    c->steps_cap = cap;
    c->steps_head = 0;
  }
  c->steps[(c->steps_head + c->steps_n) % c->steps_cap] = s;
  c->steps_n++;
  return 0;
}

static kotte__pg_step *step_head(kotte__pg_conn *c) {
  return c->steps_n ? &c->steps[c->steps_head] : NULL;
}

static void step_pop(kotte__pg_conn *c) {
  c->steps_head = (c->steps_head + 1) % c->steps_cap;
  c->steps_n--;
}

/* ---- lifecycle -------------------------------------------------------------------- */

static void conn_unlink(kotte__pg_conn *c) {
  kotte_pg_pool *p = c->pool;
  if (c->prev) c->prev->next = c->next;
  else p->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  if (c->state == CONN_READY) p->n_ready--;
  else p->n_connecting--;
  if (c->sync_listed) {
    kotte__pg_conn **pp = &p->sync_head;
    while (*pp && *pp != c) pp = &(*pp)->sync_next;
    if (*pp) *pp = c->sync_next;
    c->sync_listed = 0;
  }
}

/* Closes the connection. Queries still on it must have been handed off. */
void kotte__pg_conn_close(kotte__pg_conn *c) {
  conn_unlink(c);
  if (c->cancel) c->cancel->conn = NULL;
  poll_release(c); /* stop polling before PQfinish closes the socket */
  PQfinish(c->pg);
  kotte__free(c->steps);
  kotte__free(c->prepared);
  kotte__free(c);
}

/* Notices and errors that arrive outside a query (a FATAL before the server
 * closes the connection): to the log hook, by SQLSTATE only. */
static void on_notice(void *arg, const PGresult *res) {
  kotte__pg_conn *c = arg;
  const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  /* FATAL outside a query: the server is about to close this connection */
  if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0)) c->broken = 1;
  kotte__log(KOTTE_LOG_DEBUG, "pg pool: server %s (SQLSTATE %s)", sev ? sev : "notice",
             code ? code : "?");
}

/* The first line of libpq's message: connection errors name host, port and
 * user but never the password. */
static const char *first_line(PGconn *pg, char *buf, size_t n) {
  const char *m = pg ? PQerrorMessage(pg) : "";
  size_t i = 0;
  while (m[i] && m[i] != '\n' && i + 1 < n) {
    buf[i] = m[i];
    i++;
  }
  buf[i] = '\0';
  return buf;
}

static void connect_failed(kotte__pg_conn *c, const char *what) {
  char line[200], why[256];
  first_line(c->pg, line, sizeof line);
  snprintf(why, sizeof why, "%s%s%s", what, line[0] ? ": " : "", line);
  kotte__log(KOTTE_LOG_WARN, "pg pool: %s", why);
  kotte_pg_pool *p = c->pool;
  uint64_t serial = c->serial;
  kotte__pg_conn_close(c);
  kotte__pg_connect_failed(p, serial, why);
}

int kotte__pg_conn_start(kotte_pg_pool *p) {
  kotte__pg_conn *c = kotte__calloc(1, sizeof *c);
  if (c == NULL) return KOTTE_ENOMEM;
  c->pool = p;
  c->serial = ++p->serial;
  c->state = CONN_CONNECTING;
  c->created = kotte__pg_now(p);
  c->connect_deadline = p->opts.connect_timeout_ms ? c->created + p->opts.connect_timeout_ms : 0;
  c->next = p->conns;
  if (p->conns) p->conns->prev = c;
  p->conns = c;
  p->n_connecting++;
  c->pg = kotte__pg_connect_start(p->conninfo, p->host_rotation);
  if (c->pg) PQsetNoticeReceiver(c->pg, on_notice, c);
  if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD || PQsetnonblocking(c->pg, 1) != 0 ||
      watch(c, UV_WRITABLE) != 0) {
    connect_failed(c, c->pg ? "connection failed" : "out of memory");
    return KOTTE_EDB;
  }
  return 0;
}

static void become_ready(kotte__pg_conn *c) {
  kotte_pg_pool *p = c->pool;
  if (PQenterPipelineMode(c->pg) != 1) {
    connect_failed(c, "could not enter pipeline mode");
    return;
  }
  uint64_t now = kotte__pg_now(p);
  c->state = CONN_READY;
  p->n_connecting--;
  p->n_ready++;
  c->idle_since = now;
  if (p->opts.max_lifetime_ms) {
    uint64_t life = p->opts.max_lifetime_ms;
    uint64_t jitter = p->opts.lifetime_jitter_ms < life ? p->opts.lifetime_jitter_ms : life / 2;
    if (jitter) life -= randombytes_uniform((uint32_t)jitter + 1);
    c->retire_at = now + life;
  }
  if (watch(c, ready_events(c)) != 0) {
    kotte__pg_conn_lost(c, "poll failed");
    return;
  }
  kotte__pg_connected(p);
}

static void connected(kotte__pg_conn *c) {
  kotte_pg_pool *p = c->pool;
  if (p->on_connect_sql == NULL) {
    become_ready(c);
    return;
  }
  c->state = CONN_SETUP;
  if (!PQsendQuery(c->pg, p->on_connect_sql)) {
    connect_failed(c, "on-connect SQL not sent");
    return;
  }
  int f = PQflush(c->pg);
  c->want_write = f == 1;
  if (f < 0 || watch(c, ready_events(c)) != 0) connect_failed(c, "on-connect SQL not sent");
}

static void setup_input(kotte__pg_conn *c) {
  if (!PQconsumeInput(c->pg)) {
    connect_failed(c, "connection lost during on-connect SQL");
    return;
  }
  while (!PQisBusy(c->pg)) {
    PGresult *res = PQgetResult(c->pg);
    if (res == NULL) {
      if (c->setup_failed) connect_failed(c, "on-connect SQL failed");
      else become_ready(c);
      return;
    }
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
      const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
      if (!c->setup_failed)
        kotte__log(KOTTE_LOG_WARN, "pg pool: on-connect SQL failed (SQLSTATE %s)", code ? code : "?");
      c->setup_failed = 1;
    }
    PQclear(res);
  }
}

/* ---- queries -------------------------------------------------------------------------- */

static int ensure_prepared_cap(kotte__pg_conn *c, unsigned int idx) {
  if (idx < c->prepared_cap) return 0;
  size_t cap = c->prepared_cap ? c->prepared_cap : 8;
  while (cap <= idx) cap *= 2;
  unsigned char *n = kotte__realloc(c->prepared, cap);
  if (n == NULL) return -1;
  memset(n + c->prepared_cap, 0, cap - c->prepared_cap);
  c->prepared = n;
  c->prepared_cap = cap;
  return 0;
}

/* Sends @p r as part of the open batch. 0, or -1 when the connection broke
 * (then the caller fails the connection; @p r is already on it). */
int kotte__pg_conn_send(kotte__pg_conn *c, kotte__pg_req *r) {
  kotte_pg_pool *p = c->pool;
  int resfmt = (r->flags & KOTTE_PG_BINARY_RESULT) ? 1 : 0;
  r->state = REQ_SENT;
  r->conn = c;
  r->seg = c->seg_open;
  r->res = NULL;
  r->failed = r->aborted = 0;
  kotte__pg_list_push(&c->inflight, r);
  if (r->stmt) {
    const kotte_pg_stmt *s = r->stmt;
    if (ensure_prepared_cap(c, s->idx) != 0) return -1;
    if (!c->prepared[s->idx]) {
      if (!PQsendPrepare(c->pg, s->name, s->sql, s->nparams, s->types)) return -1;
      if (step_push(c, (kotte__pg_step){ STEP_PREPARE, r, s->idx, 0 }) != 0) return -1;
      c->prepared[s->idx] = 1;
    }
    if (!PQsendQueryPrepared(c->pg, s->name, r->nparams, (const char *const *)r->values,
                             r->lengths, r->formats, resfmt))
      return -1;
  } else if (!PQsendQueryParams(c->pg, r->sql, r->nparams, NULL, (const char *const *)r->values,
                                r->lengths, r->formats, resfmt)) {
    return -1;
  }
  if (step_push(c, (kotte__pg_step){ STEP_EXEC, r, 0, 0 }) != 0) return -1;
  c->seg_fill++;
  if (p->opts.pipeline_depth <= 1 || c->seg_fill >= p->opts.pipeline_depth)
    return kotte__pg_conn_sync(c);
  kotte__pg_need_sync(c);
  return 0;
}

/* Ends the open batch with a Sync and sends what is buffered. 0, or -1
 * when the connection broke (the caller then calls kotte__pg_conn_lost()). */
int kotte__pg_conn_sync(kotte__pg_conn *c) {
  if (c->seg_fill == 0) return 0;
  if (!PQpipelineSync(c->pg) ||
      step_push(c, (kotte__pg_step){STEP_SYNC, NULL, 0, c->seg_open}) != 0)
    return -1;
  c->seg_open++;
  c->seg_fill = 0;
  c->pool->stats.batches++;
  int f = PQflush(c->pg);
  if (f < 0) return -1;
  c->want_write = f == 1;
  return watch(c, ready_events(c));
}

static int sqlstate_is(const PGresult *res, const char *code) {
  const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  return s && strcmp(s, code) == 0;
}

static int sqlstate_class(const PGresult *res, const char *cls) {
  const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  return s && strncmp(s, cls, 2) == 0;
}

/* The server is going away or the link broke: the connection is lost. */
static int is_connection_error(const PGresult *res) {
  return sqlstate_class(res, "08") || sqlstate_is(res, "57P01") || sqlstate_is(res, "57P02") ||
         sqlstate_is(res, "57P03");
}

/* Retires every ready connection to the same server as @p c: a read-only
 * answer means it is (now) a standby. */
static void retire_same_server(kotte__pg_conn *c) {
  const char *h = PQhost(c->pg), *port = PQport(c->pg);
  for (kotte__pg_conn *o = c->pool->conns; o; o = o->next) {
    if (o->state != CONN_READY) continue;
    const char *oh = PQhost(o->pg), *op = PQport(o->pg);
    if (h && oh && port && op && strcmp(h, oh) == 0 && strcmp(port, op) == 0) o->broken = 1;
  }
}

/* The Sync of batch @p seg came back: every query of it is settled. */
static void finish_batch(kotte__pg_conn *c, uint64_t seg) {
  int failed = c->seg_failed;
  c->seg_failed = 0;
  unsigned int count = 0;
  for (kotte__pg_req *r = c->inflight.head; r && r->seg == seg; r = r->next) count++;
  while (c->inflight.head && c->inflight.head->seg == seg) {
    kotte__pg_req *r = c->inflight.head;
    kotte__pg_list_remove(&c->inflight, r);
    r->conn = NULL;
    if (r->abandoned) {
      kotte__pg_req_free(r);
      continue;
    }
    if (r->failed) {
      PGresult *res = r->res;
      if (sqlstate_is(res, "25006")) {
        /* read-only: nothing ran; the conninfo's read-write target is elsewhere now */
        c->broken = 1;
        retire_same_server(c);
        kotte__pg_requeue(r, 1);
      } else if (is_connection_error(res)) {
        c->broken = 1;
        if (r->flags & KOTTE_PG_IDEMPOTENT) kotte__pg_requeue(r, 1);
        else kotte__pg_complete(r, KOTTE_EDB);
      } else if (count > 1 && (sqlstate_is(res, "57014") || sqlstate_is(res, "40P01") ||
                               sqlstate_is(res, "40001"))) {
        /* canceled for another query's timeout, or a conflict its batch
         * caused. Alone on its Sync, a query canceled (57014) was canceled
         * itself: its own timeout abandoned it above, so someone else
         * canceled it (pg_cancel_backend(), a query registry's cancel), and
         * running it again would undo that cancel. */
        kotte__pg_requeue(r, 0);
      } else {
        kotte__pg_complete(r, KOTTE_EDB);
      }
    } else if (failed || r->aborted) {
      kotte__pg_requeue(r, 0); /* rolled back with its batch: it never took effect */
    } else {
      kotte__pg_complete(r, 0);
    }
  }
  c->stuck_since = 0;
  if (c->inflight.head && c->inflight.head->abandoned) c->stuck_since = kotte__pg_now(c->pool);
  if (c->inflight.n == 0) c->idle_since = kotte__pg_now(c->pool);
}

static void keep_result(kotte__pg_req *r, PGresult *res) {
  ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_PIPELINE_ABORTED) {
    r->aborted = 1;
    PQclear(res);
    return;
  }
  int err = st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR;
  if (r->failed || (r->res && !err)) { /* keep the first error, or the first result */
    PQclear(res);
    return;
  }
  if (r->res) PQclear(r->res);
  r->res = res;
  r->failed = err;
}

/* Reads every complete result. Returns -1 when the connection is gone. */
static int read_results(kotte__pg_conn *c) {
  kotte_pg_pool *p = c->pool;
  while (!PQisBusy(c->pg)) {
    kotte__pg_step *s = step_head(c);
    PGresult *res = PQgetResult(c->pg);
    if (s == NULL) {
      if (res == NULL) break;
      PQclear(res); /* nothing expected it */
      continue;
    }
    if (s->kind == STEP_SYNC) {
      if (res == NULL) break;
      ExecStatusType st = PQresultStatus(res);
      PQclear(res);
      if (st != PGRES_PIPELINE_SYNC) return -1;
      uint64_t seg = s->seg;
      step_pop(c);
      finish_batch(c, seg);
      continue;
    }
    if (res == NULL) { /* end of this query's results */
      step_pop(c);
      continue;
    }
    ExecStatusType st = PQresultStatus(res);
    int err = st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR;
    if (err) {
      c->seg_failed = 1;
      if (is_connection_error(res)) c->broken = 1;
    }
    if (s->kind == STEP_PREPARE) {
      if (err) {
        c->prepared[s->stmt] = 0;
        keep_result(s->req, res);
      } else {
        PQclear(res);
      }
    } else {
      keep_result(s->req, res);
    }
  }
  (void)p;
  return PQstatus(c->pg) == CONNECTION_BAD ? -1 : 0;
}

/* Hands every query on the connection off and closes it. Each of them was
 * handed to the server and may have run (libpq reports a failed write only
 * through the read after it, so "never sent" cannot be told apart): an
 * idempotent one runs once more on a fresh connection, any other reports
 * KOTTE_EDB now, with the server's error if one came (57P01 in a fast
 * shutdown). */
void kotte__pg_conn_lost(kotte__pg_conn *c, const char *why) {
  kotte_pg_pool *p = c->pool;
  if (c->state == CONN_READY) {
    char line[256];
    kotte__log(KOTTE_LOG_WARN, "pg pool: connection lost (%s): %s", why,
               first_line(c->pg, line, sizeof line));
    p->stats.connections_lost++;
    p->lost_since_connect = 1;
  }
  while (c->inflight.head) {
    kotte__pg_req *r = c->inflight.head;
    kotte__pg_list_remove(&c->inflight, r);
    r->conn = NULL;
    if (r->abandoned) kotte__pg_req_free(r);
    else if (r->flags & KOTTE_PG_IDEMPOTENT) kotte__pg_requeue(r, 1);
    else kotte__pg_complete(r, KOTTE_EDB); /* the outcome is unknown */
  }
  kotte__pg_conn_close(c);
}

/* 1 if an idle connection's socket is still good (a zero-timeout poll:
 * catches a server that closed it while it sat idle). */
int kotte__pg_conn_alive(kotte__pg_conn *c) {
  struct pollfd pfd = { PQsocket(c->pg), POLLIN, 0 };
  if (pfd.fd < 0) return 0;
  if (poll(&pfd, 1, 0) <= 0) return 1;
  if (!PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD) return 0;
  return read_results(c) == 0 && !c->broken;
}

/* ---- events ---------------------------------------------------------------------------- */

static void on_poll(uv_poll_t *h, int status, int events) {
  kotte__pg_poll *ph = h->data;
  kotte__pg_conn *c = ph->conn;
  kotte_pg_pool *p = ph->pool;
  /* On a socket error (POLLERR: typically the reset that answers a query
   * written after the server closed the connection) libuv stops the handle
   * before calling us. It watches nothing now, whatever ph->events says:
   * forget them, so that watch() below starts it again. The error stays on
   * the socket, so the handle fires again at once and libpq, reading on
   * past what the server sent before it went (its FATAL), finds it. Left
   * stopped, the connection's query would wait out its timeout. */
  if (status < 0) ph->events = 0;
  if (c == NULL) return;
  p->in_handler = 1;
  if (c->state == CONN_CONNECTING) {
    PostgresPollingStatusType st = PQconnectPoll(c->pg);
    if (st == PGRES_POLLING_OK) connected(c);
    else if (st == PGRES_POLLING_FAILED) connect_failed(c, "connection failed");
    else if (watch(c, st == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE) != 0)
      connect_failed(c, "poll failed");
  } else {
    if (c->want_write || (events & UV_WRITABLE) || status < 0) {
      int f = PQflush(c->pg);
      if (f < 0) {
        if (c->state == CONN_SETUP) connect_failed(c, "send failed");
        else kotte__pg_conn_lost(c, "send failed");
        goto out;
      }
      c->want_write = f == 1;
    }
    if ((events & UV_READABLE) || status < 0) {
      if (c->state == CONN_SETUP) {
        setup_input(c);
        /* still waiting for the on-connect SQL (neither closed nor ready) */
        if (ph->conn == c && c->state == CONN_SETUP && watch(c, ready_events(c)) != 0)
          connect_failed(c, "poll failed");
        goto out;
      }
      if (!PQconsumeInput(c->pg) || read_results(c) != 0) {
        kotte__pg_conn_lost(c, "read failed");
        goto out;
      }
    }
    if (PQstatus(c->pg) == CONNECTION_BAD || PQsocket(c->pg) != c->poll->fd) {
      kotte__pg_conn_lost(c, "connection closed"); /* libpq may have dropped the socket */
      goto out;
    }
    if (c->state == CONN_READY && c->broken && c->inflight.n == 0) {
      kotte__pg_conn_close(c);
      goto out;
    }
    if (watch(c, ready_events(c)) != 0) kotte__pg_conn_lost(c, "poll failed");
  }
out:
  kotte__pg_pump(p);
  kotte__pg_drain(p);
}

/* ---- cancellation ------------------------------------------------------------------------ */

static void cancel_work(uv_work_t *w) {
  kotte__pg_cancel *k = w->data;
  char err[256];
  k->ok = PQcancel(k->pc, err, sizeof err);
}

static void cancel_done(uv_work_t *w, int status) {
  kotte__pg_cancel *k = w->data;
  kotte_pg_pool *p = k->pool;
  if (k->conn) k->conn->cancel = NULL;
  PQfreeCancel(k->pc);
  kotte__free(k);
  p->n_cancels--;
  kotte__pg_update_ref(p);
  if (p->closing) kotte__pg_drain(p);
}

/* Asks the server to cancel what the connection runs now (a blocking
 * PQcancel() on libuv's thread pool; one at a time per connection). */
void kotte__pg_conn_cancel(kotte__pg_conn *c) {
  if (c->cancel) return;
  kotte__pg_cancel *k = kotte__calloc(1, sizeof *k);
  if (k == NULL) return;
  k->pool = c->pool;
  k->conn = c;
  k->pc = PQgetCancel(c->pg);
  k->work.data = k;
  if (k->pc == NULL || uv_queue_work(c->pool->loop, &k->work, cancel_work, cancel_done) != 0) {
    if (k->pc) PQfreeCancel(k->pc);
    kotte__free(k);
    return;
  }
  c->cancel = k;
  c->pool->n_cancels++;
  c->pool->stats.cancels_sent++;
}

/* Periodic check: connection attempts past their deadline, queries whose
 * cancel did not come back. */
void kotte__pg_conn_check_timeout(kotte__pg_conn *c, uint64_t now) {
  if (c->state != CONN_READY) {
    if (c->connect_deadline && now >= c->connect_deadline) {
      c->pool->host_rotation++; /* a host that never answers: start further on next time */
      connect_failed(c, "connect timed out");
    }
    return;
  }
  /* A timed-out query normally returns quickly once canceled; one that
   * does not within 2 s (an unreachable server) takes the connection. */
  if (c->stuck_since && now - c->stuck_since >= 2000)
    kotte__pg_conn_lost(c, "canceled query did not return");
}
