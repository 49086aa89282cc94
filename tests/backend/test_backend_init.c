/* kotte_session_backend_init() / kotte_cred_backend_init() and the
 * KOTTE_*_BACKEND_INIT initializers, the backend writer's starting point
 * (libgit2's git_odb_init_backend()): a struct of a given version is zeroed
 * up to that version's last field and not one byte further, unknown
 * versions are refused and leave it alone, and a store never reads a field
 * a version-1 backend does not have. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include <kotte.h>
#include <kotte/sys/credential_backend.h>
#include <kotte/sys/session_backend.h>

#define JUNK 0xAB

/* Checks one backend type's init: T the struct, init its function, V its
 * current version. A union gives the bytes past the struct that a
 * backend's own fields would occupy. */
#define CHECK_INIT(T, init, V)                                                        \
  do {                                                                                \
    union {                                                                           \
      T be;                                                                           \
      unsigned char bytes[sizeof(T) + 32];                                            \
    } u;                                                                              \
    const size_t v1_size = offsetof(T, check); /* check came with version 2 */        \
    memset(&u, JUNK, sizeof u);                                                       \
    assert_int_equal(init(&u.be, 1), 0);                                              \
    assert_int_equal(u.be.version, 1);                                                \
    assert_null(u.be.name);                                                           \
    assert_null(u.be.get);                                                            \
    assert_null(u.be.free);                                                           \
    for (size_t i = sizeof u.be.version; i < v1_size; i++)                            \
      if (u.bytes[i] != 0) fail_msg("byte %zu of version 1 not zeroed", i);           \
    for (size_t i = v1_size; i < sizeof u; i++)                                       \
      if (u.bytes[i] != JUNK) fail_msg("byte %zu past version 1 written", i);         \
    memset(&u, JUNK, sizeof u);                                                       \
    assert_int_equal(init(&u.be, V), 0);                                              \
    assert_int_equal(u.be.version, V);                                                \
    assert_null(u.be.check);                                                          \
    for (size_t i = sizeof u.be; i < sizeof u; i++)                                   \
      if (u.bytes[i] != JUNK) fail_msg("byte %zu past the struct written", i);        \
    memset(&u, JUNK, sizeof u);                                                       \
    assert_int_equal(init(&u.be, 0), KOTTE_EVERSION);                                 \
    assert_int_equal(init(&u.be, (V) + 1), KOTTE_EVERSION);                           \
    assert_non_null(strstr(kotte_error_detail(), "version"));                         \
    for (size_t i = 0; i < sizeof u; i++)                                             \
      if (u.bytes[i] != JUNK) fail_msg("byte %zu written by a refused init", i);      \
    assert_int_equal(init(NULL, V), KOTTE_EINVAL);                                    \
  } while (0)

static void session_backend_init_zeroes_exactly_its_version(void **state) {
  (void)state;
  CHECK_INIT(kotte_session_backend, kotte_session_backend_init, KOTTE_SESSION_BACKEND_VERSION);
}

static void cred_backend_init_zeroes_exactly_its_version(void **state) {
  (void)state;
  CHECK_INIT(kotte_cred_backend, kotte_cred_backend_init, KOTTE_CRED_BACKEND_VERSION);
}

static void static_initializers_set_the_version_and_nothing_else(void **state) {
  (void)state;
  kotte_session_backend s = KOTTE_SESSION_BACKEND_INIT;
  assert_int_equal(s.version, KOTTE_SESSION_BACKEND_VERSION);
  assert_null(s.name);
  assert_null(s.put);
  assert_null(s.check);
  kotte_cred_backend c = KOTTE_CRED_BACKEND_INIT;
  assert_int_equal(c.version, KOTTE_CRED_BACKEND_VERSION);
  assert_null(c.name);
  assert_null(c.insert);
  assert_null(c.check);
}

static void built_in_backends_have_the_current_version(void **state) {
  (void)state;
  kotte_session_backend *s;
  assert_int_equal(kotte_session_backend_memory_new(&s), 0);
  assert_int_equal(s->version, KOTTE_SESSION_BACKEND_VERSION);
  assert_string_equal(s->name, "memory");
  kotte_session_backend_free(s);
  kotte_cred_backend *c;
  assert_int_equal(kotte_cred_backend_memory_new(&c), 0);
  assert_int_equal(c->version, KOTTE_CRED_BACKEND_VERSION);
  assert_string_equal(c->name, "memory");
  kotte_cred_backend_free(c);
}

/* ---- a version-1 backend whose struct ends before `check` ---------------- */

/* A user's version-1 backend forwarding to the memory backend. Its struct
 * has no `check`: the bytes where version 2 has it are junk (here, inside
 * the union), and a store that read them would jump to 0xABAB... */
typedef struct v1_backend {
  union {
    kotte_session_backend base;
    unsigned char bytes[sizeof(kotte_session_backend)];
  } u;
  kotte_session_backend *inner;
} v1_backend;

#define INNER(be) (((v1_backend *)(be))->inner)

static int v1_put(kotte_session_backend *be, const kotte_session_record *rec, int replace,
                  kotte_session_backend_record_cb cb, void *ctx) {
  return INNER(be)->put(INNER(be), rec, replace, cb, ctx);
}
static int v1_get(kotte_session_backend *be, const char *id, kotte_time now, int slide,
                  kotte_session_backend_record_cb cb, void *ctx) {
  return INNER(be)->get(INNER(be), id, now, slide, cb, ctx);
}
static int v1_update(kotte_session_backend *be, const char *id, kotte_time now, const char *patch,
                     size_t patch_len, size_t max_size, kotte_session_backend_record_cb cb,
                     void *ctx) {
  return INNER(be)->update(INNER(be), id, now, patch, patch_len, max_size, cb, ctx);
}
static int v1_remove(kotte_session_backend *be, const char *id, kotte_session_backend_count_cb cb,
                     void *ctx) {
  return INNER(be)->remove(INNER(be), id, cb, ctx);
}
static int v1_rename(kotte_session_backend *be, const char *id, const char *new_id,
                     kotte_time now, kotte_session_backend_record_cb cb, void *ctx) {
  return INNER(be)->rename(INNER(be), id, new_id, now, cb, ctx);
}
static void v1_free(kotte_session_backend *be) { kotte_session_backend_free(INNER(be)); }

static void on_status(int status, void *ud) {
  *(int *)ud = status;
}
static void on_session(int status, kotte_session *s, void *ud) {
  *(int *)ud = status;
  kotte_session_free(s);
}
static void on_list(int status, kotte_session_list *l, void *ud) {
  *(int *)ud = status;
  kotte_session_list_free(l);
}

static void a_version_1_backend_works_and_its_missing_fields_are_never_read(void **state) {
  (void)state;
  v1_backend b;
  memset(&b, JUNK, sizeof b);
  assert_int_equal(kotte_session_backend_init(&b.u.base, 1), 0);
  b.u.base.name = "v1";
  b.u.base.put = v1_put;
  b.u.base.get = v1_get;
  b.u.base.update = v1_update;
  b.u.base.remove = v1_remove;
  b.u.base.rename = v1_rename;
  b.u.base.free = v1_free;
  assert_int_equal(kotte_session_backend_memory_new(&b.inner), 0);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  kotte_session_store *st;
  assert_int_equal(kotte_session_store_new(&st, &loop, &b.u.base, NULL), 0);
  int created = 1, checked = 1, listed = 1;
  assert_int_equal(kotte_session_create(st, "alice", "{}", on_session, &created), 0);
  /* readiness without `check`: the store asks with a get */
  assert_int_equal(kotte_session_store_check(st, on_status, &checked), 0);
  /* an optional method the init left NULL: not supported, no callback */
  assert_int_equal(kotte_session_list_user(st, "alice", on_list, &listed), KOTTE_ENOTSUP);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(created, 0);
  assert_int_equal(checked, 0);
  assert_int_equal(listed, 1);
  kotte_session_store_free(st);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(session_backend_init_zeroes_exactly_its_version),
    cmocka_unit_test(cred_backend_init_zeroes_exactly_its_version),
    cmocka_unit_test(static_initializers_set_the_version_and_nothing_else),
    cmocka_unit_test(built_in_backends_have_the_current_version),
    cmocka_unit_test(a_version_1_backend_works_and_its_missing_fields_are_never_read),
  };
  return cmocka_run_group_tests_name("backend init", tests, NULL, NULL);
}
