/* What the store benchmarks share (bench_sessions.c, bench_credentials.c):
 * latency summaries, the fsync reference, waiting for work posted to the
 * runtime's loop, and running jobs on threads. (Not named bench_*.c: each
 * of those is a program of its own, see CMakeLists.txt.) */
#ifndef KOTTE_BENCH_HARNESS_H
#define KOTTE_BENCH_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include <kotte.h>

typedef struct bench_result {
  double ops_per_s, p50_us, p99_us;
} bench_result;

/* Sorts @p lat (n latencies, ns) and sums up the run of @p wall_ns. */
bench_result bench_summarize(uint64_t *lat, int n, uint64_t wall_ns);

/* write(2) + fdatasync(2) of one 200-byte line to a file in @p dir, the
 * floor for one durable write: ops/s over max(ops / 4, 200) of them. */
double bench_fsync_reference(const char *dir, int ops);

/* Work posted to the loop that signals its end from a callback. */
typedef struct bench_wait {
  uv_mutex_t mu;
  uv_cond_t cv;
  int done;
} bench_wait;

/* Posts fn(arg) to @p rt's loop and returns when bench_signal(@p w). */
void bench_post_and_wait(kotte_runtime *rt, void (*fn)(void *), void *arg, bench_wait *w);
void bench_signal(bench_wait *w);

/* Runs fn(job k) for k < @p threads, each on its own thread, @p jobs an
 * array of @p job_size-byte jobs; returns the wall time in ns. */
uint64_t bench_threads(int threads, void (*fn)(void *), void *jobs, size_t job_size);

#endif
