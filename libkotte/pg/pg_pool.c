/* The pool: queries wait in one FIFO for a connection, go out on the idle
 * or least loaded one, and come back through one delivery list that runs
 * callbacks only from the top of a libuv callback (never inside libpq
 * processing, never inside the submitting call). Deadlines live in one
 * sorted list under one timer. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_internal.h"
#include "pg/pg_turn.h"

uint64_t kotte__pg_now(kotte_pg_pool *p) { return uv_now(p->loop); }

/* ---- request lists ------------------------------------------------------ */

void kotte__pg_list_push(kotte__pg_list *l, kotte__pg_req *r) {
  r->next = NULL;
  r->prev = l->tail;
  if (l->tail) l->tail->next = r;
  else l->head = r;
  l->tail = r;
  l->n++;
}

void kotte__pg_list_unshift(kotte__pg_list *l, kotte__pg_req *r) {
  r->prev = NULL;
  r->next = l->head;
  if (l->head) l->head->prev = r;
  else l->tail = r;
  l->head = r;
  l->n++;
}

void kotte__pg_list_remove(kotte__pg_list *l, kotte__pg_req *r) {
  if (r->prev) r->prev->next = r->next;
  else l->head = r->next;
  if (r->next) r->next->prev = r->prev;
  else l->tail = r->prev;
  r->next = r->prev = NULL;
  l->n--;
}

/* ---- deadlines -------------------------------------------------------------- */

static void on_wake(uv_timer_t *t);

/* Keeps the wake timer due no later than the earliest deadline. Lazily: a
 * timer already due earlier stays (on_wake() re-arms for what is left), so
 * settling the oldest query, which happens on nearly every completion, does
 * not move the timer each time. */
static void arm_wake(kotte_pg_pool *p) {
  if (p->closing) return;
  if (p->dl_head == NULL) {
    if (p->wake_due) uv_timer_stop(&p->wake);
    p->wake_due = 0;
    return;
  }
  uint64_t due = p->dl_head->deadline;
  if (p->wake_due && p->wake_due <= due) return;
  uint64_t now = kotte__pg_now(p);
  uv_timer_start(&p->wake, on_wake, due > now ? due - now : 0, 0);
  p->wake_due = due;
}

void kotte__pg_deadline_remove(kotte__pg_req *r) {
  kotte_pg_pool *p = r->pool;
  if (!r->in_deadlines) return;
  int was_head = p->dl_head == r;
  if (r->dprev) r->dprev->dnext = r->dnext;
  else p->dl_head = r->dnext;
  if (r->dnext) r->dnext->dprev = r->dprev;
  else p->dl_tail = r->dprev;
  r->dnext = r->dprev = NULL;
  r->in_deadlines = 0;
  if (was_head) arm_wake(p);
}

/* Deadlines mostly arrive in order: insert from the tail. */
void kotte__pg_deadline_set(kotte__pg_req *r, uint64_t deadline, int is_query) {
  kotte_pg_pool *p = r->pool;
  kotte__pg_deadline_remove(r);
  r->deadline = deadline;
  r->deadline_is_query = is_query;
  if (deadline == 0) return;
  kotte__pg_req *after = p->dl_tail;
  while (after && after->deadline > deadline) after = after->dprev;
  r->dprev = after;
  r->dnext = after ? after->dnext : p->dl_head;
  if (r->dnext) r->dnext->dprev = r;
  else p->dl_tail = r;
  if (after) after->dnext = r;
  else p->dl_head = r;
  r->in_deadlines = 1;
  if (p->dl_head == r) arm_wake(p);
}

/* ---- delivery ------------------------------------------------------------------ */

void kotte__pg_update_ref(kotte_pg_pool *p) {
  /* The pool keeps the loop alive only while it has work. */
  int want = p->n_pending > 0 || p->n_cancels > 0 || p->turn_hooks != NULL ||
             (p->closing && !p->finalized);
  if (want == p->defer_ref || p->finalized) return;
  p->defer_ref = want;
  if (want) uv_ref((uv_handle_t *)&p->defer);
  else uv_unref((uv_handle_t *)&p->defer);
}

void kotte__pg_req_free(kotte__pg_req *r) {
  kotte__pg_deadline_remove(r);
  if (r->res) PQclear(r->res);
  kotte__free(r);
}

/* Settles @p r with @p status; its callback runs from kotte__pg_drain(). */
void kotte__pg_complete(kotte__pg_req *r, int status) {
  kotte_pg_pool *p = r->pool;
  kotte__pg_deadline_remove(r);
  r->state = REQ_DONE;
  r->status = status;
  /* A failure carries the server's error result or none, never rows: a
   * query whose batch was lost or rolled back may have rows that did not count. */
  if (status != 0 && r->res && !(status == KOTTE_EDB && r->failed)) {
    PQclear(r->res);
    r->res = NULL;
  }
  if (status == 0 && r->res == NULL) r->status = KOTTE_EINTERNAL;
  r->done_next = NULL;
  if (p->done_tail) p->done_tail->done_next = r;
  else p->done_head = r;
  p->done_tail = r;
  /* Inside a libuv callback of the pool, kotte__pg_drain() runs before it
   * returns; elsewhere (a submitting call, a free) the async handle does. */
  if (!p->draining && !p->in_handler) uv_async_send(&p->defer);
}

static void finalize(kotte_pg_pool *p);

void kotte__pg_drain(kotte_pg_pool *p) {
  p->in_handler = 0;
  if (p->draining) return;
  p->draining = 1;
  kotte__pg_req *r;
  while ((r = p->done_head) != NULL) {
    p->done_head = r->done_next;
    if (p->done_head == NULL) p->done_tail = NULL;
    int status = p->closing ? KOTTE_ECANCELED : r->status;
    const kotte_pg_result *res = (status == 0 || status == KOTTE_EDB) ? (const void *)r->res : NULL;
    p->stats.queries++;
    if (status != 0) p->stats.errors++;
    if (status == KOTTE_EPOOLTIMEOUT) p->stats.pool_timeouts++;
    if (status == KOTTE_ETIMEDOUT) p->stats.query_timeouts++;
    p->n_pending--;
    r->cb(status, res, r->userdata); /* may submit, or free the pool */
    kotte__pg_req_free(r);
  }
  p->draining = 0;
  kotte__pg_update_ref(p);
  if (p->closing) finalize(p);
}

static void on_defer(uv_async_t *h) {
  kotte_pg_pool *p = h->data;
  kotte__pg_pump(p);
  kotte__pg_drain(p);
}

/* ---- dispatch ----------------------------------------------------------------------- */

static void request_retry_timer(kotte_pg_pool *p);

/* Picks a connection for @p r: an idle one (most recently used first, after
 * a cheap liveness check when it sat idle long), else with pipelining the
 * least loaded one with room. NULL: none now. */
static kotte__pg_conn *choose(kotte_pg_pool *p, kotte__pg_req *r) {
  uint64_t now = kotte__pg_now(p);
  kotte__pg_conn *best = NULL, *c, *next;
  for (c = p->conns; c; c = next) {
    next = c->next;
    if (c->state != CONN_READY || c->broken || c->serial < r->min_serial) continue;
    if (c->retire_at && now >= c->retire_at) {
      c->broken = 1; /* lifetime over: finish what it has, take nothing new */
      if (c->inflight.n == 0) kotte__pg_conn_close(c);
      continue;
    }
    if (c->inflight.n == 0) {
      if (p->opts.idle_check_ms && now - c->idle_since >= p->opts.idle_check_ms &&
          !kotte__pg_conn_alive(c)) {
        kotte__pg_conn_lost(c, "found dead while idle");
        continue;
      }
      if (best == NULL || best->inflight.n > 0 || c->idle_since > best->idle_since) best = c;
    } else if (c->inflight.n < p->opts.pipeline_depth) {
      if (best == NULL || c->inflight.n < best->inflight.n) best = c;
    }
  }
  return best;
}

static void grow(kotte_pg_pool *p, unsigned int demand) {
  if (p->closing) return;
  unsigned int open = p->n_ready + p->n_connecting;
  unsigned int want = open < p->opts.min_size ? p->opts.min_size - open : 0;
  if (demand > p->n_connecting && demand - p->n_connecting > want) want = demand - p->n_connecting;
  if (want && open >= p->opts.max_size && demand) {
    /* Full, yet queries wait for a fresh connection: drop an idle stale one. */
    for (kotte__pg_conn *c = p->conns; c; c = c->next) {
      if (c->state == CONN_READY && c->inflight.n == 0) {
        kotte__pg_conn_close(c);
        open--;
        break;
      }
    }
  }
  if (open + want > p->opts.max_size) want = p->opts.max_size > open ? p->opts.max_size - open : 0;
  if (want == 0) return;
  if (p->failures > 0) {
    /* Backing off: one probe at a time, once the delay passed. */
    if (kotte__pg_now(p) < p->backoff_until) {
      request_retry_timer(p);
      return;
    }
    if (p->n_connecting > 0) return;
    want = 1;
  }
  while (want-- > 0) {
    if (kotte__pg_conn_start(p) != 0) break;
  }
}

void kotte__pg_pump(kotte_pg_pool *p) {
  if (p->closing) return;
  unsigned int demand;
restart:
  demand = 0;
  /* A query without a fresh-connection demand that finds no connection
   * means none of them will: count the rest without looking again. */
  int plain_blocked = 0;
  for (kotte__pg_req *r = p->waiting.head; r; r = r->next) {
    kotte__pg_conn *c = NULL;
    if (r->min_serial || !plain_blocked) c = choose(p, r);
    if (c == NULL) {
      if (!r->min_serial) plain_blocked = 1;
      demand++;
      continue;
    }
    kotte__pg_list_remove(&p->waiting, r);
    uint64_t waited = uv_hrtime() / 1000 - r->queued_us;
    p->stats.acquire_wait_us_total += waited;
    if (waited > p->stats.acquire_wait_us_max) p->stats.acquire_wait_us_max = waited;
    kotte__pg_deadline_set(r, r->timeout_ms ? kotte__pg_now(p) + r->timeout_ms : 0, 1);
    if (kotte__pg_conn_send(c, r) != 0) kotte__pg_conn_lost(c, "send failed");
    goto restart; /* sending may have changed both lists */
  }
  grow(p, demand);
}

static void enqueue(kotte__pg_req *r, int front) {
  kotte_pg_pool *p = r->pool;
  r->state = REQ_WAITING;
  r->queued_us = uv_hrtime() / 1000;
  if (front) kotte__pg_list_unshift(&p->waiting, r);
  else kotte__pg_list_push(&p->waiting, r);
  kotte__pg_deadline_set(
      r, p->opts.acquire_timeout_ms ? kotte__pg_now(p) + p->opts.acquire_timeout_ms : 0, 0);
}

/* Runs @p r again: after a lost connection or a read-only answer (@p fresh:
 * once, on a connection opened from now on), or because its batch was
 * rolled back (a few times). */
void kotte__pg_requeue(kotte__pg_req *r, int fresh) {
  kotte_pg_pool *p = r->pool;
  if ((fresh && r->retried) || (!fresh && r->reruns >= 3) || p->closing) {
    kotte__pg_complete(
        r, p->closing ? KOTTE_ECANCELED : KOTTE_EDB); /* with the error result, if any */
    return;
  }
  if (r->res) PQclear(r->res);
  r->res = NULL;
  r->failed = r->aborted = 0;
  if (fresh) {
    r->retried = 1;
    r->min_serial = p->serial + 1;
    p->stats.retries++;
  } else {
    r->reruns++;
  }
  enqueue(r, 1);
}

/* ---- timers -------------------------------------------------------------------------- */

static void on_wake(uv_timer_t *t) {
  kotte_pg_pool *p = t->data;
  p->in_handler = 1;
  p->wake_due = 0; /* one-shot: fired */
  uint64_t now = kotte__pg_now(p);
  while (p->dl_head && p->dl_head->deadline <= now) {
    kotte__pg_req *r = p->dl_head;
    kotte__pg_deadline_remove(r);
    if (r->state == REQ_WAITING) {
      kotte__pg_list_remove(&p->waiting, r);
      kotte__fail(KOTTE_EPOOLTIMEOUT, "no connection within %u ms", p->opts.acquire_timeout_ms);
      kotte__pg_complete(r, KOTTE_EPOOLTIMEOUT);
    } else if (r->state == REQ_SENT && !r->abandoned) {
      kotte__pg_conn *c = r->conn;
      /* Report now; the query stays on its connection until the server
       * answers the cancel (its result is then dropped). */
      kotte__pg_req *copy = kotte__calloc(1, sizeof *copy);
      if (copy == NULL) continue;
      *copy = *r;
      copy->res = NULL;
      copy->in_deadlines = 0;
      copy->dnext = copy->dprev = NULL;
      r->abandoned = 1;
      r->cb = NULL;
      if (c->inflight.head == r || (c->inflight.head && c->inflight.head->seg == r->seg))
        kotte__pg_conn_cancel(c);
      if (c->stuck_since == 0) c->stuck_since = now;
      kotte__pg_complete(copy, KOTTE_ETIMEDOUT);
    }
  }
  arm_wake(p);
  kotte__pg_pump(p);
  kotte__pg_drain(p);
}

static void on_backoff(uv_timer_t *t) {
  kotte_pg_pool *p = t->data;
  p->in_handler = 1;
  p->backoff_active = 0;
  kotte__pg_pump(p);
  kotte__pg_drain(p);
}

static void request_retry_timer(kotte_pg_pool *p) {
  if (p->backoff_active || p->closing) return;
  uint64_t now = kotte__pg_now(p);
  p->backoff_active = 1;
  uv_timer_start(&p->backoff, on_backoff, p->backoff_until > now ? p->backoff_until - now : 0, 0);
}

static void on_maint(uv_timer_t *t) {
  kotte_pg_pool *p = t->data;
  p->in_handler = 1;
  uint64_t now = kotte__pg_now(p);
  kotte__pg_conn *c, *next;
  for (c = p->conns; c; c = next) {
    next = c->next;
    if (c->state != CONN_READY) {
      kotte__pg_conn_check_timeout(c, now);
      continue;
    }
    if (c->inflight.n == 0) {
      int retire = c->broken || (c->retire_at && now >= c->retire_at);
      int idle_out = p->opts.idle_timeout_ms && p->n_ready > p->opts.min_size &&
                     now - c->idle_since >= p->opts.idle_timeout_ms;
      if (retire || idle_out) kotte__pg_conn_close(c);
    } else {
      if (c->retire_at && now >= c->retire_at) c->broken = 1;
      kotte__pg_conn_check_timeout(c, now);
    }
  }
  kotte__pg_pump(p);
  kotte__pg_drain(p);
}

void kotte__pg_connect_failed(kotte_pg_pool *p, uint64_t serial, const char *why) {
  p->stats.connect_failures++;
  if (p->failures++ == 0) p->failing_since = kotte_clock_now();
  snprintf(p->last_error, sizeof p->last_error, "%s", why);
  /* Attempts under way together fail together (a server shutting down for
   * a restart refuses them all at once): they are one step of the backoff,
   * or a quick restart would push it to reconnect_max_ms at one go. Only an
   * attempt started after the last step moves it on. */
  if (p->backoff_steps == 0 || serial > p->backoff_serial) {
    p->backoff_steps++;
    p->backoff_serial = p->serial; /* the newest attempt started so far */
    uint64_t delay = p->opts.reconnect_min_ms;
    for (unsigned int i = 1; i < p->backoff_steps && delay < p->opts.reconnect_max_ms; i++)
      delay *= 2;
    if (delay > p->opts.reconnect_max_ms) delay = p->opts.reconnect_max_ms;
    /* "equal jitter": half fixed, half random, so replicas spread out */
    delay = delay / 2 + randombytes_uniform((uint32_t)(delay / 2 + 1));
    p->backoff_until = kotte__pg_now(p) + delay;
  }
  if (p->waiting.n > 0 || p->n_ready + p->n_connecting < p->opts.min_size) request_retry_timer(p);
}

void kotte__pg_connected(kotte_pg_pool *p) {
  p->stats.connects++;
  if (p->failures > 0 || p->lost_since_connect) p->stats.reconnects++;
  p->failures = 0;
  p->backoff_steps = 0;
  p->failing_since = 0;
  p->last_error[0] = '\0';
  p->lost_since_connect = 0;
}

/* pg_turn.h: each listed hook once, unlisted before it runs. */
static void run_turn_hooks(kotte_pg_pool *p) {
  kotte__pg_turn_hook *t;
  while ((t = p->turn_hooks) != NULL) {
    p->turn_hooks = t->next;
    t->next = NULL;
    t->listed = 0;
    t->fn(t->arg);
  }
}

/* Batches filled during this loop turn get their Sync before the loop polls. */
static void on_flush(uv_prepare_t *h) {
  kotte_pg_pool *p = h->data;
  p->in_handler = 1;
  /* first the hooks (their queries join this turn's batches; the flusher
   * is still marked active, so they do not start it again) */
  run_turn_hooks(p);
  kotte__pg_update_ref(p);
  uv_prepare_stop(h);
  p->flusher_active = 0;
  kotte__pg_conn *c;
  while ((c = p->sync_head) != NULL) {
    p->sync_head = c->sync_next;
    c->sync_listed = 0;
    c->sync_next = NULL;
    if (kotte__pg_conn_sync(c) != 0) kotte__pg_conn_lost(c, "send failed");
  }
  kotte__pg_pump(p);
  kotte__pg_drain(p);
}

/* on_flush runs before the loop polls next. */
static void arm_flusher(kotte_pg_pool *p) {
  if (!p->flusher_active) {
    p->flusher_active = 1;
    uv_prepare_start(&p->flusher, on_flush);
  }
}

void kotte__pg_need_sync(kotte__pg_conn *c) {
  kotte_pg_pool *p = c->pool;
  if (!c->sync_listed) {
    c->sync_listed = 1;
    c->sync_next = p->sync_head;
    p->sync_head = c;
  }
  arm_flusher(p);
}

void kotte__pg_at_turn_end(kotte_pg_pool *p, kotte__pg_turn_hook *h) {
  if (h->listed) return;
  h->listed = 1;
  h->next = p->turn_hooks;
  p->turn_hooks = h;
  kotte__pg_update_ref(p); /* the loop must turn for the hook to run */
  arm_flusher(p);
}

void kotte__pg_turn_hook_cancel(kotte_pg_pool *p, kotte__pg_turn_hook *h) {
  if (!h->listed) return;
  for (kotte__pg_turn_hook **pp = &p->turn_hooks; *pp; pp = &(*pp)->next)
    if (*pp == h) {
      *pp = h->next;
      break;
    }
  h->next = NULL;
  h->listed = 0;
  kotte__pg_update_ref(p);
}

unsigned int kotte__pg_pipeline_depth(const kotte_pg_pool *p) { return p->opts.pipeline_depth; }
unsigned int kotte__pg_max_size(const kotte_pg_pool *p) { return p->opts.max_size; }

/* ---- lifecycle -------------------------------------------------------------------------- */

static int check_options(const kotte_pg_pool_options *o) {
  if (o->version != KOTTE_PG_POOL_OPTIONS_VERSION)
    return kotte__fail(KOTTE_EVERSION, "kotte_pg_pool_options.version %u is not supported",
                       o->version);
  if (o->conninfo == NULL)
    return kotte__fail(KOTTE_EINVAL, "kotte_pg_pool_options.conninfo is required");
  if (o->max_size == 0 || o->min_size > o->max_size || o->pipeline_depth == 0 ||
      o->reconnect_min_ms == 0 || o->reconnect_max_ms < o->reconnect_min_ms)
    return kotte__fail(KOTTE_EINVAL, "pg pool options: need 0 < max_size, min_size <= max_size, "
                                     "pipeline_depth > 0, 0 < reconnect_min_ms <= reconnect_max_ms");
  char *err = NULL;
  PQconninfoOption *parsed = PQconninfoParse(o->conninfo, &err);
  /* libpq's message may quote the conninfo (and so a password): not passed on. */
  if (err) PQfreemem(err);
  if (parsed == NULL) return kotte__fail(KOTTE_EINVAL, "pg pool: the conninfo does not parse");
  PQconninfoFree(parsed);
  return 0;
}

void kotte__pg_handle_closed(uv_handle_t *h) {
  kotte_pg_pool *p;
  if (h->type == UV_POLL) {
    kotte__pg_poll *ph = h->data;
    p = ph->pool;
    kotte__free(ph);
  } else {
    p = h->data;
  }
  if (--p->n_handles > 0 || !p->finalized) return;
  kotte__waiter *waiter = p->free_waiter;
  for (unsigned int i = 0; i < p->n_stmts; i++) {
    kotte__free(p->stmts[i]->sql);
    kotte__free(p->stmts[i]->types);
    kotte__free(p->stmts[i]);
  }
  kotte__free(p->stmts);
  if (p->conninfo) {
    sodium_memzero(p->conninfo, strlen(p->conninfo)); /* may hold a password */
    kotte__free(p->conninfo);
  }
  kotte__free(p->on_connect_sql);
  kotte__free(p);
  kotte__waiter_signal(waiter);
}

/* The last step of a free: once every callback ran and every cancel
 * request came back, close the pool's own handles. */
static void finalize(kotte_pg_pool *p) {
  if (p->finalized || p->draining || p->done_head || p->n_cancels > 0) return;
  p->finalized = 1;
  uv_close((uv_handle_t *)&p->wake, kotte__pg_handle_closed);
  uv_close((uv_handle_t *)&p->backoff, kotte__pg_handle_closed);
  uv_close((uv_handle_t *)&p->maint, kotte__pg_handle_closed);
  uv_close((uv_handle_t *)&p->flusher, kotte__pg_handle_closed);
  uv_close((uv_handle_t *)&p->defer, kotte__pg_handle_closed);
}

int kotte_pg_pool_new(kotte_pg_pool **out, uv_loop_t *loop, const kotte_pg_pool_options *opts) {
  kotte__clear_detail();
  if (out == NULL) return KOTTE_EINVAL;
  *out = NULL;
  if (loop == NULL || opts == NULL) return KOTTE_EINVAL;
  int rc = check_options(opts);
  if (rc != 0) return rc;
  if (kotte__init() != 0) return KOTTE_EINTERNAL;
  kotte_pg_pool *p = kotte__calloc(1, sizeof *p);
  if (p == NULL) return KOTTE_ENOMEM;
  p->loop = loop;
  p->opts = *opts;
  p->conninfo = kotte__strdup(opts->conninfo);
  p->on_connect_sql = opts->on_connect_sql ? kotte__strdup(opts->on_connect_sql) : NULL;
  if (p->conninfo == NULL || (opts->on_connect_sql && p->on_connect_sql == NULL)) {
    kotte__free(p->conninfo);
    kotte__free(p->on_connect_sql);
    kotte__free(p);
    return KOTTE_ENOMEM;
  }
  p->opts.conninfo = NULL;
  p->opts.on_connect_sql = NULL;
  p->stats.version = KOTTE_PG_STATS_VERSION;
  uv_timer_init(loop, &p->wake);
  uv_timer_init(loop, &p->backoff);
  uv_timer_init(loop, &p->maint);
  uv_prepare_init(loop, &p->flusher);
  uv_async_init(loop, &p->defer, on_defer);
  p->wake.data = p->backoff.data = p->maint.data = p->flusher.data = p->defer.data = p;
  p->n_handles = 5;
  uv_unref((uv_handle_t *)&p->wake);
  uv_unref((uv_handle_t *)&p->backoff);
  uv_unref((uv_handle_t *)&p->maint);
  uv_unref((uv_handle_t *)&p->flusher);
  uv_unref((uv_handle_t *)&p->defer);
  uv_timer_start(&p->maint, on_maint, 100, 100);
  grow(p, 0); /* min_size */
  *out = p;
  return 0;
}

static void free_on_loop(kotte_pg_pool *p) {
  if (p->closing) return;
  p->closing = 1;
  uv_timer_stop(&p->wake);
  uv_timer_stop(&p->backoff);
  uv_timer_stop(&p->maint);
  uv_prepare_stop(&p->flusher);
  /* work listed for the end of this turn runs now: the queries it submits
   * are refused (the pool is closing), and their users answered so */
  run_turn_hooks(p);
  while (p->waiting.head) {
    kotte__pg_req *r = p->waiting.head;
    kotte__pg_list_remove(&p->waiting, r);
    kotte__pg_complete(r, KOTTE_ECANCELED);
  }
  while (p->conns) {
    kotte__pg_conn *c = p->conns;
    while (c->inflight.head) {
      kotte__pg_req *r = c->inflight.head;
      kotte__pg_list_remove(&c->inflight, r);
      r->conn = NULL;
      if (r->abandoned) kotte__pg_req_free(r);
      else kotte__pg_complete(r, KOTTE_ECANCELED);
    }
    kotte__pg_conn_close(c);
  }
  kotte__pg_update_ref(p);
  /* Callbacks run on a later loop turn (also when freed from one). */
  uv_async_send(&p->defer);
}

static void free_posted(void *arg) { free_on_loop(arg); }

void kotte_pg_pool_free(kotte_pg_pool *p) {
  if (p == NULL) return;
  if (p->rt == NULL || kotte_runtime_on_loop_thread(p->rt)) {
    free_on_loop(p);
    return;
  }
  kotte__runtime_post_and_wait(p->rt, free_posted, p, &p->free_waiter, "kotte_pg_pool_free");
}

typedef struct open_call {
  kotte_pg_pool **out;
  kotte_runtime *rt;
  const kotte_pg_pool_options *opts;
} open_call;

static int open_on_loop(void *arg) {
  open_call *c = arg;
  int rc = kotte_pg_pool_new(c->out, kotte_runtime_loop(c->rt), c->opts);
  if (rc == 0) (*c->out)->rt = c->rt;
  return rc;
}

int kotte_pg_pool_open(kotte_pg_pool **out, kotte_runtime *rt, const kotte_pg_pool_options *opts) {
  kotte__clear_detail();
  if (out == NULL || rt == NULL) return KOTTE_EINVAL;
  *out = NULL;
  open_call c = { out, rt, opts };
  return kotte_runtime_run(rt, open_on_loop, &c);
}

uv_loop_t *kotte_pg_pool_loop(const kotte_pg_pool *p) { return p ? p->loop : NULL; }

/* ---- statements and queries ------------------------------------------------------------ */

int kotte_pg_pool_prepare(kotte_pg_pool *p, kotte_pg_stmt **out, const char *sql, int nparams,
                          const unsigned int *types) {
  kotte__clear_detail();
  if (out == NULL) return KOTTE_EINVAL;
  *out = NULL;
  if (p == NULL || sql == NULL || nparams < 0 || nparams > 65535) return KOTTE_EINVAL;
  if (p->closing) return KOTTE_ECLOSED;
  if (p->n_stmts == p->stmts_cap) {
    unsigned int cap = p->stmts_cap ? p->stmts_cap * 2 : 8;
    kotte_pg_stmt **n = kotte__realloc(p->stmts, cap * sizeof *n);
    if (n == NULL) return KOTTE_ENOMEM;
    p->stmts = n;
    p->stmts_cap = cap;
  }
  kotte_pg_stmt *s = kotte__calloc(1, sizeof *s);
  if (s == NULL) return KOTTE_ENOMEM;
  s->sql = kotte__strdup(sql);
  s->types = nparams ? kotte__calloc((size_t)nparams, sizeof *s->types) : NULL;
  if (s->sql == NULL || (nparams && s->types == NULL)) {
    kotte__free(s->sql);
    kotte__free(s->types);
    kotte__free(s);
    return KOTTE_ENOMEM;
  }
  for (int i = 0; i < nparams && types; i++) s->types[i] = types[i];
  s->idx = p->n_stmts;
  s->nparams = nparams;
  snprintf(s->name, sizeof s->name, "kotte_%u", s->idx);
  p->stmts[p->n_stmts++] = s;
  *out = s;
  return 0;
}

/* One allocation: the request, then the value pointers, lengths, formats,
 * the values and the SQL text. */
static kotte__pg_req *req_new(kotte_pg_pool *p, const kotte_pg_query *q) {
  int n = q->nparams;
  size_t data = 0;
  for (int i = 0; i < n; i++) {
    if (q->values[i] == NULL) continue;
    int bin = q->formats && q->formats[i];
    data += bin ? (size_t)q->lengths[i] : strlen(q->values[i]) + 1;
  }
  size_t sql = q->stmt ? 0 : strlen(q->sql) + 1;
  size_t size = sizeof(kotte__pg_req) + (size_t)n * (sizeof(char *) + 2 * sizeof(int)) + data + sql;
  kotte__pg_req *r = kotte__calloc(1, size);
  if (r == NULL) return NULL;
  char *cur = (char *)(r + 1);
  r->values = (char **)cur;
  cur += (size_t)n * sizeof(char *);
  r->lengths = (int *)cur;
  cur += (size_t)n * sizeof(int);
  r->formats = (int *)cur;
  cur += (size_t)n * sizeof(int);
  for (int i = 0; i < n; i++) {
    r->formats[i] = q->formats ? q->formats[i] : 0;
    if (q->values[i] == NULL) continue;
    size_t len = r->formats[i] ? (size_t)q->lengths[i] : strlen(q->values[i]) + 1;
    memcpy(cur, q->values[i], len);
    r->values[i] = cur;
    r->lengths[i] = r->formats[i] ? q->lengths[i] : 0;
    cur += len;
  }
  if (!q->stmt) {
    memcpy(cur, q->sql, sql);
    r->sql = cur;
  }
  r->pool = p;
  r->stmt = q->stmt;
  r->nparams = n;
  r->flags = q->flags;
  r->timeout_ms = q->timeout_ms == 0 ? p->opts.query_timeout_ms
                  : q->timeout_ms < 0 ? 0 : (unsigned int)q->timeout_ms;
  return r;
}

int kotte_pg_pool_query(kotte_pg_pool *p, const kotte_pg_query *q, kotte_pg_result_cb cb,
                        void *userdata) {
  kotte__clear_detail();
  if (p == NULL || q == NULL || cb == NULL) return KOTTE_EINVAL;
  if (q->version != KOTTE_PG_QUERY_VERSION) return KOTTE_EVERSION;
  if (p->closing) return KOTTE_ECLOSED;
  if ((q->stmt == NULL) == (q->sql == NULL) || q->nparams < 0 ||
      (q->nparams > 0 && q->values == NULL) || (q->stmt && q->stmt->nparams != q->nparams))
    return KOTTE_EINVAL;
  for (int i = 0; i < q->nparams; i++)
    if (q->formats && q->formats[i] && q->values[i] && (q->lengths == NULL || q->lengths[i] < 0))
      return KOTTE_EINVAL;
  kotte__pg_req *r = req_new(p, q);
  if (r == NULL) return KOTTE_ENOMEM;
  r->cb = cb;
  r->userdata = userdata;
  p->n_pending++;
  enqueue(r, 0);
  kotte__pg_pump(p);
  if (r->state == REQ_WAITING && p->waiting.n > p->opts.max_waiters) {
    kotte__pg_list_remove(&p->waiting, r);
    kotte__pg_deadline_remove(r);
    p->n_pending--;
    p->stats.waiter_rejections++;
    kotte__free(r);
    return kotte__fail(KOTTE_ETOOMANYWAITERS, "%u queries already wait for a connection",
                       p->opts.max_waiters);
  }
  kotte__pg_update_ref(p);
  /* Anything that settled while we were here (a send that failed) is
   * delivered on a later loop turn: kotte__pg_complete() woke the async handle. */
  return 0;
}
