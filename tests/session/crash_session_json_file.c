/* Crash test for the json_file session backend (tests/backend/crash_harness.h
 * runs the rounds).
 *
 *     crash_session_json_file [ROUNDS]     (default 200)
 *
 * The child creates sessions, updates each one and deletes every third,
 * reporting each acknowledged write; after each SIGKILL the store must load
 * and hold every acknowledged write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kotte.h>

#include "crash_harness.h"

static int open_store(kotte_runtime *rt, kotte_session_store **st) {
  kotte_session_backend *be;
  static const unsigned char secret[] = "crash-test-session-secret";
  int rc = kotte_session_backend_json_file_new(&be, kotte_runtime_loop(rt), crash_path, secret,
                                               sizeof secret - 1);
  if (rc != 0) return rc;
  rc = kotte_session_store_open(st, rt, be, NULL);
  if (rc != 0) kotte_session_backend_free(be);
  return rc;
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
    crash_report(fd, 'C', id, seq);
    snprintf(data, sizeof data, "{\"u\":%d}", seq);
    if (kotte_session_update_sync(st, id, data, &s, 10000) != 0) _exit(5);
    kotte_session_free(s);
    crash_report(fd, 'U', id, seq);
    if (seq % 3 == 0) {
      if (kotte_session_delete_sync(st, id, 10000) != 0) _exit(6);
      crash_report(fd, 'D', id, seq);
    }
  }
}

/* Checks records [from, crash_nrecs). Returns the number of violations. */
static int verify(kotte_session_store *st, size_t from) {
  int bad = 0;
  for (size_t i = from; i < crash_nrecs; i++) {
    crash_rec *r = &crash_recs[i];
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

/* Opens the store and checks [from, crash_nrecs); -1 if it does not load. */
static int check(size_t from) {
  kotte_runtime *rt;
  kotte_session_store *st;
  if (kotte_runtime_new(&rt, NULL) != 0) return -1;
  int rc = open_store(rt, &st), bad = -1;
  if (rc != 0) {
    fprintf(stderr, "store does not load: %s %s\n", kotte_err_name(rc), kotte_error_detail());
  } else {
    bad = verify(st, from);
    kotte_session_store_free(st);
  }
  kotte_runtime_free(rt);
  return bad;
}

static int final_check(void) { return check(0) == 0 ? 0 : 1; }

int main(int argc, char **argv) {
  static const crash_test t = { "sessions.journal", 200, 40000, child, check, final_check };
  return crash_main(argc, argv, &t);
}
