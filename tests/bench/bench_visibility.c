/* How soon a logout on one process is seen by another process's cache.
 *
 *     bench_visibility CONNINFO [LOGOUTS]   (default 1000)
 *
 * Two processes on one database. A: a store on the postgresql backend with
 * the cache; it creates LOGOUTS sessions, reads each once (so the cache
 * holds them all), then keeps reading the sessions about to be deleted, 8
 * gets in flight, answered from its cache while they live. B (a child
 * process, a store without cache, pool of its own): deletes them one by
 * one, 2-6 ms apart, and tells A the time each delete was acknowledged
 * (CLOCK_MONOTONIC is one clock for both processes).
 *
 * For each session: the time from B's acknowledged delete to A's first
 * "no session" (negative when A's answer came first: the NOTIFY reached A
 * before B's own acknowledgement was read by B). Prints p50, p99 and max,
 * how many reads A answered from its cache after the delete was
 * acknowledged (the window the figures measure), and how many reads said
 * "found" after A had already answered "no session" for that session
 * (must be 0: after A learned of a delete, its cache never serves it).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <kotte.h>
#include <kotte/pg.h>

static const unsigned char secret[] = "visibility-benchmark-secret-0123456789";

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

typedef struct stack {
  uv_loop_t loop;
  kotte_pg_pool *pool;
  kotte_session_store *store;
  kotte_session_backend *be;
} stack;

static void open_stack(stack *s, const char *ci, int cache) {
  uv_loop_init(&s->loop);
  kotte_pg_pool_options o = KOTTE_PG_POOL_OPTIONS_INIT;
  o.conninfo = ci;
  o.min_size = 2;
  o.max_size = 8;
  kotte_session_pg_options po = KOTTE_SESSION_PG_OPTIONS_INIT;
  po.cache = cache;
  if (kotte_pg_pool_new(&s->pool, &s->loop, &o) != 0 ||
      kotte_session_backend_postgresql_new_v2(&s->be, s->pool, secret, sizeof secret - 1, &po) != 0 ||
      kotte_session_store_new(&s->store, &s->loop, s->be, NULL) != 0) {
    fprintf(stderr, "open: %s\n", kotte_error_detail());
    exit(1);
  }
}

typedef struct one {
  int done, status;
  kotte_session *s;
} one;

static void on_one(int status, kotte_session *s, void *ud) {
  one *o = ud;
  o->done = 1;
  o->status = status;
  o->s = s;
}
static void on_one_status(int status, void *ud) { on_one(status, NULL, ud); }

static void tick(uv_timer_t *t) { (void)t; }

static void wait_one(stack *s, one *o) {
  while (!o->done) uv_run(&s->loop, UV_RUN_ONCE);
}

/* ---- B: deletes ----------------------------------------------------------------- */

static int run_b(const char *ci, int n, char (*ids)[KOTTE_SESSION_ID_LEN + 1], int out_fd) {
  stack s;
  open_stack(&s, ci, 0);
  unsigned int rnd = 7;
  for (int i = 0; i < n; i++) {
    rnd = rnd * 1103515245u + 12345u;
    usleep(2000 + (rnd >> 8) % 4000);
    one o = { 0 };
    if (kotte_session_delete(s.store, ids[i], on_one_status, &o) != 0) return 1;
    wait_one(&s, &o);
    int64_t acked = mono_us();
    if (o.status != 0) fprintf(stderr, "B: delete %d: %s\n", i, kotte_strerror(o.status));
    if (write(out_fd, &acked, sizeof acked) != sizeof acked) return 1;
  }
  kotte_session_store_free(s.store);
  kotte_pg_pool_free(s.pool);
  uv_run(&s.loop, UV_RUN_DEFAULT);
  return 0;
}

/* ---- A: reads through its cache ------------------------------------------------- */

typedef struct reader {
  stack *s;
  int n;
  char (*ids)[KOTTE_SESSION_ID_LEN + 1];
  int64_t *gone_at;  /* A's first "no session", 0: not yet */
  int64_t *acked_at; /* B's acknowledged delete, 0: not yet told */
  int next;          /* the lowest session A has not seen gone */
  int inflight;
  unsigned int rnd;
  uint64_t reads, found_after_ack, found_after_gone;
} reader;

typedef struct get_ctx {
  reader *r;
  int i;
  int64_t sent;
} get_ctx;

static void issue(reader *r);

static void on_get(int status, kotte_session *s, void *ud) {
  get_ctx *g = ud;
  reader *r = g->r;
  kotte_session_free(s);
  r->inflight--;
  r->reads++;
  int i = g->i;
  if (status == KOTTE_ENOTFOUND) {
    if (r->gone_at[i] == 0) r->gone_at[i] = mono_us();
  } else if (status == 0) {
    /* a read sent after A had answered "no session" must not find it */
    if (r->gone_at[i] && g->sent > r->gone_at[i]) r->found_after_gone++;
    if (r->acked_at[i] && g->sent > r->acked_at[i]) r->found_after_ack++;
  } else {
    fprintf(stderr, "A: get: %s\n", kotte_strerror(status));
  }
  free(g);
  while (r->next < r->n && r->gone_at[r->next]) r->next++;
  issue(r);
}

/* Keeps 8 gets in flight: mostly the next sessions B will delete, now and
 * then one already gone (which must stay gone). */
static void issue(reader *r) {
  while (r->inflight < 8 && r->next < r->n) {
    r->rnd = r->rnd * 1103515245u + 12345u;
    int i = r->next + (int)((r->rnd >> 8) % 3);
    if ((r->rnd >> 4) % 8 == 0 && r->next > 0) i = (int)((r->rnd >> 12) % (unsigned)r->next);
    if (i >= r->n) i = r->next;
    get_ctx *g = malloc(sizeof *g);
    g->r = r;
    g->i = i;
    g->sent = mono_us();
    r->inflight++;
    if (kotte_session_get(r->s->store, r->ids[i], on_get, g) != 0) {
      fprintf(stderr, "A: get not started\n");
      exit(1);
    }
  }
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s CONNINFO [LOGOUTS]\n", argv[0]);
    return 2;
  }
  const char *ci = argv[1];
  int n = argc > 2 ? atoi(argv[2]) : 1000;
  char(*ids)[KOTTE_SESSION_ID_LEN + 1] = calloc((size_t)n, sizeof *ids);
  int go[2], acks[2];
  if (pipe(go) != 0 || pipe(acks) != 0) return 1;
  pid_t child = fork();
  if (child == 0) { /* B: waits for the ids, then deletes */
    close(go[1]);
    close(acks[0]);
    size_t want = (size_t)n * sizeof *ids, got = 0;
    while (got < want) {
      ssize_t k = read(go[0], (char *)ids + got, want - got);
      if (k <= 0) _exit(1);
      got += (size_t)k;
    }
    _exit(run_b(ci, n, ids, acks[1]));
  }
  close(go[0]);
  close(acks[1]);
  fcntl(acks[0], F_SETFL, O_NONBLOCK);

  stack s;
  open_stack(&s, ci, 1);
  uv_timer_t pace;
  uv_timer_init(&s.loop, &pace);
  uv_timer_start(&pace, tick, 1, 1);
  for (int i = 0; i < n; i++) {
    one o = { 0 };
    if (kotte_session_create(s.store, "visibility", "{\"csrf_token\":\"x\"}", on_one, &o) != 0)
      return 1;
    wait_one(&s, &o);
    if (o.status != 0) return 1;
    snprintf(ids[i], sizeof ids[i], "%s", kotte_session_id(o.s));
    kotte_session_free(o.s);
  }
  kotte_session_pg_cache_stats cs = { .version = KOTTE_SESSION_PG_CACHE_STATS_VERSION };
  int64_t until = mono_us() + 10000000;
  do {
    uv_run(&s.loop, UV_RUN_ONCE);
    kotte_session_backend_postgresql_cache_stats(s.be, &cs);
  } while (!cs.live && mono_us() < until);
  if (!cs.live) {
    fprintf(stderr, "A: the cache did not come up\n");
    return 1;
  }
  for (int i = 0; i < n; i++) { /* fill the cache */
    one o = { 0 };
    kotte_session_get(s.store, ids[i], on_one, &o);
    wait_one(&s, &o);
    kotte_session_free(o.s);
  }
  kotte_session_backend_postgresql_cache_stats(s.be, &cs);
  uint64_t hits0 = cs.hits;

  reader r = { .s = &s, .n = n, .ids = ids, .rnd = 1 };
  r.gone_at = calloc((size_t)n, sizeof *r.gone_at);
  r.acked_at = calloc((size_t)n, sizeof *r.acked_at);
  if (write(go[1], ids, (size_t)n * sizeof *ids) != (ssize_t)((size_t)n * sizeof *ids)) return 1;
  issue(&r);
  int told = 0;
  until = mono_us() + 120000000;
  while ((r.next < r.n || told < n) && mono_us() < until) {
    uv_run(&s.loop, UV_RUN_ONCE);
    int64_t t;
    while (told < n && read(acks[0], &t, sizeof t) == sizeof t) r.acked_at[told++] = t;
    if (r.inflight == 0) issue(&r);
  }
  while (r.inflight) uv_run(&s.loop, UV_RUN_ONCE);
  int status;
  waitpid(child, &status, 0);
  kotte_session_backend_postgresql_cache_stats(s.be, &cs);

  int64_t *lat = calloc((size_t)n, sizeof *lat);
  int m = 0;
  for (int i = 0; i < n; i++)
    if (r.gone_at[i] && r.acked_at[i]) lat[m++] = r.gone_at[i] - r.acked_at[i];
  qsort(lat, (size_t)m, sizeof *lat, cmp64);
  if (m == 0) {
    fprintf(stderr, "no measurement\n");
    return 1;
  }
  printf("RESULT visibility logouts=%d measured=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f "
         "reads=%llu cache_hits=%llu found_after_ack=%llu found_after_gone=%llu "
         "invalidations=%llu b_exit=%d\n",
         n, m, lat[m / 2] / 1000.0, lat[(m * 99) / 100 < m ? (m * 99) / 100 : m - 1] / 1000.0,
         lat[m - 1] / 1000.0, (unsigned long long)r.reads,
         (unsigned long long)(cs.hits - hits0), (unsigned long long)r.found_after_ack,
         (unsigned long long)r.found_after_gone, (unsigned long long)cs.invalidations,
         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  uv_close((uv_handle_t *)&pace, NULL);
  kotte_session_store_free(s.store);
  kotte_pg_pool_free(s.pool);
  uv_run(&s.loop, UV_RUN_DEFAULT);
  return r.found_after_gone == 0 && m == n ? 0 : 1;
}
