/* Credential benchmark.
 *
 *  - key ring: kotte_keyring_seal() / kotte_keyring_open() of a 24-byte
 *    secret (subkey derivation, XChaCha20-Poly1305, and the two mprotect
 *    calls that keep the key pages inaccessible between uses), 1 and 2
 *    threads;
 *  - store: save / get / list through the blocking facade (1 and 2
 *    threads) and through the asynchronous API chained on the loop thread
 *    (thr 0), memory and json_file backends, with 1k and 10k connections
 *    stored (10 per user, so a list returns 10 records);
 *  - rewrap: re-sealing every stored record under a new key, json_file
 *    (records/s; the memory backend does not survive the restart that a
 *    rotation is).
 *
 * Ratios are against references measured in the same run, as in
 * bench_sessions: "hop" (an empty kotte_runtime_run(), the thread hop of
 * every blocking call) and "fsync" (write + fdatasync of 200 bytes in DIR,
 * the floor of one durable write).
 *
 *     bench_credentials [DIR] [OPS]     (defaults: /tmp, 2000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kotte.h>

#include "harness.h"

#define KEY_A "00112233445566778899aabbccddeeff0123456789abcdef0011223344556677"
#define KEY_B "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="
#define SECRET "correct-horse-battery-24"

static const char *dir = "/tmp";
static int ops = 2000;

typedef bench_result result;
#define summarize bench_summarize

static void die(const char *what, int rc) {
  fprintf(stderr, "%s: %s %s\n", what, kotte_strerror(rc), kotte_error_detail());
  exit(1);
}

static void user_of(int i, char *out, size_t cap) { snprintf(out, cap, "user-%d", i / 10); }

static kotte_cred_input input(const char *name) {
  kotte_cred_input in = KOTTE_CRED_INPUT_INIT;
  in.name = name;
  in.host = "db.example.internal";
  in.port = 5432;
  in.database = "graphs";
  in.sslmode = "require";
  in.username = "graph_reader";
  in.password = SECRET;
  return in;
}

/* ---- key ring ------------------------------------------------------------ */

enum { K_SEAL, K_OPEN };

typedef struct kjob {
  kotte_keyring *kr;
  int what, n;
  uint64_t *lat;
  unsigned char blob[128];
  size_t blob_len;
} kjob;

static void run_kjob(void *arg) {
  kjob *j = arg;
  unsigned char out[128];
  for (int i = 0; i < j->n; i++) {
    size_t n;
    char *pt;
    uint64_t t0 = uv_hrtime();
    int rc = j->what == K_SEAL
                 ? kotte_keyring_seal(j->kr, "user-1", "ad", 2, SECRET, sizeof SECRET - 1, out,
                                      sizeof out, &n)
                 : kotte_keyring_open(j->kr, "user-1", "ad", 2, j->blob, j->blob_len, &pt, NULL);
    j->lat[i] = uv_hrtime() - t0;
    if (rc != 0) die("keyring", rc);
    if (j->what == K_OPEN) kotte_secret_free(pt);
  }
}

static result measure_keyring(kotte_keyring *kr, int what, int threads) {
  int n = ops * 10, per = n / threads;
  uint64_t *lat = calloc((size_t)n, sizeof *lat);
  kjob jobs[2];
  for (int k = 0; k < threads; k++) {
    jobs[k] = (kjob){ kr, what, per, lat + k * per, { 0 }, 0 };
    if (kotte_keyring_seal(kr, "user-1", "ad", 2, SECRET, sizeof SECRET - 1, jobs[k].blob,
                           sizeof jobs[k].blob, &jobs[k].blob_len) != 0)
      exit(1);
  }
  result r = summarize(lat, per * threads, bench_threads(threads, run_kjob, jobs, sizeof jobs[0]));
  free(lat);
  return r;
}

/* ---- prefill: every save in flight at once ------------------------------ */

typedef struct prefill {
  kotte_cred_store *st;
  int n, left, base;
  char (*ids)[37];
  bench_wait w;
} prefill;

static prefill *current_fill;

static void prefill_cb(int status, kotte_cred *c, void *ud) {
  prefill *p = current_fill;
  int i = (int)(intptr_t)ud;
  if (status != 0) die("prefill", status);
  memcpy(p->ids[i], kotte_cred_id(c), 37);
  kotte_cred_free(c);
  if (--p->left == 0) bench_signal(&p->w);
}

static void prefill_start(void *arg) {
  prefill *p = arg;
  for (int i = 0; i < p->n; i++) {
    char user[32], name[32];
    user_of(i, user, sizeof user);
    snprintf(name, sizeof name, "conn-%d", i);
    kotte_cred_input in = input(name);
    int rc = kotte_cred_save(p->st, user, &in, prefill_cb, (void *)(intptr_t)i);
    if (rc != 0) die("prefill", rc);
  }
}

static void do_prefill(kotte_runtime *rt, kotte_cred_store *st, int n, char (*ids)[37]) {
  prefill p;
  memset(&p, 0, sizeof p);
  p.st = st;
  p.n = p.left = n;
  p.ids = ids;
  current_fill = &p;
  bench_post_and_wait(rt, prefill_start, &p, &p.w);
}

/* ---- measured loops ------------------------------------------------------ */

enum { OP_SAVE, OP_GET, OP_LIST, OP_HOP };
static const char *op_names[] = { "save", "get", "list", "hop" };
static int save_seq; /* unique names for saves, across cells */

typedef struct job {
  kotte_runtime *rt;
  kotte_cred_store *st;
  int op, n, offset, thread;
  char (*ids)[37];
  int nids;
  uint64_t *lat;
} job;

static int nothing(void *arg) {
  (void)arg;
  return 0;
}

static void run_job(void *arg) {
  job *j = arg;
  for (int i = 0; i < j->n; i++) {
    int k = (j->offset + i * 7919) % j->nids;
    char user[32], name[48];
    user_of(k, user, sizeof user);
    snprintf(name, sizeof name, "bench-%d-%d-%d", save_seq, j->thread, i);
    kotte_cred_input in = input(name);
    kotte_cred *c = NULL;
    kotte_cred_list *l = NULL;
    uint64_t t0 = uv_hrtime();
    int rc = 0;
    switch (j->op) {
    case OP_SAVE: rc = kotte_cred_save_sync(j->st, "bench", &in, &c, 30000); break;
    case OP_GET: rc = kotte_cred_get_sync(j->st, user, j->ids[k], &c, 30000); break;
    case OP_LIST: rc = kotte_cred_list_user_sync(j->st, user, &l, 30000); break;
    case OP_HOP: rc = kotte_runtime_run(j->rt, nothing, NULL); break;
    }
    j->lat[i] = uv_hrtime() - t0;
    if (rc != 0) die(op_names[j->op], rc);
    kotte_cred_free(c);
    kotte_cred_list_free(l);
  }
}

static result measure(kotte_runtime *rt, kotte_cred_store *st, int op, int threads,
                      char (*ids)[37], int nids) {
  uint64_t *lat = calloc((size_t)ops, sizeof *lat);
  job jobs[2];
  int per = ops / threads;
  save_seq++;
  for (int k = 0; k < threads; k++)
    jobs[k] = (job){ rt, st, op, per, k * 104729, k, ids, nids, lat + k * per };
  result r = summarize(lat, per * threads, bench_threads(threads, run_job, jobs, sizeof jobs[0]));
  free(lat);
  return r;
}

/* ---- async: operations chained on the loop thread ------------------------ */

typedef struct chain {
  kotte_cred_store *st;
  int op, i, n, nids;
  char (*ids)[37];
  uint64_t *lat, t0, wall0, wall;
  bench_wait w;
} chain;

static void chain_next(chain *c);

static void chain_end_one(chain *c) {
  c->lat[c->i++] = uv_hrtime() - c->t0;
  if (c->i < c->n) {
    chain_next(c);
    return;
  }
  c->wall = uv_hrtime() - c->wall0;
  bench_signal(&c->w);
}

static void chain_cred(int status, kotte_cred *cr, void *ud) {
  if (status != 0) die("async", status);
  kotte_cred_free(cr);
  chain_end_one(ud);
}

static void chain_list(int status, kotte_cred_list *l, void *ud) {
  if (status != 0) die("async list", status);
  kotte_cred_list_free(l);
  chain_end_one(ud);
}

static void chain_next(chain *c) {
  int k = (c->i * 7919) % c->nids;
  char user[32], name[48];
  user_of(k, user, sizeof user);
  snprintf(name, sizeof name, "async-%d-%d", save_seq, c->i);
  kotte_cred_input in = input(name);
  int rc = 0;
  c->t0 = uv_hrtime();
  switch (c->op) {
  case OP_SAVE: rc = kotte_cred_save(c->st, "bench", &in, chain_cred, c); break;
  case OP_GET: rc = kotte_cred_get(c->st, user, c->ids[k], chain_cred, c); break;
  case OP_LIST: rc = kotte_cred_list_user(c->st, user, chain_list, c); break;
  }
  if (rc != 0) die("async", rc);
}

static void chain_start(void *arg) {
  chain *c = arg;
  c->wall0 = uv_hrtime();
  chain_next(c);
}

static result measure_async(kotte_runtime *rt, kotte_cred_store *st, int op, char (*ids)[37],
                            int nids) {
  chain c;
  memset(&c, 0, sizeof c);
  c.st = st;
  c.op = op;
  c.n = ops;
  c.ids = ids;
  c.nids = nids;
  c.lat = calloc((size_t)ops, sizeof *c.lat);
  save_seq++;
  bench_post_and_wait(rt, chain_start, &c, &c.w);
  result r = summarize(c.lat, ops, c.wall);
  free(c.lat);
  return r;
}

static double fsync_reference(void) { return bench_fsync_reference(dir, ops); }

/* ---- rewrap -------------------------------------------------------------- */

static double measure_rewrap(kotte_cred_store *st, uint64_t *count) {
  kotte_cred_report *r;
  uint64_t t0 = uv_hrtime();
  int rc = kotte_cred_rewrap_sync(st, &r, 600000);
  uint64_t ns = uv_hrtime() - t0;
  if (rc != 0) die("rewrap", rc);
  *count = kotte_cred_report_rewrapped(r);
  kotte_cred_report_free(r);
  return *count / (ns / 1e9);
}

static kotte_cred_store *open_store(kotte_runtime *rt, int json_file, const char *path,
                                    kotte_keyring *kr) {
  kotte_cred_backend *be;
  kotte_cred_store *st;
  int rc = json_file ? kotte_cred_backend_json_file_new(&be, kotte_runtime_loop(rt), path)
                     : kotte_cred_backend_memory_new(&be);
  if (rc != 0) die("backend", rc);
  if ((rc = kotte_cred_store_open(&st, rt, be, kr, NULL)) != 0) die("store", rc);
  return st;
}

int main(int argc, char **argv) {
  if (argc > 1) dir = argv[1];
  if (argc > 2) ops = atoi(argv[2]);
  kotte_runtime *rt;
  kotte_keyring *ka, *kb;
  if (kotte_runtime_new(&rt, NULL) != 0 || kotte_keyring_new(&ka, KEY_A, NULL) != 0 ||
      kotte_keyring_new(&kb, KEY_B, KEY_A) != 0)
    return 1;
  static const int sizes[] = { 1000, 10000 };
  char (*ids)[37] = calloc(10000, 37);
  result hop1 = measure(rt, NULL, OP_HOP, 1, ids, 1);
  result hop2 = measure(rt, NULL, OP_HOP, 2, ids, 1);
  double fsync_ops = fsync_reference();
  printf("libkotte %s credential benchmark: %d ops per store cell, files in %s\n", kotte_version(),
         ops, dir);
  printf("reference hop (empty kotte_runtime_run): 1 thread %.0f ops/s, 2 threads %.0f ops/s\n",
         hop1.ops_per_s, hop2.ops_per_s);
  printf("reference fsync (write+fdatasync of 200 B): %.0f ops/s\n\n", fsync_ops);

  printf("%-14s %3s %10s %9s %9s\n", "key ring", "thr", "ops/s", "p50 us", "p99 us");
  for (int what = K_SEAL; what <= K_OPEN; what++) {
    for (int threads = 1; threads <= 2; threads++) {
      result r = measure_keyring(ka, what, threads);
      printf("%-14s %3d %10.0f %9.2f %9.2f\n", what == K_SEAL ? "seal 24 B" : "open 24 B",
             threads, r.ops_per_s, r.p50_us, r.p99_us);
    }
  }
  printf("\nthr: 0 = asynchronous API chained on the loop thread; 1, 2 = threads calling the "
         "blocking facade\n");
  printf("%-9s %7s %3s %-6s %10s %9s %9s %s\n", "backend", "stored", "thr", "op", "ops/s",
         "p50 us", "p99 us", "ratio to reference");
  double rewrap_rate[2] = { 0, 0 };
  uint64_t rewrap_count[2] = { 0, 0 };
  for (int b = 0; b < 2; b++) {
    for (int z = 0; z < 2; z++) {
      char path[512];
      snprintf(path, sizeof path, "%s/kotte-bench-cred-%d.journal", dir, getpid());
      unlink(path);
      kotte_cred_store *st = open_store(rt, b, path, ka);
      do_prefill(rt, st, sizes[z], ids);
      for (int threads = 0; threads <= 2; threads++) {
        for (int op = OP_SAVE; op <= OP_LIST; op++) {
          result r = threads == 0 ? measure_async(rt, st, op, ids, sizes[z])
                                  : measure(rt, st, op, threads, ids, sizes[z]);
          char ratio[64] = "";
          if (threads > 0 && (b == 0 || op != OP_SAVE))
            snprintf(ratio, sizeof ratio, "%.2fx hop",
                     r.ops_per_s / (threads == 2 ? hop2 : hop1).ops_per_s);
          else if (b == 1 && op == OP_SAVE)
            snprintf(ratio, sizeof ratio, "%.2fx fsync", r.ops_per_s / fsync_ops);
          printf("%-9s %7d %3d %-6s %10.0f %9.1f %9.1f %s\n", b == 0 ? "memory" : "json_file",
                 sizes[z], threads, op_names[op], r.ops_per_s, r.p50_us, r.p99_us, ratio);
          fflush(stdout);
        }
      }
      kotte_cred_store_free(st);
      if (b == 1) {
        /* a restart with key B current and A previous, then the rewrap of
         * everything stored (the prefill and the saves above) */
        st = open_store(rt, 1, path, kb);
        rewrap_rate[z] = measure_rewrap(st, &rewrap_count[z]);
        kotte_cred_store_free(st);
        char lock[600];
        snprintf(lock, sizeof lock, "%s.lock", path);
        unlink(path);
        unlink(lock);
      }
    }
  }
  printf("\n%-9s %7s %12s\n", "rewrap", "records", "records/s");
  for (int z = 0; z < 2; z++)
    printf("%-9s %7llu %12.0f\n", "json_file", (unsigned long long)rewrap_count[z],
           rewrap_rate[z]);
  free(ids);
  kotte_keyring_free(ka);
  kotte_keyring_free(kb);
  kotte_runtime_free(rt);
  return 0;
}
