/* json_file backend: persistence, file modes, corrupt and foreign files,
 * torn tails, sharing between stores and processes, compaction. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include <kotte.h>

#include "json_file_helpers.h"
#include "test_files.h"
#include "test_log.h"

typedef jf_env env; /* ->st: a kotte_session_store a failed test left open */

static void free_store(void *st) { kotte_session_store_free(st); }

static int setup(void **state) {
  *state = jf_env_new("sessions.journal", free_store);
  return 0;
}

#define teardown jf_teardown

/* The secret the journal's keys come from (SESSION_SECRET_KEY). */
static const unsigned char secret[] = "json-file-suite-session-secret";

static int open_store(env *e, kotte_session_store **st) {
  kotte_session_backend *be;
  int rc = kotte_session_backend_json_file_new(&be, kotte_runtime_loop(e->rt), e->path, secret,
                                               sizeof secret - 1);
  if (rc != 0) return rc;
  rc = kotte_session_store_open(st, e->rt, be, NULL);
  if (rc != 0) kotte_session_backend_free(be);
  return rc;
}

static void create(kotte_session_store *st, const char *user, const char *data, char id[44]) {
  kotte_session *s;
  assert_int_equal(kotte_session_create_sync(st, user, data, &s, -1), 0);
  memcpy(id, kotte_session_id(s), 44);
  kotte_session_free(s);
}

static void expect_data(kotte_session_store *st, const char *id, const char *data) {
  kotte_session *s;
  assert_int_equal(kotte_session_get_sync(st, id, &s, -1), 0);
  assert_string_equal(kotte_session_data(s), data);
  kotte_session_free(s);
}

static void writes_survive_closing_and_reopening(void **state) {
  env *e = *state;
  kotte_session_store *st;
  char a[44], b[44], c[44];
  assert_int_equal(open_store(e, &st), 0);
  create(st, "alice", "{\"n\":1}", a);
  create(st, "bob", "{\"n\":2}", b);
  create(st, "carol", NULL, c);
  kotte_session *s;
  assert_int_equal(kotte_session_update_sync(st, a, "{\"m\":\"x\"}", &s, -1), 0);
  kotte_session_free(s);
  assert_int_equal(kotte_session_delete_sync(st, b, -1), 0);
  assert_int_equal(kotte_session_regenerate_sync(st, c, &s, -1), 0);
  char c2[44];
  memcpy(c2, kotte_session_id(s), 44);
  kotte_session_free(s);
  kotte_session_store_free(st);

  assert_int_equal(open_store(e, &st), 0);
  expect_data(st, a, "{\"n\":1,\"m\":\"x\"}");
  assert_int_equal(kotte_session_get_sync(st, b, &s, -1), KOTTE_ENOTFOUND);
  assert_int_equal(kotte_session_get_sync(st, c, &s, -1), KOTTE_ENOTFOUND);
  expect_data(st, c2, "{}");
  kotte_session_store_free(st);
}

static void files_are_created_with_mode_0600(void **state) {
  env *e = *state;
  kotte_session_store *st;
  mode_t old = umask(0);
  assert_int_equal(open_store(e, &st), 0);
  umask(old);
  char id[44];
  create(st, "alice", NULL, id);
  kotte_session_store_free(st);
  struct stat sb;
  assert_int_equal(stat(e->path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  char lock[160];
  snprintf(lock, sizeof lock, "%s.lock", e->path);
  assert_int_equal(stat(lock, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
}

static void a_damaged_record_is_refused_and_the_file_left_untouched(void **state) {
  env *e = *state;
  kotte_session_store *st;
  char a[44], b[44];
  assert_int_equal(open_store(e, &st), 0);
  create(st, "alice", "{\"n\":1}", a);
  create(st, "bob", "{\"n\":2}", b);
  kotte_session_store_free(st);
  size_t len;
  char *buf = slurp(e->path, &len);
  char *hit = strstr(buf, "alice");
  assert_non_null(hit);
  hit[0] = 'A'; /* one flipped byte inside a complete record */
  spit(e->path, buf, len);

  int rc = open_store(e, &st);
  assert_int_equal(rc, KOTTE_ECORRUPT);
  assert_non_null(strstr(kotte_error_detail(), e->path)); /* names the file */
  size_t len2;
  char *after = slurp(e->path, &len2);
  assert_int_equal(len2, len);
  assert_memory_equal(after, buf, len); /* never overwritten or emptied */
  free(after);
  free(buf);
}

/* The journal's line checksum is not a secret (zero-keyed SipHash): a file
 * written or edited by hand can carry a well-formed line whose numbers are
 * nonsense. A time beyond +-2^53 must be refused like any damaged record,
 * not cast (a cast of 1e300 to int64 is undefined behaviour). */
static void a_checksummed_record_with_an_impossible_time_is_refused(void **state) {
  env *e = *state;
  kotte_session_store *st;
  char a[44];
  assert_int_equal(open_store(e, &st), 0);
  create(st, "alice", "{\"n\":1}", a);
  kotte_session_store_free(st);
  size_t len;
  char *buf = slurp(e->path, &len);
  char *nl = strchr(buf, '\n');
  assert_non_null(nl);
  char *c = strstr(nl, "\"c\":");
  assert_non_null(c);
  char *end = c + 4;
  while (*end >= '0' && *end <= '9') end++;
  /* header line, then the put record with "c":1e300 and a fresh checksum */
  const char *json_start = nl + 1 + 17;
  char json[1024];
  int n = snprintf(json, sizeof json, "%.*s\"c\":1e300%.*s", (int)(c - json_start), json_start,
                   (int)(strchr(end, '\n') - end), end);
  assert_true(n > 0 && (size_t)n < sizeof json);
  unsigned char h[crypto_shorthash_BYTES];
  static const unsigned char zero_key[crypto_shorthash_KEYBYTES];
  crypto_shorthash(h, (const unsigned char *)json, (size_t)n, zero_key);
  char hex[2 * crypto_shorthash_BYTES + 1];
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  char file[2048];
  int flen = snprintf(file, sizeof file, "%.*s%s %s\n", (int)(nl + 1 - buf), buf, hex, json);
  assert_true(flen > 0 && (size_t)flen < sizeof file);
  spit(e->path, file, (size_t)flen);

  assert_int_equal(open_store(e, &st), KOTTE_ECORRUPT);
  size_t len2;
  char *after = slurp(e->path, &len2);
  assert_int_equal(len2, (size_t)flen);
  assert_memory_equal(after, file, (size_t)flen); /* left as it was */
  free(after);
  free(buf);
}

static void a_foreign_file_is_refused_and_left_untouched(void **state) {
  env *e = *state;
  /* Kotte's own connections.json, pointed at by mistake: no newline at all */
  const char *kotte = "{\"user:alice\": {\"2b1c\": {\"name\": \"prod\"}}}";
  spit(e->path, kotte, strlen(kotte));
  kotte_session_store *st;
  assert_int_equal(open_store(e, &st), KOTTE_ECORRUPT);
  size_t len;
  char *after = slurp(e->path, &len);
  assert_string_equal(after, kotte);
  free(after);
  const char *lines = "hello\nworld\n";
  spit(e->path, lines, strlen(lines));
  assert_int_equal(open_store(e, &st), KOTTE_ECORRUPT);
  after = slurp(e->path, &len);
  assert_string_equal(after, lines);
  free(after);
}

static void a_torn_last_record_is_dropped(void **state) {
  env *e = *state;
  kotte_session_store *st;
  char a[44], b[44];
  assert_int_equal(open_store(e, &st), 0);
  create(st, "alice", "{\"n\":1}", a);
  create(st, "bob", "{\"n\":2}", b);
  kotte_session_store_free(st);
  size_t len;
  char *buf = slurp(e->path, &len);
  spit(e->path, buf, len - 7); /* the last write was cut short by a crash */
  free(buf);
  assert_int_equal(open_store(e, &st), 0);
  expect_data(st, a, "{\"n\":1}");
  kotte_session *s;
  assert_int_equal(kotte_session_get_sync(st, b, &s, -1), KOTTE_ENOTFOUND);
  create(st, "carol", "{\"n\":3}", b); /* appends after the cut, not onto it */
  kotte_session_store_free(st);
  assert_int_equal(open_store(e, &st), 0);
  expect_data(st, a, "{\"n\":1}");
  expect_data(st, b, "{\"n\":3}");
  kotte_session_store_free(st);
}

static void two_stores_on_one_file_see_each_other(void **state) {
  env *e = *state;
  kotte_session_store *x, *y;
  assert_int_equal(open_store(e, &x), 0);
  assert_int_equal(open_store(e, &y), 0);
  char id[44];
  create(x, "alice", "{\"n\":1}", id);
  kotte_session *s;
  assert_int_equal(kotte_session_update_sync(y, id, "{\"from\":\"y\"}", &s, -1), 0);
  kotte_session_free(s);
  expect_data(x, id, "{\"n\":1,\"from\":\"y\"}");
  assert_int_equal(kotte_session_delete_sync(y, id, -1), 0); /* logout on y ... */
  assert_int_equal(kotte_session_update_sync(x, id, "{\"late\":1}", &s, -1), KOTTE_ENOTFOUND);
  assert_int_equal(kotte_session_get_sync(x, id, &s, -1), KOTTE_ENOTFOUND); /* ... wins on x */
  kotte_session_store_free(x);
  kotte_session_store_free(y);
}

enum { CHILD_WRITES = 300 };

/* The other process: this binary re-executed as "--child PATH" (a fresh
 * exec, not a fork of a threaded process). Writes CHILD_WRITES sessions and
 * prints each acknowledged id on stdout. */
static int child_main(const char *path) {
  env child;
  memset(&child, 0, sizeof child);
  snprintf(child.path, sizeof child.path, "%s", path);
  if (kotte_runtime_new(&child.rt, NULL) != 0) return 2;
  kotte_session_store *st;
  if (open_store(&child, &st) != 0) return 3;
  for (int i = 0; i < CHILD_WRITES; i++) {
    kotte_session *s;
    char data[32];
    snprintf(data, sizeof data, "{\"child\":%d}", i);
    if (kotte_session_create_sync(st, "child", data, &s, 10000) != 0) return 4;
    if (fwrite(kotte_session_id(s), 1, 43, stdout) != 43) return 5;
    kotte_session_free(s);
  }
  fflush(stdout);
  kotte_session_store_free(st);
  kotte_runtime_free(child.rt);
  return 0;
}

static void two_processes_write_one_file_without_losing_anything(void **state) {
  env *e = *state;
  enum { N = CHILD_WRITES };
  FILE *child = jf_child_start(e->path);
  kotte_session_store *st;
  assert_int_equal(open_store(e, &st), 0);
  static char ids[N][44];
  for (int i = 0; i < N; i++) {
    char data[32];
    snprintf(data, sizeof data, "{\"parent\":%d}", i);
    create(st, "parent", data, ids[i]);
  }
  static char child_ids[N][44];
  jf_child_ids(child, child_ids[0], sizeof child_ids[0], 43, N);
  for (int i = 0; i < N; i++) {
    char data[32];
    snprintf(data, sizeof data, "{\"child\":%d}", i);
    expect_data(st, child_ids[i], data);
    snprintf(data, sizeof data, "{\"parent\":%d}", i);
    expect_data(st, ids[i], data);
  }
  kotte_session_store_free(st);
}

static void compaction_shrinks_the_file_and_keeps_live_sessions(void **state) {
  env *e = *state;
  kotte_session_store *st, *other;
  assert_int_equal(open_store(e, &st), 0);
  assert_int_equal(open_store(e, &other), 0);
  enum { N = 1500 };
  static char ids[N][44];
  for (int i = 0; i < N; i++) create(st, "alice", "{\"payload\":\"xxxxxxxxxxxxxxxxxxxx\"}", ids[i]);
  struct stat before, after;
  assert_int_equal(stat(e->path, &before), 0);
  for (int i = 0; i < N; i++) {
    if (i % 10 == 0) continue;
    assert_int_equal(kotte_session_delete_sync(st, ids[i], -1), 0);
  }
  assert_int_equal(stat(e->path, &after), 0);
  assert_true(after.st_ino != before.st_ino);   /* rewritten ... */
  assert_true(after.st_size < before.st_size); /* ... smaller */
  assert_int_equal(after.st_mode & 0777, 0600);
  /* the other store follows the replaced file */
  for (int i = 0; i < N; i++) {
    kotte_session *s;
    int rc = kotte_session_get_sync(other, ids[i], &s, -1);
    assert_int_equal(rc, i % 10 == 0 ? 0 : KOTTE_ENOTFOUND);
    kotte_session_free(s);
  }
  kotte_session_store_free(other);
  kotte_session_store_free(st);
  assert_int_equal(open_store(e, &st), 0);
  expect_data(st, ids[0], "{\"payload\":\"xxxxxxxxxxxxxxxxxxxx\"}");
  kotte_session_store_free(st);
}

/* An existing empty file holds nothing to lose: it is a new store (a
 * creator that died before its header, or a file emptied while no process
 * had it open), said in a warning. */
static void an_existing_empty_file_opens_as_a_new_store_with_a_warning(void **state) {
  env *e = *state;
  spit(e->path, "", 0);
  test_log_start();
  kotte_session_store *st;
  assert_int_equal(open_store(e, &st), 0);
  e->st = st;
  char id[44];
  create(st, "alice", "{\"n\":1}", id);
  kotte_session_store_free(st);
  e->st = NULL;
  const char *parts[] = { e->path, "empty", NULL };
  char *line = test_log_find("WARN", parts);
  if (line == NULL) fail_msg("no warning about the empty file; captured:\n%s", test_log_buf.text);
  free(line);
  test_log_stop();
  assert_int_equal(open_store(e, &st), 0);
  expect_data(st, id, "{\"n\":1}");
  kotte_session_store_free(st);
}

/* ---- no session id at rest ---------------------------------------------- */

/* 1 if @p buf holds @p id as written, or its 32 bytes in hex or standard
 * base64 (the forms a dump could show them in). */
static int holds_id(const char *buf, const char *id) {
  if (strstr(buf, id)) return 1;
  unsigned char raw[32];
  size_t n = 0;
  if (sodium_base642bin(raw, sizeof raw, id, 43, NULL, &n, NULL,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 || n != 32)
    fail_msg("not an id: %s", id);
  char hex[65], b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
  sodium_bin2base64(b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
  return strstr(buf, hex) != NULL || strstr(buf, b64) != NULL;
}

static void the_file_never_holds_a_session_id(void **state) {
  env *e = *state;
  kotte_session_store *st;
  assert_int_equal(open_store(e, &st), 0);
  e->st = st;
  enum { N = 6 };
  char ids[N + 1][44];
  for (int i = 0; i < N; i++) create(st, i % 2 ? "alice" : "bob", "{\"n\":1}", ids[i]);
  kotte_session *s;
  assert_int_equal(kotte_session_update_sync(st, ids[0], "{\"m\":2}", &s, -1), 0);
  kotte_session_free(s);
  assert_int_equal(kotte_session_touch_sync(st, ids[1], -1), 0);
  assert_int_equal(kotte_session_regenerate_sync(st, ids[2], &s, -1), 0);
  memcpy(ids[N], kotte_session_id(s), 44);
  kotte_session_free(s);
  assert_int_equal(kotte_session_delete_sync(st, ids[3], -1), 0);
  /* a list still hands the ids back (opened from their seals) */
  kotte_session_list *l;
  assert_int_equal(kotte_session_list_user_sync(st, "alice", &l, -1), 0);
  assert_int_equal(kotte_session_list_count(l), 2); /* 1 and 5; 3 was deleted */
  for (size_t i = 0; i < kotte_session_list_count(l); i++) {
    const char *id = kotte_session_id(kotte_session_list_get(l, i));
    assert_true(strcmp(id, ids[1]) == 0 || strcmp(id, ids[5]) == 0);
  }
  kotte_session_list_free(l);
  kotte_session_store_free(st);
  e->st = NULL;
  size_t len;
  char *buf = slurp(e->path, &len);
  for (int i = 0; i <= N; i++)
    if (holds_id(buf, ids[i])) fail_msg("session id %d is in the journal", i);
  assert_non_null(strstr(buf, "\"alice\"")); /* the file is readable, only ids are hidden */
  free(buf);
  /* and the sessions are all there after a reload */
  assert_int_equal(open_store(e, &st), 0);
  e->st = st;
  expect_data(st, ids[0], "{\"n\":1,\"m\":2}");
  expect_data(st, ids[N], "{\"n\":1}");
  assert_int_equal(kotte_session_get_sync(st, ids[2], &s, -1), KOTTE_ENOTFOUND);
  assert_int_equal(kotte_session_get_sync(st, ids[3], &s, -1), KOTTE_ENOTFOUND);
  kotte_session_store_free(st);
  e->st = NULL;
}

/* The ids of fixtures/sessions-v1.journal (fixtures/make_sessions_v1.c). */
#define V1_A "yRCMGFs_GKtgTfpfieU-uiqoReFIYSm1cuCFxdMjKes"       /* alice, updated */
#define V1_B_OLD "4lJUmdBcj6_PMVxrU9ImXV6oDULUXn3ArcG_JS8taB4"   /* alice, regenerated ... */
#define V1_B "0uUJMW3pzDflo0o_1RX92Y5Hcm4HhUYpAIb4pzbgp5A"       /* ... to this */
#define V1_C "MLPkzNF8kvtV1XPpgKrbxhjCMXKPNyLnjR4BiQ2foMg"       /* bob, touched */
#define V1_D "-nq72crDQ3DiGk_EEOw2KSfUX8IAD14KFEkGOtxnsxM"       /* carol, deleted */

static void an_old_journal_with_clear_ids_is_upgraded_on_open(void **state) {
  env *e = *state;
  size_t len;
  char *old = slurp(KOTTE_TEST_FIXTURES "/sessions-v1.journal", &len);
  assert_non_null(strstr(old, V1_A)); /* the fixture is what it claims */
  spit(e->path, old, len);
  free(old);
  test_log_start();
  kotte_session_store *st;
  assert_int_equal(open_store(e, &st), 0);
  e->st = st;
  const char *parts[] = { e->path, "version 1 to 2", NULL };
  char *line = test_log_find("INFO", parts);
  if (line == NULL) fail_msg("the upgrade is not logged; captured:\n%s", test_log_buf.text);
  free(line);
  test_log_stop();

  /* the file no longer holds an id, and says version 2 */
  char *now = slurp(e->path, &len);
  const char *all[] = { V1_A, V1_B_OLD, V1_B, V1_C, V1_D };
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    if (holds_id(now, all[i])) fail_msg("id %s is still in the upgraded journal", all[i]);
  assert_non_null(strstr(now, "{\"kotte\":\"sessions\",\"version\":2}"));
  free(now);
  struct stat sb;
  assert_int_equal(stat(e->path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);

  /* every session works as before */
  expect_data(st, V1_A, "{\"csrf_token\":\"old-csrf-in-clear\",\"n\":1,\"m\":\"x\"}");
  expect_data(st, V1_B, "{\"n\":2}");
  expect_data(st, V1_C, "{\"n\":3}");
  kotte_session *s;
  assert_int_equal(kotte_session_get_sync(st, V1_B_OLD, &s, -1), KOTTE_ENOTFOUND);
  assert_int_equal(kotte_session_get_sync(st, V1_D, &s, -1), KOTTE_ENOTFOUND);
  kotte_session_list *l;
  assert_int_equal(kotte_session_list_user_sync(st, "alice", &l, -1), 0);
  assert_int_equal(kotte_session_list_count(l), 2);
  for (size_t i = 0; i < 2; i++) {
    const char *id = kotte_session_id(kotte_session_list_get(l, i));
    assert_true(strcmp(id, V1_A) == 0 || strcmp(id, V1_B) == 0);
  }
  kotte_session_list_free(l);
  assert_int_equal(kotte_session_delete_sync(st, V1_C, -1), 0);
  kotte_session_store_free(st);
  e->st = NULL;
  assert_int_equal(open_store(e, &st), 0); /* and again, from the new format */
  e->st = st;
  expect_data(st, V1_B, "{\"n\":2}");
  assert_int_equal(kotte_session_get_sync(st, V1_C, &s, -1), KOTTE_ENOTFOUND);
  kotte_session_store_free(st);
  e->st = NULL;
}

/* The hashes depend on the secret: opened with another one, the journal
 * knows no session (every replica must share SESSION_SECRET_KEY). */
static void another_secret_finds_no_session(void **state) {
  env *e = *state;
  kotte_session_store *st;
  char id[44];
  assert_int_equal(open_store(e, &st), 0);
  create(st, "alice", "{\"n\":1}", id);
  kotte_session_store_free(st);
  kotte_session_backend *be;
  static const unsigned char other[] = "another-session-secret-entirely";
  assert_int_equal(kotte_session_backend_json_file_new(&be, kotte_runtime_loop(e->rt), e->path,
                                                       other, sizeof other - 1), 0);
  assert_int_equal(kotte_session_store_open(&st, e->rt, be, NULL), 0);
  e->st = st;
  kotte_session *s;
  assert_int_equal(kotte_session_get_sync(st, id, &s, -1), KOTTE_ENOTFOUND);
  kotte_session_list *l;
  assert_int_equal(kotte_session_list_user_sync(st, "alice", &l, -1), 0);
  assert_int_equal(kotte_session_list_count(l), 0); /* seals this key cannot open */
  kotte_session_list_free(l);
  kotte_session_store_free(st);
  e->st = NULL;
  assert_int_equal(kotte_session_backend_json_file_new(&be, kotte_runtime_loop(e->rt), e->path,
                                                       other, 15), KOTTE_EKEY);
}

/* ---- readiness: a journal that cannot be written ------------------------ */

/* ---- what both stores' journals must do (json_file_helpers.h) ------------ */

static int ops_open(jf_env *e, void **st) { return open_store(e, (kotte_session_store **)st); }
static void ops_close(void *st) { kotte_session_store_free(st); }
static int ops_put(void *st, const char *owner, int v, char *id) {
  char data[32];
  snprintf(data, sizeof data, "{\"v\":%d}", v);
  kotte_session *s;
  int rc = kotte_session_create_sync(st, owner, data, &s, -1);
  if (rc == 0) memcpy(id, kotte_session_id(s), 44);
  kotte_session_free(s);
  return rc;
}
static int ops_value(void *st, const char *owner, const char *id, int *v) {
  kotte_session *s;
  int rc = kotte_session_get_sync(st, id, &s, -1);
  if (rc != 0) return rc;
  assert_string_equal(kotte_session_user_id(s), owner);
  assert_int_equal(sscanf(kotte_session_data(s), "{\"v\":%d}", v), 1);
  kotte_session_free(s);
  return 0;
}
static int ops_change(void *st, const char *owner, const char *id, int v) {
  (void)owner;
  char data[32];
  snprintf(data, sizeof data, "{\"v\":%d}", v);
  kotte_session *s;
  int rc = kotte_session_update_sync(st, id, data, &s, -1);
  kotte_session_free(s);
  return rc;
}
static int ops_remove(void *st, const char *owner, const char *id) {
  (void)owner;
  return kotte_session_delete_sync(st, id, -1);
}
static int ops_check(void *st) { return kotte_session_store_check_sync(st, -1); }

static const jf_ops ops = { "sessions.journal", ops_open, ops_close, ops_put, ops_value,
                            ops_change, ops_remove, ops_check, NULL };

static void a_journal_truncated_to_zero_while_open_loses_nothing(void **state) {
  jf_test_damage_while_open(*state, &ops, DAMAGE_EMPTY);
}

static void a_journal_cut_in_half_while_open_loses_nothing(void **state) {
  jf_test_damage_while_open(*state, &ops, DAMAGE_HALF);
}

static void a_journal_removed_while_open_loses_nothing(void **state) {
  jf_test_damage_while_open(*state, &ops, DAMAGE_REMOVE);
}

static void the_check_reports_an_unwritable_journal_until_it_is_writable_again(void **state) {
  jf_test_unwritable_journal(*state, &ops);
}

static void an_unwritable_location_gives_an_io_error(void **state) {
  jf_test_unwritable_location(*state, &ops);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--child") == 0) return child_main(argv[2]);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(writes_survive_closing_and_reopening, setup, teardown),
    cmocka_unit_test_setup_teardown(files_are_created_with_mode_0600, setup, teardown),
    cmocka_unit_test_setup_teardown(a_damaged_record_is_refused_and_the_file_left_untouched, setup, teardown),
    cmocka_unit_test_setup_teardown(a_checksummed_record_with_an_impossible_time_is_refused, setup, teardown),
    cmocka_unit_test_setup_teardown(a_foreign_file_is_refused_and_left_untouched, setup, teardown),
    cmocka_unit_test_setup_teardown(a_torn_last_record_is_dropped, setup, teardown),
    cmocka_unit_test_setup_teardown(two_stores_on_one_file_see_each_other, setup, teardown),
    cmocka_unit_test_setup_teardown(two_processes_write_one_file_without_losing_anything, setup, teardown),
    cmocka_unit_test_setup_teardown(compaction_shrinks_the_file_and_keeps_live_sessions, setup, teardown),
    cmocka_unit_test_setup_teardown(an_unwritable_location_gives_an_io_error, setup, teardown),
    cmocka_unit_test_setup_teardown(a_journal_truncated_to_zero_while_open_loses_nothing, setup, teardown),
    cmocka_unit_test_setup_teardown(a_journal_cut_in_half_while_open_loses_nothing, setup, teardown),
    cmocka_unit_test_setup_teardown(a_journal_removed_while_open_loses_nothing, setup, teardown),
    cmocka_unit_test_setup_teardown(an_existing_empty_file_opens_as_a_new_store_with_a_warning, setup, teardown),
    cmocka_unit_test_setup_teardown(the_file_never_holds_a_session_id, setup, teardown),
    cmocka_unit_test_setup_teardown(an_old_journal_with_clear_ids_is_upgraded_on_open, setup, teardown),
    cmocka_unit_test_setup_teardown(another_secret_finds_no_session, setup, teardown),
    cmocka_unit_test_setup_teardown(the_check_reports_an_unwritable_journal_until_it_is_writable_again, setup, teardown),
  };
  return cmocka_run_group_tests_name("json_file backend", tests, NULL, NULL);
}
