/* The json_file suites' shared environment (json_file_helpers.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
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
