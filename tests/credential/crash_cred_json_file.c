/* Crash test of the json_file credential backend.
 *
 *     crash_cred_json_file [ROUNDS]     (default 100)
 *
 * Each round starts a child (fork + exec of this binary) that saves
 * connections in a loop, changes each one's password, deletes every third,
 * and every 5 saves rewraps (odd rounds under a second key ring) — reporting each
 * acknowledged write on a pipe. The parent kills it with SIGKILL at a
 * random moment, then opens the store itself (with both keys) and checks
 * that it loads and holds every acknowledged write, and nothing a delete
 * removed. At the end every record of every round is checked again, under
 * the newer key alone after a final rewrap. Prints "N passed, N failed". */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <kotte.h>

#define KEY_A "00112233445566778899aabbccddeeff0123456789abcdef0011223344556677"
#define KEY_B "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="

typedef struct rec {
  char id[37];
  int seq;
  int acked; /* 'S' saved, 'U' password changed, 'D' deleted */
} rec;

static rec *recs;
static size_t nrecs, caprecs;
static char path[128];

static int open_store(kotte_runtime *rt, kotte_keyring *kr, kotte_cred_store **st) {
  kotte_cred_backend *be;
  int rc = kotte_cred_backend_json_file_new(&be, kotte_runtime_loop(rt), path);
  if (rc != 0) return rc;
  rc = kotte_cred_store_open(st, rt, be, kr, NULL);
  if (rc != 0) kotte_cred_backend_free(be);
  return rc;
}

static void report(int fd, char op, const char *id, int seq) {
  char line[80];
  int n = snprintf(line, sizeof line, "%c %s %d\n", op, id, seq);
  if (write(fd, line, (size_t)n) != n) _exit(9);
}

static void child(int fd, int base) {
  kotte_runtime *rt;
  kotte_keyring *a, *ba;
  kotte_cred_store *st;
  /* odd rounds write with key B current (a rotated replica), even with A */
  if (kotte_runtime_new(&rt, NULL) != 0 || kotte_keyring_new(&a, KEY_A, NULL) != 0 ||
      kotte_keyring_new(&ba, KEY_B, KEY_A) != 0 ||
      open_store(rt, (base / 100000) % 2 ? ba : a, &st) != 0)
    _exit(3);
  for (int seq = base;; seq++) {
    char name[32], pass[32];
    snprintf(name, sizeof name, "c%d", seq);
    snprintf(pass, sizeof pass, "pw-%d", seq);
    kotte_cred_input in = KOTTE_CRED_INPUT_INIT;
    in.name = name;
    in.host = "h";
    in.port = 5432;
    in.database = "d";
    in.username = "u";
    in.password = pass;
    kotte_cred *c;
    if (kotte_cred_save_sync(st, "crash", &in, &c, 10000) != 0) _exit(4);
    char id[37];
    memcpy(id, kotte_cred_id(c), 37);
    kotte_cred_free(c);
    report(fd, 'S', id, seq);
    snprintf(pass, sizeof pass, "pw-%d-2", seq);
    kotte_cred_input up = KOTTE_CRED_INPUT_INIT;
    up.fields = KOTTE_CRED_PASSWORD;
    up.password = pass;
    if (kotte_cred_update_sync(st, "crash", id, &up, NULL, 10000) != 0) _exit(5);
    report(fd, 'U', id, seq);
    if (seq % 3 == 0) {
      if (kotte_cred_delete_sync(st, "crash", id, 10000) != 0) _exit(6);
      report(fd, 'D', id, seq);
    }
    if (seq % 5 == 4) {
      kotte_cred_report *r;
      if (kotte_cred_rewrap_sync(st, &r, 10000) != 0) _exit(7);
      kotte_cred_report_free(r);
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
    snprintf(r->id, sizeof r->id, "%.36s", id);
    r->seq = seq;
  }
  r->acked = op;
}

/* Checks records [from, nrecs). Returns the number of violations. */
static int verify(kotte_cred_store *st, size_t from) {
  int bad = 0;
  for (size_t i = from; i < nrecs; i++) {
    rec *r = &recs[i];
    kotte_cred *c = NULL;
    int rc = kotte_cred_get_sync(st, "crash", r->id, &c, 10000);
    char saved[32], changed[32];
    snprintf(saved, sizeof saved, "pw-%d", r->seq);
    snprintf(changed, sizeof changed, "pw-%d-2", r->seq);
    const char *pw = rc == 0 ? kotte_cred_password(c) : NULL;
    int ok;
    switch (r->acked) {
    case 'S': /* the change may or may not have landed */
      ok = rc == 0 && (!strcmp(pw, saved) || !strcmp(pw, changed));
      break;
    case 'U': /* a delete, if any, was not acknowledged */
      ok = (rc == 0 && !strcmp(pw, changed)) || (rc == KOTTE_ENOTFOUND && r->seq % 3 == 0);
      break;
    default: ok = rc == KOTTE_ENOTFOUND; break;
    }
    if (!ok) {
      fprintf(stderr, "LOST: %s acked %c seq %d: get=%s\n", r->id, r->acked, r->seq,
              kotte_err_name(rc));
      bad++;
    }
    kotte_cred_free(c);
  }
  return bad;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--child") == 0) {
    snprintf(path, sizeof path, "%s", argv[2]);
    child(STDOUT_FILENO, atoi(argv[3]));
  }
  int rounds = argc > 1 ? atoi(argv[1]) : 100;
  char dir[] = "/tmp/kotte-ccrash-XXXXXX";
  if (mkdtemp(dir) == NULL) return 2;
  snprintf(path, sizeof path, "%s/credentials.journal", dir);
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  kotte_keyring *ba, *b;
  if (kotte_keyring_new(&ba, KEY_B, KEY_A) != 0 || kotte_keyring_new(&b, KEY_B, NULL) != 0)
    return 2;
  int passed = 0, failed = 0;
  size_t total_acks = 0;
  for (int round = 0; round < rounds; round++) {
    int fds[2];
    if (pipe(fds) != 0) return 2;
    pid_t pid = fork();
    if (pid == 0) {
      /* exec at once: only async-signal-safe calls are allowed after fork()
       * in a process with threads. */
      char base[32];
      snprintf(base, sizeof base, "%d", round * 100000);
      close(fds[0]);
      if (dup2(fds[1], STDOUT_FILENO) < 0) _exit(8);
      execl("/proc/self/exe", argv[0], "--child", path, base, (char *)NULL);
      _exit(7);
    }
    close(fds[1]);
    usleep((useconds_t)(rand() % 80000));
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
    kotte_cred_store *st;
    if (kotte_runtime_new(&rt, NULL) != 0) return 2;
    int rc = open_store(rt, ba, &st);
    if (rc != 0) {
      fprintf(stderr, "round %d: store does not load: %s %s\n", round, kotte_err_name(rc),
              kotte_error_detail());
      failed++;
    } else {
      if (verify(st, from > 0 ? from - 1 : 0)) failed++;
      else passed++;
      kotte_cred_store_free(st);
    }
    kotte_runtime_free(rt);
  }
  /* Finally: everything of every round, then rewrapped and under key B alone. */
  kotte_runtime *rt;
  kotte_cred_store *st;
  int bad = -1;
  if (kotte_runtime_new(&rt, NULL) == 0 && open_store(rt, ba, &st) == 0) {
    bad = verify(st, 0);
    kotte_cred_report *r;
    if (kotte_cred_rewrap_sync(st, &r, 60000) != 0 || kotte_cred_report_stale(r) != 0) bad++;
    kotte_cred_report_free(r);
    kotte_cred_store_free(st);
    if (open_store(rt, b, &st) == 0) {
      bad += verify(st, 0);
      kotte_cred_store_free(st);
    } else {
      bad++;
    }
    kotte_runtime_free(rt);
  }
  printf("%zu acknowledged writes over %d rounds; final check: %d lost\n", total_acks, rounds, bad);
  if (bad != 0) failed++;
  else passed++;
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  kotte_keyring_free(ba);
  kotte_keyring_free(b);
  free(recs);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
