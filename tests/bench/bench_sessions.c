/* Session store benchmark: create/get/update through the blocking facade,
 * memory and json_file backends, with 1k, 10k and 100k sessions stored,
 * from 1 and 2 threads, and through the asynchronous API on the loop thread. Prints ops/s, p50 and p99 latency, and ratios
 * against references measured in the same run:
 *
 *   - "hop": kotte_runtime_run() of an empty function — the bare cost of
 *     the thread hop every facade call makes (memory ops are compared to it);
 *   - "fsync": write(2) + fdatasync(2) of one 200-byte line to a file in the
 *     same directory — the floor for one durable write (json_file creates
 *     and updates are compared to it).
 *
 *     bench_sessions [DIR] [OPS]     (defaults: /tmp, 2000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kotte.h>

#include "harness.h"

static const char *dir = "/tmp";
static int ops = 2000;

typedef bench_result result;
#define summarize bench_summarize

/* ---- prefill: N creates issued at once on the loop ---------------------- */

typedef struct prefill {
  kotte_session_store *st;
  int n, left;
  char (*ids)[44];
  bench_wait w;
} prefill;

typedef struct slot {
  prefill *p;
  int i;
} slot;

static void prefill_cb(int status, kotte_session *s, void *ud) {
  slot *sl = ud;
  prefill *p = sl->p;
  if (status != 0) {
    fprintf(stderr, "prefill: %s\n", kotte_strerror(status));
    exit(1);
  }
  memcpy(p->ids[sl->i], kotte_session_id(s), 44);
  kotte_session_free(s);
  if (--p->left == 0) bench_signal(&p->w);
}

static slot *slots;

static void prefill_start(void *arg) {
  prefill *p = arg;
  for (int i = 0; i < p->n; i++) {
    slots[i] = (slot){ p, i };
    char user[32];
    snprintf(user, sizeof user, "user-%d", i % 1000);
    if (kotte_session_create(p->st, user, "{\"csrf_token\":\"0123456789abcdef\",\"graph_context\":null}",
                             prefill_cb, &slots[i]) != 0)
      exit(1);
  }
}

static void do_prefill(kotte_runtime *rt, kotte_session_store *st, int n, char (*ids)[44]) {
  prefill p;
  memset(&p, 0, sizeof p);
  p.st = st;
  p.n = p.left = n;
  p.ids = ids;
  slots = calloc((size_t)n, sizeof *slots);
  bench_post_and_wait(rt, prefill_start, &p, &p.w);
  free(slots);
}

/* ---- measured loops ------------------------------------------------------ */

enum { OP_CREATE, OP_GET, OP_UPDATE, OP_HOP };
static const char *op_names[] = { "create", "get", "update", "hop" };

typedef struct job {
  kotte_runtime *rt;
  kotte_session_store *st;
  int op, n, offset;
  char (*ids)[44];
  int nids;
  uint64_t *lat;
} job;

static int nothing(void *arg) { return 0; }

static void run_job(void *arg) {
  job *j = arg;
  for (int i = 0; i < j->n; i++) {
    kotte_session *s = NULL;
    const char *id = j->ids[(j->offset + i * 7919) % j->nids];
    uint64_t t0 = uv_hrtime();
    int rc = 0;
    switch (j->op) {
    case OP_CREATE: rc = kotte_session_create_sync(j->st, "bench", "{\"csrf_token\":\"0123456789abcdef\"}", &s, 30000); break;
    case OP_GET: rc = kotte_session_get_sync(j->st, id, &s, 30000); break;
    case OP_UPDATE: rc = kotte_session_update_sync(j->st, id, "{\"graph_context\":\"movies\"}", &s, 30000); break;
    case OP_HOP: rc = kotte_runtime_run(j->rt, nothing, NULL); break;
    }
    j->lat[i] = uv_hrtime() - t0;
    if (rc != 0) {
      fprintf(stderr, "%s: %s\n", op_names[j->op], kotte_strerror(rc));
      exit(1);
    }
    kotte_session_free(s);
  }
}

static result measure(kotte_runtime *rt, kotte_session_store *st, int op, int threads,
                      char (*ids)[44], int nids) {
  uint64_t *lat = calloc((size_t)ops, sizeof *lat);
  job jobs[2];
  int per = ops / threads;
  for (int k = 0; k < threads; k++)
    jobs[k] = (job){ rt, st, op, per, k * 104729, ids, nids, lat + k * per };
  result r = summarize(lat, per * threads, bench_threads(threads, run_job, jobs, sizeof jobs[0]));
  free(lat);
  return r;
}

/* ---- async mode: ops chained on the loop thread, no thread hop ---------- */

typedef struct chain {
  kotte_session_store *st;
  int op, i, n, nids;
  char (*ids)[44];
  uint64_t *lat, t0, wall0, wall;
  bench_wait w;
} chain;

static void chain_next(chain *c);

static void chain_cb(int status, kotte_session *s, void *ud) {
  chain *c = ud;
  if (status != 0) {
    fprintf(stderr, "async %s: %s\n", op_names[c->op], kotte_strerror(status));
    exit(1);
  }
  kotte_session_free(s);
  c->lat[c->i++] = uv_hrtime() - c->t0;
  if (c->i < c->n) {
    chain_next(c);
    return;
  }
  c->wall = uv_hrtime() - c->wall0;
  bench_signal(&c->w);
}

static void chain_next(chain *c) {
  const char *id = c->ids[(c->i * 7919) % c->nids];
  int rc = 0;
  c->t0 = uv_hrtime();
  switch (c->op) {
  case OP_CREATE: rc = kotte_session_create(c->st, "bench", "{\"csrf_token\":\"0123456789abcdef\"}", chain_cb, c); break;
  case OP_GET: rc = kotte_session_get(c->st, id, chain_cb, c); break;
  case OP_UPDATE: rc = kotte_session_update(c->st, id, "{\"graph_context\":\"movies\"}", chain_cb, c); break;
  }
  if (rc != 0) exit(1);
}

static void chain_start(void *arg) {
  chain *c = arg;
  c->wall0 = uv_hrtime();
  chain_next(c);
}

static result measure_async(kotte_runtime *rt, kotte_session_store *st, int op, char (*ids)[44],
                            int nids) {
  chain c;
  memset(&c, 0, sizeof c);
  c.st = st;
  c.op = op;
  c.n = ops;
  c.ids = ids;
  c.nids = nids;
  c.lat = calloc((size_t)ops, sizeof *c.lat);
  bench_post_and_wait(rt, chain_start, &c, &c.w);
  result r = summarize(c.lat, ops, c.wall);
  free(c.lat);
  return r;
}

static double fsync_reference(void) { return bench_fsync_reference(dir, ops); }

int main(int argc, char **argv) {
  if (argc > 1) dir = argv[1];
  if (argc > 2) ops = atoi(argv[2]);
  kotte_runtime *rt;
  if (kotte_runtime_new(&rt, NULL) != 0) return 1;
  static const int sizes[] = { 1000, 10000, 100000 };
  char (*ids)[44] = calloc(100000, 44);
  result hop1 = measure(rt, NULL, OP_HOP, 1, ids, 1);
  result hop2 = measure(rt, NULL, OP_HOP, 2, ids, 1);
  double fsync_ops = fsync_reference();
  printf("libkotte %s session benchmark: %d ops per cell, files in %s\n", kotte_version(), ops, dir);
  printf("reference hop (empty kotte_runtime_run): 1 thread %.0f ops/s, 2 threads %.0f ops/s\n",
         hop1.ops_per_s, hop2.ops_per_s);
  printf("reference fsync (write+fdatasync of 200 B): %.0f ops/s\n\n", fsync_ops);
  printf("thr: 0 = asynchronous API chained on the loop thread; 1, 2 = threads calling the blocking facade\n");
  printf("%-9s %7s %3s %-6s %10s %9s %9s %s\n", "backend", "stored", "thr", "op", "ops/s",
         "p50 us", "p99 us", "ratio to reference");
  for (int b = 0; b < 2; b++) {
    for (int z = 0; z < 3; z++) {
      kotte_session_backend *be;
      char path[512];
      snprintf(path, sizeof path, "%s/kotte-bench-%d.journal", dir, getpid());
      unlink(path);
      static const unsigned char secret[] = "bench-sessions-secret";
      int rc = b == 0 ? kotte_session_backend_memory_new(&be)
                      : kotte_session_backend_json_file_new(&be, kotte_runtime_loop(rt), path,
                                                            secret, sizeof secret - 1);
      kotte_session_store *st;
      if (rc != 0 || kotte_session_store_open(&st, rt, be, NULL) != 0) return 1;
      do_prefill(rt, st, sizes[z], ids);
      /* threads 0: the asynchronous API on the loop thread, one op at a time */
      for (int threads = 0; threads <= 2; threads++) {
        for (int op = OP_CREATE; op <= OP_UPDATE; op++) {
          result r = threads == 0 ? measure_async(rt, st, op, ids, sizes[z])
                                  : measure(rt, st, op, threads, ids, sizes[z]);
          char ratio[64];
          if (b == 0 || op == OP_GET)
            snprintf(ratio, sizeof ratio, "%.2fx hop", r.ops_per_s / (threads == 2 ? hop2 : hop1).ops_per_s);
          else
            snprintf(ratio, sizeof ratio, "%.2fx fsync", r.ops_per_s / fsync_ops);
          printf("%-9s %7d %3d %-6s %10.0f %9.1f %9.1f %s\n", b == 0 ? "memory" : "json_file",
                 sizes[z], threads, op_names[op], r.ops_per_s, r.p50_us, r.p99_us, ratio);
          fflush(stdout);
        }
      }
      kotte_session_store_free(st);
      if (b == 1) {
        char lock[600];
        snprintf(lock, sizeof lock, "%s.lock", path);
        unlink(path);
        unlink(lock);
      }
    }
  }
  free(ids);
  kotte_runtime_free(rt);
  return 0;
}
