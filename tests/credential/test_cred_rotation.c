/* Key rotation online: a rewrap of 10,000 records while reader threads read
 * through the blocking facade (zero failed or wrong reads), while a writer
 * changes passwords (no update is lost), and two rewraps at once (the work
 * is shared, nothing is done twice). Over both built-in backends. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kotte.h>

#include "credential/credential_internal.h"

#define KEY_A "00112233445566778899aabbccddeeff0123456789abcdef0011223344556677"
#define KEY_B "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="

typedef struct env {
  kotte_runtime *rt;
  kotte_cred_store *st;
  int json_file;
  char dir[64];
  char path[128];
  int n;
  char (*ids)[37];
  int *version; /* the latest password version of each record */
} env;

static void owner(int i, char *out, size_t cap) { snprintf(out, cap, "user-%d", i % 50); }
static void password(int i, int v, char *out, size_t cap) {
  snprintf(out, cap, "pw-%d-v%d-secret", i, v);
}

static kotte_keyring *ring(const char *current, const char *previous) {
  kotte_keyring *kr;
  assert_int_equal(kotte_keyring_new(&kr, current, previous), 0);
  return kr;
}

static void open_store(env *e, kotte_keyring *kr) {
  kotte_cred_backend *be;
  if (e->json_file)
    assert_int_equal(kotte_cred_backend_json_file_new(&be, kotte_runtime_loop(e->rt), e->path), 0);
  else
    assert_int_equal(kotte_cred_backend_memory_new(&be), 0);
  assert_int_equal(kotte_cred_store_open(&e->st, e->rt, be, kr, NULL), 0);
}

static int setup(void **state, int json_file) {
  env *e = calloc(1, sizeof *e);
  e->json_file = json_file;
  assert_int_equal(kotte_runtime_new(&e->rt, NULL), 0);
  strcpy(e->dir, "/tmp/kotte-crot-XXXXXX");
  assert_non_null(mkdtemp(e->dir));
  snprintf(e->path, sizeof e->path, "%s/credentials.journal", e->dir);
  kotte_keyring *a = ring(KEY_A, NULL);
  open_store(e, a);
  kotte_keyring_free(a); /* the store keeps its own reference */
  *state = e;
  return 0;
}
static int setup_memory(void **state) { return setup(state, 0); }
static int setup_json_file(void **state) { return setup(state, 1); }

static int teardown(void **state) {
  env *e = *state;
  kotte_cred_store_free(e->st);
  kotte_runtime_free(e->rt);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
  assert_int_equal(system(cmd), 0);
  free(e->ids);
  free(e->version);
  free(e);
  return 0;
}

/* ---- filling the store fast: every save in flight at once --------------- */

typedef struct fill {
  env *e;
  int remaining, failures;
  uv_mutex_t mu;
  uv_cond_t cv;
} fill;

typedef struct fill_one {
  fill *f;
  int i;
} fill_one;

static void on_filled(int status, kotte_cred *c, void *ud) {
  fill_one *one = ud;
  fill *f = one->f;
  if (status == 0) memcpy(f->e->ids[one->i], kotte_cred_id(c), 37);
  kotte_cred_free(c);
  free(one);
  uv_mutex_lock(&f->mu);
  if (status != 0) f->failures++;
  if (--f->remaining == 0) uv_cond_signal(&f->cv);
  uv_mutex_unlock(&f->mu);
}

static int start_fill(void *arg) {
  fill *f = arg;
  for (int i = 0; i < f->e->n; i++) {
    char user[16], name[32], pass[64], uname[32];
    owner(i, user, sizeof user);
    snprintf(name, sizeof name, "conn-%05d", i);
    snprintf(uname, sizeof uname, "reader-%d", i);
    password(i, 0, pass, sizeof pass);
    kotte_cred_input in = KOTTE_CRED_INPUT_INIT;
    in.name = name;
    in.host = "db.internal";
    in.port = 5432;
    in.database = "graphs";
    in.username = uname;
    in.password = pass;
    fill_one *one = malloc(sizeof *one);
    *one = (fill_one){ f, i };
    if (kotte_cred_save(f->e->st, user, &in, on_filled, one) != 0) return -1;
  }
  return 0;
}

static void fill_store(env *e, int n) {
  e->n = n;
  e->ids = calloc((size_t)n, sizeof *e->ids);
  e->version = calloc((size_t)n, sizeof *e->version);
  fill f;
  memset(&f, 0, sizeof f);
  f.e = e;
  f.remaining = n;
  uv_mutex_init(&f.mu);
  uv_cond_init(&f.cv);
  assert_int_equal(kotte_runtime_run(e->rt, start_fill, &f), 0);
  uv_mutex_lock(&f.mu);
  while (f.remaining > 0) uv_cond_wait(&f.cv, &f.mu);
  uv_mutex_unlock(&f.mu);
  uv_cond_destroy(&f.cv);
  uv_mutex_destroy(&f.mu);
  assert_int_equal(f.failures, 0);
}

typedef struct swap_call {
  env *e;
  kotte_keyring *kr;
} swap_call;

static int swap_on_loop(void *arg) {
  swap_call *s = arg;
  kotte__cred_store_set_keyring(s->e->st, s->kr);
  return 0;
}

/* Rotates the running store to a new ring (as a restart with new
 * configuration would; here without losing the memory backend). */
static void use_ring(env *e, kotte_keyring *kr) {
  swap_call s = { e, kr };
  assert_int_equal(kotte_runtime_run(e->rt, swap_on_loop, &s), 0);
  kotte_keyring_free(kr);
}

/* ---- readers and writers ------------------------------------------------ */

typedef struct load {
  env *e;
  atomic_int stop;
  atomic_int rewrapping;
  atomic_ullong reads, reads_during, failed, wrong, writes;
  atomic_int first_error;
  unsigned seed;
} load;

static int next_rand(unsigned *seed) {
  *seed = *seed * 1103515245u + 12345u;
  return (int)((*seed >> 8) & 0x7fffff);
}

static void reader(void *arg) {
  load *l = arg;
  env *e = l->e;
  unsigned seed = (unsigned)atomic_fetch_add(&l->reads, 0) + (unsigned)(uintptr_t)&seed;
  while (!atomic_load(&l->stop)) {
    int i = next_rand(&seed) % e->n;
    char user[16], pass[64], uname[32];
    owner(i, user, sizeof user);
    snprintf(uname, sizeof uname, "reader-%d", i);
    int during = atomic_load(&l->rewrapping);
    kotte_cred *c;
    int rc = kotte_cred_get_sync(e->st, user, e->ids[i], &c, 30000);
    atomic_fetch_add(&l->reads, 1);
    if (during) atomic_fetch_add(&l->reads_during, 1);
    if (rc != 0) {
      atomic_fetch_add(&l->failed, 1);
      int zero = 0;
      atomic_compare_exchange_strong(&l->first_error, &zero, rc);
      continue;
    }
    /* the readers run without a writer: version 0 */
    password(i, 0, pass, sizeof pass);
    if (strcmp(kotte_cred_password(c), pass) != 0 || strcmp(kotte_cred_username(c), uname) != 0 ||
        strcmp(kotte_cred_id(c), e->ids[i]) != 0)
      atomic_fetch_add(&l->wrong, 1);
    kotte_cred_free(c);
  }
}

/* Changes passwords of the first `limit` records (a different subset from
 * what the readers check). The only writer: e->version is its own. */
static void writer(void *arg) {
  load *l = arg;
  env *e = l->e;
  unsigned seed = 12345;
  while (!atomic_load(&l->stop)) {
    int i = next_rand(&seed) % e->n;
    char user[16], pass[64];
    owner(i, user, sizeof user);
    password(i, e->version[i] + 1, pass, sizeof pass);
    kotte_cred_input in = KOTTE_CRED_INPUT_INIT;
    in.fields = KOTTE_CRED_PASSWORD;
    in.password = pass;
    int rc = kotte_cred_update_sync(e->st, user, e->ids[i], &in, NULL, 30000);
    if (rc != 0) {
      atomic_fetch_add(&l->failed, 1);
      int zero = 0;
      atomic_compare_exchange_strong(&l->first_error, &zero, rc);
      continue;
    }
    e->version[i]++;
    atomic_fetch_add(&l->writes, 1);
  }
}

static void check_all(env *e, const char *key_id) {
  for (int i = 0; i < e->n; i++) {
    char user[16], pass[64];
    owner(i, user, sizeof user);
    password(i, e->version[i], pass, sizeof pass);
    kotte_cred *c;
    assert_int_equal(kotte_cred_get_sync(e->st, user, e->ids[i], &c, -1), 0);
    assert_string_equal(kotte_cred_password(c), pass);
    assert_string_equal(kotte_cred_key_id(c), key_id);
    kotte_cred_free(c);
  }
}

static void expect_only_key(env *e, const kotte_cred_report *r, const char *key_id) {
  assert_int_equal(kotte_cred_report_stale(r), 0);
  assert_int_equal(kotte_cred_report_key_count(r), 1);
  assert_string_equal(kotte_cred_report_key_id(r, 0), key_id);
  assert_int_equal(kotte_cred_report_key_records(r, 0), (uint64_t)e->n);
}

static void rewrap_of_10000_records_under_concurrent_readers(void **state) {
  env *e = *state;
  enum { N = 10000, READERS = 2 };
  fill_store(e, N);
  kotte_keyring *ba = ring(KEY_B, KEY_A);
  char key_b[17];
  snprintf(key_b, sizeof key_b, "%s", kotte_keyring_current_id(ba));
  use_ring(e, ba);

  load l;
  memset(&l, 0, sizeof l);
  l.e = e;
  uv_thread_t t[READERS];
  for (int i = 0; i < READERS; i++) assert_int_equal(uv_thread_create(&t[i], reader, &l), 0);
  while (atomic_load(&l.reads) < 50) usleep(1000); /* readers are going */
  atomic_store(&l.rewrapping, 1);
  kotte_cred_report *r;
  int rc = kotte_cred_rewrap_sync(e->st, &r, 600000);
  atomic_store(&l.rewrapping, 0);
  unsigned long long after = atomic_load(&l.reads);
  while (atomic_load(&l.reads) < after + 50) usleep(1000); /* and after it */
  atomic_store(&l.stop, 1);
  for (int i = 0; i < READERS; i++) uv_thread_join(&t[i]);

  assert_int_equal(rc, 0);
  assert_int_equal(kotte_cred_report_rewrapped(r), N);
  assert_int_equal(kotte_cred_report_failed(r), 0);
  expect_only_key(e, r, key_b);
  kotte_cred_report_free(r);
  print_message("      %llu reads, %llu of them during the rewrap; %llu failed, %llu wrong\n",
                (unsigned long long)atomic_load(&l.reads),
                (unsigned long long)atomic_load(&l.reads_during),
                (unsigned long long)atomic_load(&l.failed),
                (unsigned long long)atomic_load(&l.wrong));
  assert_int_equal(atomic_load(&l.first_error), 0);
  assert_int_equal(atomic_load(&l.failed), 0);
  assert_int_equal(atomic_load(&l.wrong), 0);
  assert_true(atomic_load(&l.reads_during) > 0);
  use_ring(e, ring(KEY_B, NULL)); /* key A retired: everything still opens */
  check_all(e, key_b);
}

static void updates_during_a_rewrap_are_never_lost(void **state) {
  env *e = *state;
  enum { N = 2000 };
  fill_store(e, N);
  kotte_keyring *ba = ring(KEY_B, KEY_A);
  char key_b[17];
  snprintf(key_b, sizeof key_b, "%s", kotte_keyring_current_id(ba));
  use_ring(e, ba);
  load l;
  memset(&l, 0, sizeof l);
  l.e = e;
  uv_thread_t t;
  assert_int_equal(uv_thread_create(&t, writer, &l), 0);
  while (atomic_load(&l.writes) < 20) usleep(1000);
  kotte_cred_report *r;
  assert_int_equal(kotte_cred_rewrap_sync(e->st, &r, 600000), 0);
  unsigned long long after = atomic_load(&l.writes);
  while (atomic_load(&l.writes) < after + 20) usleep(1000);
  atomic_store(&l.stop, 1);
  uv_thread_join(&t);
  assert_int_equal(atomic_load(&l.failed), 0);
  assert_int_equal(kotte_cred_report_failed(r), 0);
  kotte_cred_report_free(r);
  print_message("      %llu password updates raced the rewrap\n",
                (unsigned long long)atomic_load(&l.writes));
  /* A record a writer re-sealed first was not counted by the rewrap, but
   * nothing stays behind. */
  assert_int_equal(kotte_cred_key_usage_sync(e->st, &r, -1), 0);
  expect_only_key(e, r, key_b);
  kotte_cred_report_free(r);
  use_ring(e, ring(KEY_B, NULL));
  check_all(e, key_b); /* every record has its writer's latest password */
}

typedef struct rewrap_thread {
  env *e;
  int rc;
  uint64_t rewrapped;
} rewrap_thread;

static void run_rewrap(void *arg) {
  rewrap_thread *t = arg;
  kotte_cred_report *r = NULL;
  t->rc = kotte_cred_rewrap_sync(t->e->st, &r, 600000);
  t->rewrapped = kotte_cred_report_rewrapped(r);
  kotte_cred_report_free(r);
}

static void two_rewraps_at_once_share_the_work(void **state) {
  env *e = *state;
  enum { N = 2000 };
  fill_store(e, N);
  kotte_keyring *ba = ring(KEY_B, KEY_A);
  char key_b[17];
  snprintf(key_b, sizeof key_b, "%s", kotte_keyring_current_id(ba));
  use_ring(e, ba);
  rewrap_thread a = { e, -1, 0 }, b = { e, -1, 0 };
  uv_thread_t ta, tb;
  assert_int_equal(uv_thread_create(&ta, run_rewrap, &a), 0);
  assert_int_equal(uv_thread_create(&tb, run_rewrap, &b), 0);
  uv_thread_join(&ta);
  uv_thread_join(&tb);
  assert_int_equal(a.rc, 0);
  assert_int_equal(b.rc, 0);
  assert_int_equal(a.rewrapped + b.rewrapped, N); /* each record re-sealed exactly once */
  kotte_cred_report *r;
  assert_int_equal(kotte_cred_key_usage_sync(e->st, &r, -1), 0);
  expect_only_key(e, r, key_b);
  kotte_cred_report_free(r);
  use_ring(e, ring(KEY_B, NULL));
  check_all(e, key_b);
}

#define T(name, setup) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
  const struct CMUnitTest memory[] = {
    T(rewrap_of_10000_records_under_concurrent_readers, setup_memory),
    T(updates_during_a_rewrap_are_never_lost, setup_memory),
    T(two_rewraps_at_once_share_the_work, setup_memory),
  };
  const struct CMUnitTest json_file[] = {
    T(rewrap_of_10000_records_under_concurrent_readers, setup_json_file),
    T(updates_during_a_rewrap_are_never_lost, setup_json_file),
    T(two_rewraps_at_once_share_the_work, setup_json_file),
  };
  int failed = 0;
  failed += cmocka_run_group_tests_name("credential rotation: memory", memory, NULL, NULL);
  failed += cmocka_run_group_tests_name("credential rotation: json_file", json_file, NULL, NULL);
  return failed ? 1 : 0;
}
