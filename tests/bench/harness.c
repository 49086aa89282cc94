/* The store benchmarks' shared parts (harness.h). */
#include "harness.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

bench_result bench_summarize(uint64_t *lat, int n, uint64_t wall_ns) {
  qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
  bench_result r = { n / (wall_ns / 1e9), lat[n / 2] / 1e3, lat[(int)(n * 0.99)] / 1e3 };
  return r;
}

double bench_fsync_reference(const char *dir, int ops) {
  char path[512];
  snprintf(path, sizeof path, "%s/kotte-bench-fsync.tmp", dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
  if (fd < 0) return 0;
  char line[200];
  memset(line, 'x', sizeof line);
  line[199] = '\n';
  int n = ops / 4 > 200 ? ops / 4 : 200;
  uint64_t t0 = uv_hrtime();
  for (int i = 0; i < n; i++)
    if (write(fd, line, sizeof line) != (ssize_t)sizeof line || fdatasync(fd) != 0) break;
  double r = n / ((uv_hrtime() - t0) / 1e9);
  close(fd);
  unlink(path);
  return r;
}

void bench_post_and_wait(kotte_runtime *rt, void (*fn)(void *), void *arg, bench_wait *w) {
  w->done = 0;
  uv_mutex_init(&w->mu);
  uv_cond_init(&w->cv);
  if (kotte_runtime_post(rt, fn, arg) != 0) {
    fprintf(stderr, "kotte_runtime_post failed\n");
    exit(1);
  }
  uv_mutex_lock(&w->mu);
  while (!w->done) uv_cond_wait(&w->cv, &w->mu);
  uv_mutex_unlock(&w->mu);
  uv_cond_destroy(&w->cv);
  uv_mutex_destroy(&w->mu);
}

void bench_signal(bench_wait *w) {
  uv_mutex_lock(&w->mu);
  w->done = 1;
  uv_cond_signal(&w->cv);
  uv_mutex_unlock(&w->mu);
}

uint64_t bench_threads(int threads, void (*fn)(void *), void *jobs, size_t job_size) {
  uv_thread_t t[16];
  if (threads > 16) threads = 16;
  uint64_t t0 = uv_hrtime();
  for (int k = 0; k < threads; k++) uv_thread_create(&t[k], fn, (char *)jobs + (size_t)k * job_size);
  for (int k = 0; k < threads; k++) uv_thread_join(&t[k]);
  return uv_hrtime() - t0;
}
