/* The store-independent part of the SIGKILL crash tests (crash_harness.h). */
#include "crash_harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char crash_path[128];
crash_rec *crash_recs;
size_t crash_nrecs;
static size_t cap;

void crash_report(int fd, char op, const char *id, int seq) {
  char line[96];
  int n = snprintf(line, sizeof line, "%c %s %d\n", op, id, seq);
  if (write(fd, line, (size_t)n) != n) _exit(9);
}

static crash_rec *find(const char *id) {
  for (size_t i = crash_nrecs; i-- > 0;)
    if (strcmp(crash_recs[i].id, id) == 0) return &crash_recs[i];
  return NULL;
}

static void ack(const char *line) {
  char op, id[64];
  int seq;
  if (sscanf(line, "%c %63s %d", &op, id, &seq) != 3) return;
  crash_rec *r = find(id);
  if (r == NULL) {
    if (crash_nrecs == cap) {
      cap = cap ? cap * 2 : 1024;
      crash_recs = realloc(crash_recs, cap * sizeof *crash_recs);
      if (crash_recs == NULL) abort();
    }
    r = &crash_recs[crash_nrecs++];
    snprintf(r->id, sizeof r->id, "%.47s", id);
    r->seq = seq;
  }
  r->acked = op;
}

/* One round: the child runs until killed. 0 and the acknowledged writes
 * recorded (*acks more of them), or -1 if the child ended by itself. */
static int round_run(char *argv0, int round, unsigned int max_delay_us, size_t *acks) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    /* exec at once: the parent may have thread-pool threads, and only
     * async-signal-safe calls are allowed after fork() then. */
    char base[32];
    snprintf(base, sizeof base, "%d", round * 100000);
    close(fds[0]);
    if (dup2(fds[1], STDOUT_FILENO) < 0) _exit(8);
    execl("/proc/self/exe", argv0, "--child", crash_path, base, (char *)NULL);
    _exit(7);
  }
  close(fds[1]);
  usleep((useconds_t)(rand() % (int)max_delay_us));
  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
  if (!WIFSIGNALED(status)) {
    fprintf(stderr, "round %d: child exited with %d before the kill\n", round,
            WEXITSTATUS(status));
    close(fds[0]);
    return -1;
  }
  /* Everything the child reported before it died was acknowledged. */
  FILE *in = fdopen(fds[0], "r");
  char line[128];
  while (fgets(line, sizeof line, in)) {
    if (strchr(line, '\n')) {
      ack(line);
      (*acks)++;
    }
  }
  fclose(in);
  return 0;
}

int crash_main(int argc, char **argv, const crash_test *t) {
  if (argc == 4 && strcmp(argv[1], "--child") == 0) {
    snprintf(crash_path, sizeof crash_path, "%s", argv[2]);
    t->child(STDOUT_FILENO, atoi(argv[3]));
    return 3; /* not reached */
  }
  int rounds = argc > 1 ? atoi(argv[1]) : t->default_rounds;
  char dir[] = "/tmp/kotte-crash-XXXXXX";
  if (mkdtemp(dir) == NULL) return 2;
  snprintf(crash_path, sizeof crash_path, "%s/%s", dir, t->file);
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  int passed = 0, failed = 0;
  size_t acks = 0;
  for (int round = 0; round < rounds; round++) {
    size_t from = crash_nrecs;
    if (round_run(argv[0], round, t->max_delay_us, &acks) != 0) {
      failed++;
      continue;
    }
    /* the record last reported before this round's may have changed too */
    int bad = t->check(from > 0 ? from - 1 : 0);
    if (bad < 0) fprintf(stderr, "round %d: the store does not load\n", round);
    if (bad != 0) failed++;
    else passed++;
  }
  int bad = t->final_check();
  printf("crash test: %d kills, %zu acknowledged writes over %zu records, final check: %s\n",
         rounds, acks, crash_nrecs, bad == 0 ? "all present" : "FAILED");
  if (bad != 0) failed++;
  else passed++;
  char cmd[64];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  free(crash_recs);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
