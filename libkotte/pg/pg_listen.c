/* The pool's LISTEN facility: one dedicated libpq connection per listener,
 * outside the pool's query connections (a LISTEN belongs to a session, and
 * a pooled connection is shared by whoever comes next).
 *
 * Life of the connection: wait (backoff) -> connecting (PQconnectPoll over
 * the pool's conninfo, so target_session_attrs and a multi-host list find
 * the primary as the pool's own connections do) -> listening (one simple
 * query, "LISTEN a; LISTEN b", not yet confirmed) -> up (confirmed: the
 * user hears "up") -> lost (the user hears "down") -> wait again. While up,
 * an empty query every ping_interval_ms proves the link: no answer within
 * ping_timeout_ms counts as lost, so a silent network break is noticed
 * even when no notification is due.
 *
 * Everything the user hears (notifications, up, down) goes through one
 * FIFO of events delivered from a uv_async_t: never inline, in the order
 * the connection saw it. */
#include <stdio.h>
#include <string.h>
#include <sodium.h>
#include <sys/stat.h>

#include "core/defer.h"
#include "pg/pg_internal.h"

typedef enum { L_WAIT = 1, L_CONNECTING, L_LISTENING, L_UP } l_state;
typedef enum { EV_NOTIFY = 1, EV_UP, EV_DOWN } ev_kind;

typedef struct ev {
  kotte__deferred link; /* first: the queue's item */
  kotte_pg_listener *l;
  ev_kind kind;
  int pid;
  char *channel; /* EV_NOTIFY; for EV_DOWN: the reason */
  char *payload;
} ev;

typedef struct l_poll {
  uv_poll_t h;
  kotte_pg_listener *owner; /* for the close callback */
  int fd;
  ino_t ino;
  int events;
} l_poll;

struct kotte_pg_listener {
  kotte_pg_pool *pool;
  uv_loop_t *loop;
  kotte_pg_notify_cb on_notify;
  kotte_pg_listener_state_cb on_state;
  void *userdata;
  unsigned int ping_interval_ms, ping_timeout_ms;
  char *listen_sql; /* "LISTEN \"a\"; LISTEN \"b\"" */
  PGconn *pg;
  l_poll *poll;
  l_state state;
  int want_write;
  uv_timer_t timer; /* backoff, connect deadline, pings */
  kotte__defer_queue q;
  unsigned int undelivered; /* events queued, not yet run */
  uint64_t deadline;        /* connect or ping deadline (uv_now ms), 0: none */
  uint64_t ping_sent;       /* 0: no ping out */
  uint64_t last_ping;       /* when the last ping was sent or answered */
  unsigned int failures, rotation;
  int announced_up;         /* "up" was queued since the last "down" */
  int closing;
  unsigned int n_handles;
  kotte_pg_listener_stats stats;
};

static void on_timer(uv_timer_t *t);
static void on_poll(uv_poll_t *h, int status, int events);
static void start_connect(kotte_pg_listener *l);

/* ---- events ---------------------------------------------------------------- */

static void ev_free(ev *e) {
  kotte__free(e->channel);
  kotte__free(e->payload);
  kotte__free(e);
}

static void ev_run(kotte__deferred *d) {
  ev *e = (ev *)d;
  kotte_pg_listener *l = e->l;
  l->undelivered--;
  if (!l->closing) {
    /* the callbacks may free the listener: then the rest are only freed */
    if (e->kind == EV_NOTIFY) {
      if (l->on_notify) l->on_notify(e->channel, e->payload ? e->payload : "", e->pid, l->userdata);
    } else if (l->on_state) {
      l->on_state(e->kind == EV_UP, e->kind == EV_UP ? "" : e->channel, l->userdata);
    }
  }
  ev_free(e);
}

/* Queues an event for the user. -1 when out of memory (nothing queued). */
static int queue(kotte_pg_listener *l, ev_kind kind, const char *a, const char *b, int pid) {
  ev *e = kotte__calloc(1, sizeof *e);
  if (e) {
    e->l = l;
    e->kind = kind;
    e->pid = pid;
    e->channel = a ? kotte__strdup(a) : NULL;
    e->payload = b ? kotte__strdup(b) : NULL;
  }
  if (e == NULL || (a && e->channel == NULL) || (b && e->payload == NULL)) {
    if (e) ev_free(e);
    kotte__log(KOTTE_LOG_ERROR, "pg listener: out of memory for an event");
    return -1;
  }
  l->undelivered++;
  kotte__defer_push(&l->q, &e->link, ev_run);
  return 0;
}


/* ---- the connection ----------------------------------------------------------- */

static void handle_closed(uv_handle_t *h) {
  kotte_pg_listener *l;
  if (h->type == UV_POLL) {
    l_poll *ph = h->data;
    l = ph->owner;
    kotte__free(ph);
  } else {
    l = h->data;
  }
  if (--l->n_handles > 0) return;
  kotte__free(l->listen_sql);
  kotte__free(l);
}

static void poll_release(kotte_pg_listener *l) {
  if (l->poll == NULL) return;
  uv_close((uv_handle_t *)&l->poll->h, handle_closed); /* stops polling now */
  l->poll = NULL;
}

/* Polls the connection's current socket (re-created when libpq moved to
 * another one while connecting: same rule as the pool's, pg_conn.c). */
static int watch(kotte_pg_listener *l, int events) {
  int fd = PQsocket(l->pg);
  if (fd < 0) return -1;
  ino_t ino = 0;
  if (l->state == L_CONNECTING) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    ino = st.st_ino;
  }
  if (l->poll && (l->poll->fd != fd || (l->state == L_CONNECTING && l->poll->ino != ino)))
    poll_release(l);
  if (l->poll == NULL) {
    l_poll *ph = kotte__calloc(1, sizeof *ph);
    if (ph == NULL) return -1;
    if (uv_poll_init_socket(l->loop, &ph->h, fd) != 0) {
      kotte__free(ph);
      return -1;
    }
    ph->h.data = ph;
    ph->owner = l;
    ph->fd = fd;
    ph->ino = ino;
    l->n_handles++;
    uv_unref((uv_handle_t *)&ph->h); /* an idle listener does not hold the loop */
    l->poll = ph;
  }
  if (l->poll->events != events) {
    if (uv_poll_start(&l->poll->h, events, on_poll) != 0) return -1;
    l->poll->events = events;
  }
  return 0;
}

static void arm(kotte_pg_listener *l, uint64_t delay_ms) {
  if (!l->closing) uv_timer_start(&l->timer, on_timer, delay_ms, 0);
}

static void close_conn(kotte_pg_listener *l) {
  poll_release(l); /* stop polling before PQfinish closes the socket */
  if (l->pg) PQfinish(l->pg);
  l->pg = NULL;
  l->want_write = 0;
  l->ping_sent = 0;
  l->deadline = 0;
}

/* The first line of libpq's message (host, port, reason; never a password). */
static void why_of(PGconn *pg, const char *what, char *buf, size_t n) {
  const char *m = pg ? PQerrorMessage(pg) : "";
  size_t k = strcspn(m, "\n");
  snprintf(buf, n, "%s%s%.*s", what, k ? ": " : "", (int)k, m);
}

/* The connection failed or was lost: tell the user (once per up), back off
 * (the pool's reconnect_min_ms doubling to reconnect_max_ms, with equal
 * jitter), then start again. @p next_host: begin with the next host of a
 * multi-host list (the last attempt timed out, or reached a standby). */
static void lose(kotte_pg_listener *l, const char *what, int next_host) {
  char why[256];
  why_of(l->pg, what, why, sizeof why);
  int was_up = l->state == L_UP;
  close_conn(l);
  l->state = L_WAIT;
  if (next_host) l->rotation++;
  if (was_up) {
    l->stats.downs++;
    kotte__log(KOTTE_LOG_WARN, "pg listener: down: %s", why);
  } else {
    kotte__log(KOTTE_LOG_WARN, "pg listener: %s", why);
  }
  if (l->announced_up) {
    l->announced_up = 0;
    queue(l, EV_DOWN, why, NULL, 0);
  }
  const kotte_pg_pool_options *o = &l->pool->opts;
  uint64_t delay = o->reconnect_min_ms;
  for (unsigned int i = 0; i < l->failures && delay < o->reconnect_max_ms; i++) delay *= 2;
  if (delay > o->reconnect_max_ms) delay = o->reconnect_max_ms;
  delay = delay / 2 + randombytes_uniform((uint32_t)(delay / 2 + 1));
  /* the first retry after an up comes at once: a restarted server or a
   * promoted standby is often there already */
  if (was_up) delay = 0;
  l->failures++;
  arm(l, delay);
}

/* Notices and errors outside a command (the FATAL before a server closes
 * the connection): to the log hook, by SQLSTATE only, not to stderr. */
static void on_notice(void *arg, const PGresult *res) {
  (void)arg;
  const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  kotte__log(KOTTE_LOG_DEBUG, "pg listener: server %s (SQLSTATE %s)", sev ? sev : "notice",
             code ? code : "?");
}

static void start_connect(kotte_pg_listener *l) {
  kotte_pg_pool *p = l->pool;
  l->state = L_CONNECTING;
  l->stats.connects++;
  l->pg = kotte__pg_connect_start(p->conninfo, p->host_rotation + l->rotation);
  if (l->pg) PQsetNoticeReceiver(l->pg, on_notice, l);
  if (l->pg == NULL || PQstatus(l->pg) == CONNECTION_BAD || PQsetnonblocking(l->pg, 1) != 0 ||
      watch(l, UV_WRITABLE) != 0) {
    lose(l, l->pg ? "connection failed" : "out of memory", 0);
    return;
  }
  uint64_t t = p->opts.connect_timeout_ms;
  l->deadline = t ? uv_now(l->loop) + t : 0;
  if (t) arm(l, t);
}

static void send_listen(kotte_pg_listener *l) {
  l->state = L_LISTENING;
  if (!PQsendQuery(l->pg, l->listen_sql)) {
    lose(l, "LISTEN not sent", 0);
    return;
  }
  int f = PQflush(l->pg);
  l->want_write = f == 1;
  if (f < 0 || watch(l, UV_READABLE | (l->want_write ? UV_WRITABLE : 0)) != 0)
    lose(l, "LISTEN not sent", 0);
}

/* Reads what arrived: results of LISTEN or of a ping, notifications, the
 * end of the connection. 0, or -1 when the connection was lost (handled). */
static int read_input(kotte_pg_listener *l) {
  if (!PQconsumeInput(l->pg)) {
    lose(l, "connection lost", 0);
    return -1;
  }
  int failed_standby = 0, failed = 0;
  while (!PQisBusy(l->pg)) {
    PGresult *res = PQgetResult(l->pg);
    if (res == NULL) {
      /* the command (LISTEN or a ping) is complete */
      if (failed) {
        lose(l, failed_standby ? "LISTEN refused: the server is a standby" : "LISTEN failed",
             failed_standby);
        return -1;
      }
      if (l->state == L_LISTENING) {
        l->state = L_UP;
        l->failures = 0;
        l->stats.ups++;
        l->deadline = 0;
        l->last_ping = uv_now(l->loop);
        if (queue(l, EV_UP, NULL, NULL, 0) == 0) l->announced_up = 1;
        arm(l, l->ping_interval_ms);
      } else if (l->ping_sent) {
        l->ping_sent = 0;
        l->last_ping = uv_now(l->loop);
      }
      break;
    }
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
      const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
      failed = 1;
      if (code && strcmp(code, "25006") == 0) failed_standby = 1; /* read-only transaction */
      kotte__log(KOTTE_LOG_WARN, "pg listener: SQLSTATE %s", code ? code : "?");
    }
    PQclear(res);
  }
  PGnotify *n;
  while ((n = PQnotifies(l->pg)) != NULL) {
    int rc = l->state == L_UP ? queue(l, EV_NOTIFY, n->relname, n->extra, n->be_pid) : 0;
    if (rc == 0 && l->state == L_UP) l->stats.notifications++;
    PQfreemem(n);
    if (rc != 0) {
      /* a notification the user would miss: as if the connection was lost */
      lose(l, "out of memory", 0);
      return -1;
    }
  }
  if (PQstatus(l->pg) == CONNECTION_BAD) {
    lose(l, "connection lost", 0);
    return -1;
  }
  return 0;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  l_poll *ph = h->data;
  kotte_pg_listener *l = ph->owner;
  if (l->poll != ph || l->closing) return;
  if (l->state == L_CONNECTING) {
    PostgresPollingStatusType st = PQconnectPoll(l->pg);
    if (st == PGRES_POLLING_OK) send_listen(l);
    else if (st == PGRES_POLLING_FAILED) lose(l, "connection failed", 0);
    else if (watch(l, st == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE) != 0)
      lose(l, "poll failed", 0);
    return;
  }
  if (l->want_write || (events & UV_WRITABLE) || status < 0) {
    int f = PQflush(l->pg);
    if (f < 0) {
      lose(l, "send failed", 0);
      return;
    }
    l->want_write = f == 1;
  }
  if ((events & UV_READABLE) || status < 0) {
    if (read_input(l) != 0) return;
  }
  if (watch(l, UV_READABLE | (l->want_write ? UV_WRITABLE : 0)) != 0) lose(l, "poll failed", 0);
}

static void on_timer(uv_timer_t *t) {
  kotte_pg_listener *l = t->data;
  uint64_t now = uv_now(l->loop);
  switch (l->state) {
  case L_WAIT:
    start_connect(l);
    return;
  case L_CONNECTING:
  case L_LISTENING:
    if (l->deadline && now >= l->deadline) {
      lose(l, "connection attempt timed out", 1);
      return;
    }
    if (l->deadline) arm(l, l->deadline - now);
    return;
  case L_UP:
    if (l->ping_sent) { /* no answer within ping_timeout_ms: the link is gone */
      if (now - l->ping_sent >= l->ping_timeout_ms) {
        lose(l, "no answer to a ping", 0);
        return;
      }
      arm(l, l->ping_sent + l->ping_timeout_ms - now);
      return;
    }
    /* an empty query: the server answers at once, and it proves the link */
    if (!PQsendQuery(l->pg, "")) {
      lose(l, "ping not sent", 0);
      return;
    }
    l->ping_sent = now;
    l->stats.pings++;
    int f = PQflush(l->pg);
    l->want_write = f == 1;
    if (f < 0 || watch(l, UV_READABLE | (l->want_write ? UV_WRITABLE : 0)) != 0) {
      lose(l, "ping not sent", 0);
      return;
    }
    arm(l, l->ping_timeout_ms < l->ping_interval_ms ? l->ping_timeout_ms : l->ping_interval_ms);
    return;
  }
}

/* ---- public API ----------------------------------------------------------------- */

/* "LISTEN \"a\"; LISTEN \"b\"", each channel quoted as an identifier. */
static char *listen_sql(const char *const *channels, size_t n) {
  size_t len = 1;
  for (size_t i = 0; i < n; i++) len += 10 + 2 * strlen(channels[i]) + 2;
  char *sql = kotte__malloc(len);
  if (sql == NULL) return NULL;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    at += (size_t)snprintf(sql + at, len - at, "%sLISTEN \"", i ? "; " : "");
    for (const char *c = channels[i]; *c; c++) {
      if (*c == '"') sql[at++] = '"';
      sql[at++] = *c;
    }
    sql[at++] = '"';
  }
  sql[at] = '\0';
  return sql;
}

int kotte_pg_listener_new(kotte_pg_listener **out, kotte_pg_pool *pool,
                          const kotte_pg_listener_options *opts) {
  kotte__clear_detail();
  if (out == NULL) return KOTTE_EINVAL;
  *out = NULL;
  if (pool == NULL || opts == NULL) return KOTTE_EINVAL;
  if (opts->version != KOTTE_PG_LISTENER_OPTIONS_VERSION)
    return kotte__fail(KOTTE_EVERSION, "kotte_pg_listener_options.version %u is not supported",
                       opts->version);
  if (pool->closing) return KOTTE_ECLOSED;
  if (opts->n_channels == 0 || opts->channels == NULL || opts->ping_interval_ms == 0 ||
      opts->ping_timeout_ms == 0)
    return kotte__fail(KOTTE_EINVAL, "pg listener: needs at least one channel and positive "
                                     "ping_interval_ms and ping_timeout_ms");
  for (size_t i = 0; i < opts->n_channels; i++)
    if (opts->channels[i] == NULL || opts->channels[i][0] == '\0' ||
        strlen(opts->channels[i]) >= 64) /* NAMEDATALEN: longer names would be cut short */
      return kotte__fail(KOTTE_EINVAL, "pg listener: channel names are 1 to 63 bytes");
  kotte_pg_listener *l = kotte__calloc(1, sizeof *l);
  if (l == NULL) return KOTTE_ENOMEM;
  l->listen_sql = listen_sql(opts->channels, opts->n_channels);
  if (l->listen_sql == NULL || kotte__defer_init(&l->q, pool->loop) != 0) {
    kotte__free(l->listen_sql);
    kotte__free(l);
    return KOTTE_ENOMEM;
  }
  l->q.async.data = l;
  l->pool = pool;
  l->loop = pool->loop;
  l->on_notify = opts->on_notify;
  l->on_state = opts->on_state;
  l->userdata = opts->userdata;
  l->ping_interval_ms = opts->ping_interval_ms;
  l->ping_timeout_ms = opts->ping_timeout_ms;
  l->stats.version = KOTTE_PG_LISTENER_STATS_VERSION;
  uv_timer_init(l->loop, &l->timer);
  l->timer.data = l;
  uv_unref((uv_handle_t *)&l->timer);
  l->n_handles = 2; /* timer, queue */
  l->state = L_WAIT;
  arm(l, 0); /* connect on the next loop turn */
  *out = l;
  return 0;
}

int kotte_pg_listener_is_current(kotte_pg_listener *l) {
  if (l == NULL || l->closing || l->state != L_UP) return 0;
  /* Whatever reached the socket counts: read it now (without calling back),
   * so that a notification or the end of the connection that is already
   * here is never answered past. */
  if (read_input(l) != 0) return 0;
  return l->state == L_UP && l->undelivered == 0 && l->announced_up;
}

int kotte_pg_listener_get_stats(const kotte_pg_listener *l, kotte_pg_listener_stats *out) {
  if (l == NULL || out == NULL) return KOTTE_EINVAL;
  if (out->version != KOTTE_PG_LISTENER_STATS_VERSION) return KOTTE_EVERSION;
  *out = l->stats;
  out->up = l->state == L_UP;
  out->backend_pid = l->state == L_UP && l->pg ? PQbackendPID(l->pg) : 0;
  return 0;
}

void kotte_pg_listener_free(kotte_pg_listener *l) {
  if (l == NULL || l->closing) return;
  l->closing = 1;
  close_conn(l);
  uv_timer_stop(&l->timer);
  /* events not yet taken by the queue are dropped here; one being run
   * now (the caller may be inside its callback) frees itself */
  kotte__deferred *d = l->q.head;
  l->q.head = l->q.tail = NULL;
  while (d) {
    kotte__deferred *next = d->next;
    ev_free((ev *)d);
    d = next;
  }
  uv_close((uv_handle_t *)&l->timer, handle_closed);
  kotte__defer_close(&l->q, handle_closed);
}
