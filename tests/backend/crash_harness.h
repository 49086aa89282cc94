/* The SIGKILL crash test of a store, the part that does not depend on the
 * store (tests/session/crash_session_json_file.c and
 * tests/credential/crash_cred_json_file.c are its two users).
 *
 * Each round starts a child (fork + exec of the test's own binary with
 * --child PATH BASE) that writes to the store in a loop and reports each
 * acknowledged write on a pipe (crash_report()). The parent kills it with
 * SIGKILL at a random moment, records what was acknowledged, and lets the
 * test open the store and check it. After the last round the test checks
 * everything once more. Prints "N passed, N failed" (one per round, one for
 * the final check) and returns the process's exit status. */
#ifndef KOTTE_TEST_CRASH_HARNESS_H
#define KOTTE_TEST_CRASH_HARNESS_H

#include <stddef.h>

/* One record the child wrote, with the last operation it acknowledged. */
typedef struct crash_rec {
  char id[48];
  int seq;   /* the child's sequence number when it created the record */
  int acked; /* the letter the child reported last for it */
} crash_rec;

typedef struct crash_test {
  const char *file;          /* the store's file in the temporary folder */
  int default_rounds;
  unsigned int max_delay_us; /* the kill comes after 0 .. this many µs */
  /* The child: opens the store at crash_path and writes from sequence
   * number @p base on, reporting each acknowledged write. Never returns. */
  void (*child)(int fd, int base);
  /* Opens the store and checks records [from, crash_nrecs): the number of
   * violations (each printed), or -1 if the store does not load. */
  int (*check)(size_t from);
  /* After the last round: the number of violations. */
  int (*final_check)(void);
} crash_test;

extern char crash_path[128];
extern crash_rec *crash_recs;
extern size_t crash_nrecs;

/* From the child: reports that operation @p op on record @p id (created at
 * @p seq) was acknowledged. */
void crash_report(int fd, char op, const char *id, int seq);

/* The test's main(). */
int crash_main(int argc, char **argv, const crash_test *t);

#endif
