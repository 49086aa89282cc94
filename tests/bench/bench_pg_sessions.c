/* PostgreSQL session benchmark: session get and update through the
 * asynchronous store API, PostgreSQL backend, kotte_pg_pool, on a loop this
 * program runs. 1, 8 and 32 requests in flight; without pipelining (one
 * connection per request in flight, one query per round trip) and with it
 * (fewer connections, the queries of a loop turn sharing a round trip and
 * a commit). tests/bench/bench_pg.sh runs it beside pgbench -M prepared and
 * asyncpg on the same server and prints the ratios.
 *
 *     bench_pg_sessions CONNINFO [SECONDS] [SESSIONS]   (defaults: 3, 10000)
 *
 * KOTTE_BENCH_ONLY=get:8:pool runs one case; KOTTE_BENCH_IDS=FILE keeps the
 * session ids between runs (created and saved the first time).
 * KOTTE_BENCH_THREADS=N (default 1) splits each case over N threads, each
 * with its own loop, pool and store, the requests in flight and the
 * connections divided between them (as pgbench -j N divides its clients).
 *
 * Prints one line per run: RESULT op=get conc=8 mode=pool ops_s=12345
 * (mode pool or pipeline, with the thread count appended when over 1:
 * pool2), then the pool's counters.
 *
 * The measured runs use a store clock stopped at the start of the run, so
 * every slide writes the same timestamps: pgbench can only pass a constant
 * timestamp (-D now=...), and asyncpg does the same, so that the server does
 * the same work (the same HOT-able row updates) for all three clients.
 * KOTTE_BENCH_REAL_CLOCK=1 uses the real clock instead.
 * KOTTE_BENCH_TOUCH_S=N sets the store's touch interval (default: the
 * store's, 1 % of the idle timeout); with the clock stopped, a get inside
 * it is one SELECT (tests/bench/session_cache.sh compares that with
 * pgbench running the same SELECT).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kotte.h>
#include <kotte/pg.h>

static const unsigned char secret[] = "benchmark-session-secret-0123456789";

typedef struct bench {
  uv_loop_t loop;
  kotte_pg_pool *pool;
  kotte_session_store *store;
  char (*ids)[KOTTE_SESSION_ID_LEN + 1];
  int n_ids;
  int op_update;
  int running, inflight;
  uint64_t done, errors, counter;
  unsigned int rnd;
} bench;

static void issue(bench *b);

static void on_done(int status, kotte_session *s, void *ud) {
  bench *b = ud;
  kotte_session_free(s);
  b->inflight--;
  if (status != 0) {
    if (b->errors++ < 3) fprintf(stderr, "op failed: %s\n", kotte_strerror(status));
  } else {
    b->done++;
  }
  if (b->running) issue(b);
}

static void issue(bench *b) {
  b->rnd = b->rnd * 1103515245u + 12345u;
  const char *id = b->ids[(b->rnd >> 8) % (unsigned int)b->n_ids];
  int rc;
  b->inflight++;
  if (b->op_update) {
    char patch[48];
    snprintf(patch, sizeof patch, "{\"k\":%llu}", (unsigned long long)++b->counter);
    rc = kotte_session_update(b->store, id, patch, on_done, b);
  } else {
    rc = kotte_session_get(b->store, id, on_done, b);
  }
  if (rc != 0) {
    b->inflight--;
    fprintf(stderr, "submit failed: %s\n", kotte_strerror(rc));
    exit(1);
  }
}

static kotte_time fixed_now;

static kotte_time bench_clock(void *ctx) {
  (void)ctx;
  return fixed_now ? fixed_now : kotte_clock_now();
}

static void open_stack(bench *b, const char *conninfo, unsigned int max_size, unsigned int depth) {
  kotte_pg_pool_options o = KOTTE_PG_POOL_OPTIONS_INIT;
  o.conninfo = conninfo;
  o.min_size = max_size;
  o.max_size = max_size;
  o.pipeline_depth = depth;
  if (kotte_pg_pool_new(&b->pool, &b->loop, &o) != 0) {
    fprintf(stderr, "pool: %s\n", kotte_error_detail());
    exit(1);
  }
  kotte_session_backend *be;
  kotte_session_options so = KOTTE_SESSION_OPTIONS_INIT;
  so.clock = bench_clock;
  const char *touch = getenv("KOTTE_BENCH_TOUCH_S");
  if (touch && *touch) so.touch_interval_s = atoll(touch);
  if (kotte_session_backend_postgresql_new(&be, b->pool, secret, sizeof secret - 1) != 0 ||
      kotte_session_store_new(&b->store, &b->loop, be, &so) != 0) {
    fprintf(stderr, "store: %s\n", kotte_error_detail());
    exit(1);
  }
}

static void close_stack(bench *b) {
  kotte_session_store_free(b->store);
  kotte_pg_pool_free(b->pool);
  uv_run(&b->loop, UV_RUN_DEFAULT);
}

static void on_stop(uv_timer_t *t) { *(int *)t->data = 1; }

/* Keeps @p conc operations in flight for @p ms; returns ops/s. */
static double run(bench *b, int conc, int ms) {
  uv_timer_t t;
  int fired = 0;
  uv_timer_init(&b->loop, &t);
  t.data = &fired;
  b->done = b->errors = 0;
  b->running = 1;
  uint64_t t0 = uv_hrtime();
  for (int i = 0; i < conc; i++) issue(b);
  uv_timer_start(&t, on_stop, (uint64_t)ms, 0);
  while (!fired) uv_run(&b->loop, UV_RUN_ONCE);
  uint64_t done = b->done;
  double secs = (double)(uv_hrtime() - t0) / 1e9;
  b->running = 0;
  while (b->inflight) uv_run(&b->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&b->loop, UV_RUN_NOWAIT);
  return (double)done / secs;
}

/* One thread's share of a case. */
typedef struct worker {
  bench b;
  const char *conninfo;
  unsigned int size, depth;
  int conc, ms;
  pthread_barrier_t *ready; /* every thread warmed up: the measured runs start together */
  double rate;
  kotte_pg_pool_stats stats;
} worker;

static void *work(void *arg) {
  worker *w = arg;
  uv_loop_init(&w->b.loop);
  open_stack(&w->b, w->conninfo, w->size, w->depth);
  run(&w->b, w->conc, 300); /* warm up: connections, prepared statements */
  pthread_barrier_wait(w->ready);
  w->rate = run(&w->b, w->conc, w->ms);
  w->stats.version = KOTTE_PG_STATS_VERSION;
  kotte_pg_pool_get_stats(w->b.pool, &w->stats);
  close_stack(&w->b);
  uv_loop_close(&w->b.loop);
  return NULL;
}

typedef struct create_ctx {
  bench *b;
  int i, *done;
} create_ctx;

static void on_created(int status, kotte_session *s, void *ud) {
  create_ctx *c = ud;
  if (status != 0) {
    fprintf(stderr, "create: %s\n", kotte_strerror(status));
    exit(1);
  }
  snprintf(c->b->ids[c->i], KOTTE_SESSION_ID_LEN + 1, "%s", kotte_session_id(s));
  kotte_session_free(s);
  (*c->done)++;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s CONNINFO [SECONDS] [SESSIONS]\n", argv[0]);
    return 2;
  }
  const char *conninfo = argv[1];
  int ms = (argc > 2 ? atoi(argv[2]) : 3) * 1000;
  bench b;
  memset(&b, 0, sizeof b);
  b.n_ids = argc > 3 ? atoi(argv[3]) : 10000;
  b.ids = calloc((size_t)b.n_ids, sizeof *b.ids);
  b.rnd = 42;
  uv_loop_init(&b.loop);

  /* the sessions every run reads and updates: created here, or read back
   * from $KOTTE_BENCH_IDS when an earlier run saved them there */
  const char *ids_file = getenv("KOTTE_BENCH_IDS");
  FILE *idf = ids_file && *ids_file ? fopen(ids_file, "r") : NULL;
  int loaded = 0;
  if (idf) {
    while (loaded < b.n_ids && fscanf(idf, "%43s", b.ids[loaded]) == 1) loaded++;
    fclose(idf);
  }
  if (loaded < b.n_ids) {
    open_stack(&b, conninfo, 8, 16);
    create_ctx *cc = calloc((size_t)b.n_ids, sizeof *cc);
    int created = 0;
    for (int i = 0; i < b.n_ids; i++) {
      cc[i] = (create_ctx){ &b, i, &created };
      if (kotte_session_create(b.store, "bench", "{\"csrf_token\":\"x\",\"graph_context\":null}",
                               on_created, &cc[i]) != 0)
        return 1;
      if (i % 256 == 255)
        while (created <= i - 128) uv_run(&b.loop, UV_RUN_ONCE);
    }
    while (created < b.n_ids) uv_run(&b.loop, UV_RUN_ONCE);
    free(cc);
    close_stack(&b);
    printf("created %d sessions\n", b.n_ids);
    if (ids_file && *ids_file && (idf = fopen(ids_file, "w")) != NULL) {
      for (int i = 0; i < b.n_ids; i++) fprintf(idf, "%s\n", b.ids[i]);
      fclose(idf);
    }
  }
  fflush(stdout);

  const char *rc_env = getenv("KOTTE_BENCH_REAL_CLOCK");
  if (!(rc_env && *rc_env == '1')) fixed_now = kotte_clock_now();
  const int concs[] = { 1, 8, 32 };
  const char *pc = getenv("KOTTE_BENCH_PIPE_CONNS");
  /* 3 by default: one server process more than this machine's 2 cores, so
   * that while one waits on the network the others keep both cores busy
   * (measured: 2 leaves the server idle between batches, 4 and more add
   * switching; KOTTE_BENCH_PIPE_CONNS=N to try others) */
  int pipe_conns = pc && atoi(pc) > 0 ? atoi(pc) : 3;
  const char *tc = getenv("KOTTE_BENCH_THREADS");
  int threads = tc && atoi(tc) > 0 ? atoi(tc) : 1;
  for (int op = 0; op < 2; op++) {
    for (int ci = 0; ci < 3; ci++) {
      int conc = concs[ci];
      for (int pipe = 0; pipe < 2; pipe++) {
        if (pipe && conc == 1) continue; /* nothing to share */
        char name[64];
        snprintf(name, sizeof name, "%s:%d:%s", op ? "update" : "get", conc, pipe ? "pipeline" : "pool");
        const char *only = getenv("KOTTE_BENCH_ONLY"); /* e.g. get:8:pool */
        if (only && *only && strcmp(only, name) != 0) continue;
        int nt = threads < conc ? threads : conc;
        worker *w = calloc((size_t)nt, sizeof *w);
        pthread_t *tid = calloc((size_t)nt, sizeof *tid);
        pthread_barrier_t ready;
        pthread_barrier_init(&ready, NULL, (unsigned int)nt);
        for (int t = 0; t < nt; t++) {
          /* this thread's share of the requests in flight; without
           * pipelining a connection per request (like pgbench -c N), with
           * it pipe_conns connections in all, shared by the threads */
          int c = conc / nt + (t < conc % nt);
          int pc_t = pipe_conns / nt + (t < pipe_conns % nt);
          if (pc_t < 1) pc_t = 1;
          w[t].b.ids = b.ids;
          w[t].b.n_ids = b.n_ids;
          w[t].b.op_update = op;
          w[t].b.rnd = 42u + (unsigned int)t * 7919u;
          w[t].conninfo = conninfo;
          w[t].size = pipe ? (unsigned int)(c < pc_t ? c : pc_t) : (unsigned int)c;
          w[t].depth = pipe ? (unsigned int)c : 1;
          w[t].conc = c;
          w[t].ms = ms;
          w[t].ready = &ready;
          if (pthread_create(&tid[t], NULL, work, &w[t]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
          }
        }
        double r = 0;
        unsigned long long open = 0, queries = 0, batches = 0, errors = 0;
        for (int t = 0; t < nt; t++) {
          pthread_join(tid[t], NULL);
          r += w[t].rate;
          open += w[t].stats.open;
          queries += w[t].stats.queries;
          batches += w[t].stats.batches;
          errors += w[t].b.errors;
        }
        pthread_barrier_destroy(&ready);
        char mode[32];
        snprintf(mode, sizeof mode, "%s", pipe ? "pipeline" : "pool");
        if (nt > 1) snprintf(mode + strlen(mode), sizeof mode - strlen(mode), "%d", nt);
        printf("RESULT op=%s conc=%d mode=%s ops_s=%.0f conns=%llu queries_per_round_trip=%.2f "
               "errors=%llu\n",
               op ? "update" : "get", conc, mode, r, open,
               batches ? (double)queries / (double)batches : 0.0, errors);
        fflush(stdout);
        free(w);
        free(tid);
      }
    }
  }
  uv_loop_close(&b.loop);
  free(b.ids);
  return 0;
}
