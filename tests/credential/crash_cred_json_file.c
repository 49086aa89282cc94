/* Crash test of the json_file credential backend (tests/backend/
 * crash_harness.h runs the rounds).
 *
 *     crash_cred_json_file [ROUNDS]     (default 100)
 *
 * The child saves connections, changes each one's password, deletes every
 * third, and every 5 saves rewraps (odd rounds under a second key ring),
 * reporting each acknowledged write. After each SIGKILL the store (opened
 * with both keys) must load and hold every acknowledged write, and nothing
 * a delete removed. At the end every record of every round is checked
 * again, under the newer key alone after a final rewrap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kotte.h>

#include "crash_harness.h"

#define KEY_A "00112233445566778899aabbccddeeff0123456789abcdef0011223344556677"
#define KEY_B "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="

static int open_store(kotte_runtime *rt, kotte_keyring *kr, kotte_cred_store **st) {
  kotte_cred_backend *be;
  int rc = kotte_cred_backend_json_file_new(&be, kotte_runtime_loop(rt), crash_path);
  if (rc != 0) return rc;
  rc = kotte_cred_store_open(st, rt, be, kr, NULL);
  if (rc != 0) kotte_cred_backend_free(be);
  return rc;
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
    crash_report(fd, 'S', id, seq);
    snprintf(pass, sizeof pass, "pw-%d-2", seq);
    kotte_cred_input up = KOTTE_CRED_INPUT_INIT;
    up.fields = KOTTE_CRED_PASSWORD;
    up.password = pass;
    if (kotte_cred_update_sync(st, "crash", id, &up, NULL, 10000) != 0) _exit(5);
    crash_report(fd, 'U', id, seq);
    if (seq % 3 == 0) {
      if (kotte_cred_delete_sync(st, "crash", id, 10000) != 0) _exit(6);
      crash_report(fd, 'D', id, seq);
    }
    if (seq % 5 == 4) {
      kotte_cred_report *r;
      if (kotte_cred_rewrap_sync(st, &r, 10000) != 0) _exit(7);
      kotte_cred_report_free(r);
    }
  }
}

/* Checks records [from, crash_nrecs). Returns the number of violations. */
static int verify(kotte_cred_store *st, size_t from) {
  int bad = 0;
  for (size_t i = from; i < crash_nrecs; i++) {
    crash_rec *r = &crash_recs[i];
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

/* Opens the store with key ring @p kr and checks [from, crash_nrecs); -1
 * if it does not load. With @p rewrap, then rewraps everything and checks
 * that nothing is left under an old key. */
static int check_with(kotte_keyring *kr, size_t from, int rewrap) {
  kotte_runtime *rt;
  kotte_cred_store *st;
  if (kotte_runtime_new(&rt, NULL) != 0) return -1;
  int rc = open_store(rt, kr, &st), bad = -1;
  if (rc != 0) {
    fprintf(stderr, "store does not load: %s %s\n", kotte_err_name(rc), kotte_error_detail());
  } else {
    bad = verify(st, from);
    if (rewrap) {
      kotte_cred_report *r = NULL;
      if (kotte_cred_rewrap_sync(st, &r, 60000) != 0 || kotte_cred_report_stale(r) != 0) bad++;
      kotte_cred_report_free(r);
    }
    kotte_cred_store_free(st);
  }
  kotte_runtime_free(rt);
  return bad;
}

static kotte_keyring *ring_ba, *ring_b; /* B current with A, B alone */

static int check(size_t from) { return check_with(ring_ba, from, 0); }

/* Everything of every round, then rewrapped and under key B alone. */
static int final_check(void) {
  int bad = check_with(ring_ba, 0, 1);
  if (bad == 0) bad = check_with(ring_b, 0, 0);
  return bad == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  static const crash_test t = { "credentials.journal", 100, 80000, child, check, final_check };
  if (kotte_keyring_new(&ring_ba, KEY_B, KEY_A) != 0 || kotte_keyring_new(&ring_b, KEY_B, NULL) != 0)
    return 2;
  int rc = crash_main(argc, argv, &t);
  kotte_keyring_free(ring_ba);
  kotte_keyring_free(ring_b);
  return rc;
}
