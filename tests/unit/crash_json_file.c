/* Crash test for the json_file backend.
 *
 *     crash_json_file [ROUNDS]     (default 200)
 *
 * Each round starts a child (fork + exec of this binary) that opens the store and writes in a loop —
 * create, then update, and every third session a delete — reporting each
 * acknowledged write on a pipe. The parent kills it with SIGKILL at a
 * random moment, then opens the store itself and checks that it loads and
 * holds every acknowledged write. At the end every session of every round
 * is checked again. Prints "N passed, N failed" (one per round). */
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

typedef struct rec {
  char id[44];
  int seq;
  int acked;  /* 'C' created, 'U' updated, 'D' deleted */
} rec;

static rec *recs;
static size_t nrecs, caprecs;
static char path[128];

static int open_store(kotte_runtime *rt, kotte_session_store **st) {
  kotte_session_backend *be;
  static const unsigned char secret[] = "crash-test-session-secret";
  int rc = kotte_session_backend_json_file_new(&be, kotte_runtime_loop(rt), path, secret,
                                               sizeof secret - 1);
  if (rc != 0) return rc;
  rc = kotte_session_store_open(st, rt, be, NULL);
  if (rc != 0) kotte_session_backend_free(be);
  return rc;
}

static void report(int fd, char op, const char *id, int seq) {
  char line[64];
  int n = snprintf(line, sizeof line, "%c %s %d\n", op, id, seq);
  if (write(fd, line, (size_t)n) != n) _exit(9);
}

static void child(int fd, int base) {
  kotte_runtime *rt;
  kotte_session_store *st;
  if (kotte_runtime_new(&rt, NULL) != 0 || open_store(rt, &st) != 0) _exit(3);
  for (int seq = base;; seq++) {
    kotte_session *s;
    char data[64];
    snprintf(data, sizeof data, "{\"seq\":%d}", seq);
    if (kotte_session_create_sync(st, "crash", data, &s, 10000) != 0) _exit(4);
    char id[44];
    memcpy(id, kotte_session_id(s), 44);
    kotte_session_free(s);
    report(fd, 'C', id, seq);
    snprintf(data, sizeof data, "{\"u\":%d}", seq);
    if (kotte_session_update_sync(st, id, data, &s, 10000) != 0) _exit(5);
    kotte_session_free(s);
    report(fd, 'U', id, seq);
    if (seq % 3 == 0) {
      if (kotte_session_delete_sync(st, id, 10000) != 0) _exit(6);
      report(fd, 'D', id, seq);
    }
  }
}

static rec *find(const char *id) {
  for (size_t i = nrecs; i-- > 0;)
    if (strcmp(recs[i].id, id) == 0) return &recs[i];
  return NULL;
}

static void ack(const char *line) {
  char op, id[64];
  int seq;
  if (sscanf(line, "%c %63s %d", &op, id, &seq) != 3) return;
  rec *r = find(id);
  if (r == NULL) {
    if (nrecs == caprecs) {
      caprecs = caprecs ? caprecs * 2 : 1024;
      recs = realloc(recs, caprecs * sizeof *recs);
    }
    r = &recs[nrecs++];
    snprintf(r->id, sizeof r->id, "%.43s", id);
    r->seq = seq;
  }
  r->acked = op;
}

/* Checks records [from, nrecs). Returns the number of violations. */
static int verify(kotte_session_store *st, size_t from) {
  int bad = 0;
  for (size_t i = from; i < nrecs; i++) {
    rec *r = &recs[i];
    kotte_session *s = NULL;
    int rc = kotte_session_get_sync(st, r->id, &s, 10000);
    char created[64], updated[64];
    snprintf(created, sizeof created, "{\"seq\":%d}", r->seq);
    snprintf(updated, sizeof updated, "{\"seq\":%d,\"u\":%d}", r->seq, r->seq);
    int ok;
    switch (r->acked) {
    case 'C': /* the update may or may not have landed */
      ok = rc == 0 && (!strcmp(kotte_session_data(s), created) ||
                       !strcmp(kotte_session_data(s), updated));
      break;
    case 'U': /* the delete, if any, was not acknowledged */
      ok = (rc == 0 && !strcmp(kotte_session_data(s), updated)) ||
           (rc == KOTTE_ENOTFOUND && r->seq % 3 == 0);
      break;
    default: ok = rc == KOTTE_ENOTFOUND; break;
    }
    if (!ok) {
      fprintf(stderr, "LOST: %.8s... acked %c seq %d: get=%s data=%s\n", r->id, r->acked,
              r->seq, kotte_err_name(rc), s ? kotte_session_data(s) : "-");
      bad++;
    }
    kotte_session_free(s);
  }
  return bad;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--child") == 0) {
    snprintf(path, sizeof path, "%s", argv[2]);
    child(STDOUT_FILENO, atoi(argv[3]));
  }
  int rounds = argc > 1 ? atoi(argv[1]) : 200;
  char dir[] = "/tmp/kotte-crash-XXXXXX";
  if (mkdtemp(dir) == NULL) return 2;
  snprintf(path, sizeof path, "%s/sessions.journal", dir);
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  int passed = 0, failed = 0;
  size_t total_acks = 0;
  for (int round = 0; round < rounds; round++) {
    int fds[2];
    if (pipe(fds) != 0) return 2;
    pid_t pid = fork();
    if (pid == 0) {
      /* exec at once: the parent may have thread-pool threads, and only
       * async-signal-safe calls are allowed after fork() then. */
      char base[32];
      snprintf(base, sizeof base, "%d", round * 100000);
      close(fds[0]);
      if (dup2(fds[1], STDOUT_FILENO) < 0) _exit(8);
      execl("/proc/self/exe", argv[0], "--child", path, base, (char *)NULL);
      _exit(7);
    }
    close(fds[1]);
    usleep((useconds_t)(rand() % 40000));
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    if (!WIFSIGNALED(status)) {
      fprintf(stderr, "round %d: child exited with %d before the kill\n", round,
              WEXITSTATUS(status));
      failed++;
      close(fds[0]);
      continue;
    }
    /* Everything the child reported before it died was acknowledged. */
    size_t from = nrecs;
    FILE *in = fdopen(fds[0], "r");
    char line[128];
    while (fgets(line, sizeof line, in)) {
      if (strchr(line, '\n')) {
        ack(line);
        total_acks++;
      }
    }
    fclose(in);
    kotte_runtime *rt;
    kotte_session_store *st;
    if (kotte_runtime_new(&rt, NULL) != 0) return 2;
    int rc = open_store(rt, &st);
    if (rc != 0) {
      fprintf(stderr, "round %d: store does not load: %s %s\n", round, kotte_err_name(rc),
              kotte_error_detail());
      failed++;
    } else {
      int bad = verify(st, from > 0 ? from - 1 : 0); /* the last one may have changed */
      if (bad) failed++;
      else passed++;
      kotte_session_store_free(st);
    }
    kotte_runtime_free(rt);
  }
  /* A final check of every acknowledged write of every round. */
  kotte_runtime *rt;
  kotte_session_store *st;
  int bad = -1;
  if (kotte_runtime_new(&rt, NULL) == 0 && open_store(rt, &st) == 0) {
    bad = verify(st, 0);
    kotte_session_store_free(st);
    kotte_runtime_free(rt);
  }
  printf("crash test: %d kills, %zu acknowledged writes over %zu sessions, final check: %s\n",
         rounds, total_acks, nrecs, bad == 0 ? "all present" : "FAILED");
  if (bad != 0) failed++;
  char cmd[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) return 2;
  free(recs);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
