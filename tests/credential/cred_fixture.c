#include "cred_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "credential/credential_table.h"
#include "credential/credential_internal.h"

static kotte_time test_clock(void *ctx) { return ((cfx *)ctx)->now; }

kotte_keyring *cfx_ring(const char *current, const char *previous) {
  kotte_keyring *kr = NULL;
  assert_int_equal(kotte_keyring_new(&kr, current, previous), 0);
  return kr;
}

kotte_cred_backend *cfx_backend(cfx *f) {
  kotte_cred_backend *be = NULL;
  int rc = f->env.kind == CFX_MEMORY       ? kotte_cred_backend_memory_new(&be)
           : f->env.kind == CFX_POSTGRESQL ? kotte_cred_backend_postgresql_new(&be, f->env.pool)
                                       : kotte_cred_backend_json_file_new(&be, &f->env.loop, f->env.path);
  assert_int_equal(rc, 0);
  return be;
}

static void close_store(cfx *f) {
  if (f->store == NULL) return;
  kotte_cred_store_free(f->store);
  f->store = NULL;
  f->be = NULL;
  bh_env_settle(&f->env); /* until the store's handles are closed */
}

void cfx_reopen(cfx *f) {
  close_store(f);
  f->be = cfx_backend(f);
  assert_int_equal(kotte_cred_store_new(&f->store, &f->env.loop, f->be, f->kr, &f->opts), 0);
}

void cfx_use_ring(cfx *f, kotte_keyring *kr) {
  kotte__cred_store_set_keyring(f->store, kr);
  kotte_keyring_free(f->kr);
  f->kr = kr;
}

static int setup(void **state, int kind) {
  cfx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  bh_env_open(&f->env, kind, "credentials.journal", "kotte_credentials");
  f->now = 1700000000LL * SEC;
  kotte_cred_options o = KOTTE_CRED_OPTIONS_INIT;
  o.clock = test_clock;
  o.clock_ctx = f;
  f->opts = o;
  f->kr = cfx_ring(KEY_A, NULL);
  cfx_reopen(f);
  *state = f;
  return 0;
}

int cfx_setup_memory(void **state) { return setup(state, CFX_MEMORY); }
int cfx_setup_json_file(void **state) { return setup(state, CFX_JSON_FILE); }
int cfx_setup_postgresql(void **state) { return setup(state, CFX_POSTGRESQL); }

int cfx_teardown(void **state) {
  cfx *f = *state;
  close_store(f);
  kotte_keyring_free(f->kr);
  bh_env_close(&f->env);
  free(f);
  return 0;
}

kotte_cred_input cfx_input(const char *name, const char *username, const char *password) {
  kotte_cred_input in = KOTTE_CRED_INPUT_INIT;
  in.name = name;
  in.host = "db.example.internal";
  in.port = 5432;
  in.database = "graphs";
  in.sslmode = "require";
  in.username = username;
  in.password = password;
  return in;
}

/* One pending call's results. */
typedef struct call {
  cfx *f;
  int calls;
  int status;
  kotte_cred *cred;
  kotte_cred_list *list;
  kotte_cred_report *report;
} call;

static void seen(call *c) { bh_seen(&c->f->env, &c->calls); }
static void on_cred(int st, kotte_cred *cr, void *ud) {
  call *c = ud;
  seen(c);
  c->status = st;
  c->cred = cr;
}
static void on_status(int st, void *ud) {
  call *c = ud;
  seen(c);
  c->status = st;
}
static void on_list(int st, kotte_cred_list *l, void *ud) {
  call *c = ud;
  seen(c);
  c->status = st;
  c->list = l;
}
static void on_report(int st, kotte_cred_report *r, void *ud) {
  call *c = ud;
  seen(c);
  c->status = st;
  c->report = r;
}

/* Waits for the single callback; the start call returned @p rc. */
static int finish(cfx *f, call *c, int rc) {
  if (bh_finish(&f->env, &c->calls, rc) != 0) return rc;
  if (c->status != 0) {
    assert_null(c->cred);
    assert_null(c->list);
    assert_null(c->report);
  }
  return c->status;
}

#define START(f) ((f)->env.in_start = 1)

static int cred_result(call *c, int rc, kotte_cred **out) {
  if (out) *out = c->cred;
  else kotte_cred_free(c->cred);
  return rc;
}

int cfx_save(cfx *f, const char *user, const kotte_cred_input *in, kotte_cred **out) {
  call c = { .f = f };
  START(f);
  int rc = finish(f, &c, kotte_cred_save(f->store, user, in, on_cred, &c));
  return cred_result(&c, rc, out);
}

int cfx_get(cfx *f, const char *user, const char *id, kotte_cred **out) {
  call c = { .f = f };
  START(f);
  int rc = finish(f, &c, kotte_cred_get(f->store, user, id, on_cred, &c));
  return cred_result(&c, rc, out);
}

int cfx_list(cfx *f, const char *user, kotte_cred_list **out) {
  call c = { .f = f };
  START(f);
  int rc = finish(f, &c, kotte_cred_list_user(f->store, user, on_list, &c));
  if (out) *out = c.list;
  else kotte_cred_list_free(c.list);
  return rc;
}

int cfx_update(cfx *f, const char *user, const char *id, const kotte_cred_input *in,
               kotte_cred **out) {
  call c = { .f = f };
  START(f);
  int rc = finish(f, &c, kotte_cred_update(f->store, user, id, in, on_cred, &c));
  return cred_result(&c, rc, out);
}

int cfx_delete(cfx *f, const char *user, const char *id) {
  call c = { .f = f };
  START(f);
  return finish(f, &c, kotte_cred_delete(f->store, user, id, on_status, &c));
}

int cfx_check(cfx *f) {
  call c = { .f = f };
  START(f);
  return finish(f, &c, kotte_cred_store_check(f->store, on_status, &c));
}

static int report_result(call *c, int rc, kotte_cred_report **out) {
  if (out) *out = c->report;
  else kotte_cred_report_free(c->report);
  return rc;
}

int cfx_rewrap(cfx *f, kotte_cred_report **out) {
  call c = { .f = f };
  START(f);
  int rc = finish(f, &c, kotte_cred_rewrap(f->store, on_report, &c));
  return report_result(&c, rc, out);
}

int cfx_usage(cfx *f, kotte_cred_report **out) {
  call c = { .f = f };
  START(f);
  int rc = finish(f, &c, kotte_cred_key_usage(f->store, on_report, &c));
  return report_result(&c, rc, out);
}

void cfx_new(cfx *f, const char *user, const char *name, const char *username,
             const char *password, char id[KOTTE_CRED_ID_LEN + 1]) {
  kotte_cred_input in = cfx_input(name, username, password);
  kotte_cred *c;
  assert_int_equal(cfx_save(f, user, &in, &c), 0);
  memcpy(id, kotte_cred_id(c), KOTTE_CRED_ID_LEN + 1);
  kotte_cred_free(c);
}

/* ---- raw backend access ------------------------------------------------- */

typedef struct raw {
  int done, status;
  kotte_cred_record *rec;
} raw;

static void on_raw(int status, const kotte_cred_record *rec, void *ctx) {
  raw *r = ctx;
  r->done = 1;
  r->status = status;
  if (status == 0) assert_int_equal(kotte__cred_records_copy(rec, 1, &r->rec), 0);
}

static int raw_wait(cfx *f, raw *r, int rc) {
  if (rc != 0) return rc;
  while (!r->done) uv_run(&f->env.loop, UV_RUN_ONCE);
  return r->status;
}

int cfx_raw_get(cfx *f, const char *user, const char *id, kotte_cred_record **out) {
  raw r = { 0, 0, NULL };
  int rc = raw_wait(f, &r, f->be->get(f->be, user, id, on_raw, &r));
  *out = r.rec;
  return rc;
}

int cfx_raw_update(cfx *f, const char *user, const char *id, const kotte_cred_patch *p) {
  raw r = { 0, 0, NULL };
  int rc = raw_wait(f, &r, f->be->update(f->be, user, id, p, on_raw, &r));
  cfx_raw_free(r.rec);
  return rc;
}

void cfx_raw_free(kotte_cred_record *r) { kotte__cred_records_free(r, r ? 1 : 0); }

void cfx_report_keys(const kotte_cred_report *r, char *out, size_t cap) {
  size_t w = 0;
  out[0] = '\0';
  for (size_t i = 0; i < kotte_cred_report_key_count(r); i++)
    w += (size_t)snprintf(out + w, cap - w, "%s%s:%llu", i ? "," : "",
                          kotte_cred_report_key_id(r, i),
                          (unsigned long long)kotte_cred_report_key_records(r, i));
}
