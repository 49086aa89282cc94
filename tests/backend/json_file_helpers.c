/* The json_file suites' shared environment (json_file_helpers.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json_file_helpers.h"
#include "test_files.h"
#include "test_log.h"

jf_env *jf_env_new(const char *file, void (*st_free)(void *st)) {
  jf_env *e = calloc(1, sizeof *e);
  assert_non_null(e);
  assert_int_equal(kotte_runtime_new(&e->rt, NULL), 0);
  e->st_free = st_free;
  strcpy(e->dir, "/tmp/kotte-jf-XXXXXX");
  assert_non_null(mkdtemp(e->dir));
  snprintf(e->path, sizeof e->path, "%s/%s", e->dir, file);
  return e;
}

int jf_teardown(void **state) {
  jf_env *e = *state;
  set_immutable(e->path, 0); /* a failed test may leave it so */
  test_log_stop();
  if (e->st) e->st_free(e->st);
  kotte_runtime_free(e->rt);
  kotte_keyring_free(e->kr);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
  assert_int_equal(system(cmd), 0);
  free(e);
  return 0;
}

FILE *jf_child_start(const char *path) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "/proc/%d/exe --child '%s'", (int)getpid(), path);
  FILE *child = popen(cmd, "r");
  assert_non_null(child);
  return child;
}

void jf_child_ids(FILE *child, char *ids, size_t stride, size_t len, int n) {
  for (int i = 0; i < n; i++) {
    char *id = ids + (size_t)i * stride;
    assert_int_equal(fread(id, 1, len, child), len);
    id[len] = '\0';
  }
  assert_int_equal(pclose(child), 0);
}

/* ---- behaviour both stores' journals must show -------------------------- */

static void expect_number(const jf_ops *ops, void *st, const char *owner, const char *id, int v) {
  int got = -1;
  assert_int_equal(ops->value(st, owner, id, &got), 0);
  assert_int_equal(got, v);
}

static void expect_gone(const jf_ops *ops, void *st, const char *owner, const char *id) {
  int got;
  assert_int_equal(ops->value(st, owner, id, &got), KOTTE_ENOTFOUND);
}

static void *reopen(jf_env *e, const jf_ops *ops) {
  if (e->st) ops->close(e->st);
  e->st = NULL;
  void *st;
  assert_int_equal(ops->open(e, &st), 0);
  e->st = st;
  return st;
}

static void done(jf_env *e, const jf_ops *ops) {
  ops->close(e->st);
  e->st = NULL;
}

static off_t size_of(const char *path) {
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  return sb.st_size;
}

void jf_test_damage_while_open(jf_env *e, const jf_ops *ops, int how) {
  char a[48], b[48], c[48], d[48];
  test_log_start();
  void *st = reopen(e, ops);
  assert_int_equal(ops->put(st, "alice", 1, a), 0);
  assert_int_equal(ops->put(st, "alice", 2, b), 0);
  assert_int_equal(ops->put(st, "bob", 3, c), 0);
  assert_int_equal(ops->change(st, "alice", a, 11), 0);
  assert_int_equal(ops->remove(st, "alice", b), 0);
  long long before = damage_file(e->path, how);

  /* every operation goes on as if nothing happened */
  expect_number(ops, st, "alice", a, 11);
  expect_number(ops, st, "bob", c, 3);
  expect_gone(ops, st, "alice", b);
  assert_int_equal(ops->put(st, "carol", 4, d), 0);
  if (ops->still_indexed) ops->still_indexed(st);

  /* an ERROR that says what happened, and no talk of unacknowledged writes */
  test_log_expect_damage(e->path, before, how == DAMAGE_REMOVE);
  done(e, ops);
  test_log_stop();

  /* and it is all on disk */
  st = reopen(e, ops);
  expect_number(ops, st, "alice", a, 11);
  expect_number(ops, st, "bob", c, 3);
  expect_number(ops, st, "carol", d, 4);
  expect_gone(ops, st, "alice", b);
  done(e, ops);
  struct stat sb;
  assert_int_equal(stat(e->path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
}

void jf_test_unwritable_journal(jf_env *e, const jf_ops *ops) {
  void *st = reopen(e, ops);
  char a[48], b[48], x[48];
  assert_int_equal(ops->put(st, "alice", 1, a), 0);
  assert_int_equal(ops->check(st), 0);
  off_t healthy = size_of(e->path);
  for (int i = 0; i < 5; i++) assert_int_equal(ops->check(st), 0);
  assert_int_equal(size_of(e->path), healthy); /* probes do not grow the journal */

  if (set_immutable(e->path, 1) != 0) skip(); /* no chattr +i here: nothing to test */
  int rc = ops->put(st, "bob", 2, x);
  set_immutable(e->path, rc == 0 ? 0 : 1); /* (undone at once if writes still work) */
  assert_int_equal(rc, KOTTE_EIO);
  assert_int_equal(ops->check(st), KOTTE_EIO);
  assert_int_equal(ops->check(st), KOTTE_EIO); /* until it can write */
  assert_int_equal(size_of(e->path), healthy);

  assert_int_equal(set_immutable(e->path, 0), 0);
  assert_int_equal(ops->check(st), 0); /* ready again, by itself */
  off_t after = size_of(e->path);
  assert_true(after > healthy + 4096 && after < healthy + 4096 + 64); /* one nop record */
  assert_int_equal(ops->check(st), 0);
  assert_int_equal(size_of(e->path), after); /* once */
  assert_int_equal(ops->put(st, "bob", 2, b), 0);
  expect_number(ops, st, "alice", a, 1);
  st = reopen(e, ops); /* the nop record reads back */
  expect_number(ops, st, "alice", a, 1);
  expect_number(ops, st, "bob", b, 2);
  done(e, ops);
}

void jf_test_unwritable_location(jf_env *e, const jf_ops *ops) {
  snprintf(e->path, sizeof e->path, "%s/missing/dir/%s", e->dir, ops->file);
  void *st = NULL;
  assert_int_equal(ops->open(e, &st), KOTTE_EIO);
  assert_null(st);
  assert_non_null(strstr(kotte_error_detail(), "missing/dir"));
}
