/* The credential store: validation, ids, times, sealing and opening over
 * any backend, and the delivery rule: exactly one callback per operation,
 * on the loop thread, never before the starting call returned. Rewrap lives
 * in credential_rewrap.c. */
#include <sodium.h>
#include <stddef.h>
#include <string.h>

#include "credential/credential_store_internal.h"
#include "pg/pg_diag.h"

/* ---- delivery ----------------------------------------------------------- */

static void finalize(kotte_cred_store *st);

static void op_free(cred_op *o) {
  if (o->upd) {
    kotte__cred_secret_dup_free(o->upd->username);
    kotte__cred_secret_dup_free(o->upd->password);
    kotte__free(o->upd->name);
    kotte__free(o->upd->host);
    kotte__free(o->upd->database);
    kotte__free(o->upd->sslmode);
    kotte__free(o->upd);
  }
  kotte__cred_rewrap_state_free(o);
  kotte__free(o->user_id);
  kotte__free(o->detail);
  kotte__free(o);
}

static void deliver(cred_op *o) {
  kotte_cred_store *st = o->store;
  if (st->closing && o->status == 0) o->status = KOTTE_ECANCELED;
  if (o->status != 0) {
    kotte_cred_free(o->cred);
    o->cred = NULL;
    kotte_cred_list_free(o->list);
    o->list = NULL;
    kotte_cred_report_free(o->report);
    o->report = NULL;
  }
  /* during the callback (and until the next libkotte call on this
   * thread), kotte_error_detail() describes this operation */
  kotte__detail_set(o->status, o->detail);
  switch (o->kind) {
  case OP_CRED: o->cb.cred(o->status, o->cred, o->userdata); break;
  case OP_STATUS: o->cb.status(o->status, o->userdata); break;
  case OP_LIST: o->cb.list(o->status, o->list, o->userdata); break;
  case OP_REPORT: o->cb.report(o->status, o->report, o->userdata); break;
  }
  op_free(o);
  /* The callback may have freed the store: `closing` is then set and this
   * was possibly the last pending operation. */
  if (--st->pending == 0 && st->closing) finalize(st);
}

static void run_deferred(kotte__deferred *d) {
  cred_op *o = (cred_op *)((char *)d - offsetof(cred_op, link));
  o->then(o);
}

void kotte__cred_enqueue(cred_op *o, void (*run)(cred_op *)) {
  o->then = run;
  kotte__defer_push(&o->store->defer, &o->link, run_deferred);
}

void kotte__cred_complete(cred_op *o, int status) {
  o->status = status;
  /* the explanation the backend (or the store) just wrote, kept with the
   * operation: other operations may fail before its callback runs */
  kotte__free(o->detail);
  o->detail = status != 0 ? kotte__detail_take(status) : NULL;
  if (o->starting) kotte__cred_enqueue(o, deliver);
  else deliver(o);
}

static cred_op *op_new(kotte_cred_store *st, op_kind kind, void *cb, void *userdata) {
  cred_op *o = kotte__calloc(1, sizeof *o);
  if (o == NULL) return NULL;
  o->store = st;
  o->kind = kind;
  o->userdata = userdata;
  o->starting = 1;
  switch (kind) {
  case OP_CRED: o->cb.cred = (kotte_cred_cb)cb; break;
  case OP_STATUS: o->cb.status = (kotte_cred_status_cb)cb; break;
  case OP_LIST: o->cb.list = (kotte_cred_list_cb)cb; break;
  case OP_REPORT: o->cb.report = (kotte_cred_report_cb)cb; break;
  }
  return o;
}

/* Common end of every start function: the first backend call returned @p rc. */
static int started(cred_op *o, int rc) {
  if (rc != 0) {
    op_free(o);
    return rc;
  }
  o->store->pending++;
  o->starting = 0;
  return 0;
}

/* ---- sealing helpers ---------------------------------------------------- */

/* The associated data of a credential blob: a label, the connection id and
 * the field ("username" or "password"). The key ring adds the user id (the
 * subject) and the key id. */
static size_t cred_ad(char out[64], const char *id, const char *field) {
  static const char label[] = "kotte.cred.v1";
  size_t n = 0;
  memcpy(out, label, sizeof label); /* with its NUL as a separator */
  n += sizeof label;
  memcpy(out + n, id, KOTTE_CRED_ID_LEN + 1);
  n += KOTTE_CRED_ID_LEN + 1;
  size_t f = strlen(field);
  memcpy(out + n, field, f);
  return n + f;
}

int kotte__cred_seal(kotte_cred_store *st, const char *user_id, const char *id,
                     const char *field, const char *plaintext, kotte__blob *out) {
  char ad[64];
  size_t ad_len = cred_ad(ad, id, field);
  size_t pt_len = strlen(plaintext);
  out->len = 0;
  out->p = kotte__malloc(kotte_keyring_sealed_size(pt_len));
  if (out->p == NULL) return KOTTE_ENOMEM;
  int rc = kotte_keyring_seal(st->kr, user_id, ad, ad_len, plaintext, pt_len, out->p,
                              kotte_keyring_sealed_size(pt_len), &out->len);
  if (rc != 0) {
    kotte__free(out->p);
    out->p = NULL;
  }
  return rc;
}

int kotte__cred_open(kotte_cred_store *st, const char *user_id, const char *id,
                     const char *field, const char *key_id, const unsigned char *blob,
                     size_t len, char **out) {
  *out = NULL;
  /* The row names one key for both blobs; a blob that names another was
   * moved here from elsewhere (or the row was altered). */
  char blob_key[KOTTE_KEY_ID_LEN + 1];
  if (blob == NULL || kotte_keyring_blob_key_id(blob, len, blob_key) != 0 || key_id == NULL ||
      strcmp(blob_key, key_id) != 0)
    return kotte__fail(KOTTE_EINTEGRITY, "sealed %s of connection %s failed its integrity "
                                         "check (it names another key than its record)",
                       field, id);
  char ad[64];
  size_t ad_len = cred_ad(ad, id, field);
  int rc = kotte_keyring_open(st->kr, user_id, ad, ad_len, blob, len, out, NULL);
  if (rc == KOTTE_EINTEGRITY)
    kotte__fail(rc, "sealed %s of connection %s failed its integrity check (altered, moved "
                    "from another record, or sealed with another key)", field, id);
  return rc;
}

void kotte__blob_free(kotte__blob *b) {
  kotte__free(b->p);
  b->p = NULL;
  b->len = 0;
}

void kotte__cred_secret_dup_free(char *s) {
  if (s == NULL) return;
  sodium_memzero(s, strlen(s));
  kotte__free(s);
}

/* ---- lifecycle ---------------------------------------------------------- */

static int check_options(const kotte_cred_options *opts) {
  if (opts->version != KOTTE_CRED_OPTIONS_VERSION)
    return kotte__fail(KOTTE_EVERSION, "kotte_cred_options.version %u is not supported",
                       opts->version);
  if (opts->rewrap_batch == 0)
    return kotte__fail(KOTTE_EINVAL, "credential options: rewrap_batch must be positive");
  return 0;
}

int kotte_cred_store_new(kotte_cred_store **out, uv_loop_t *loop, kotte_cred_backend *be,
                         kotte_keyring *kr, const kotte_cred_options *opts) {
  kotte__clear_detail();
  kotte_cred_options defaults = KOTTE_CRED_OPTIONS_INIT;
  if (out == NULL) return KOTTE_EINVAL;
  *out = NULL;
  if (loop == NULL || be == NULL || kr == NULL) return KOTTE_EINVAL;
  if (opts == NULL) opts = &defaults;
  int rc = check_options(opts);
  if (rc != 0) return rc;
  if (be->version < 1 || be->version > KOTTE_CRED_BACKEND_VERSION)
    return kotte__fail(KOTTE_EVERSION, "credential backend version %u is not supported",
                       be->version);
  if (!be->insert || !be->get || !be->list || !be->update || !be->remove || !be->free)
    return kotte__fail(KOTTE_EINVAL, "credential backend lacks a required method");
  if (kotte__init() != 0) return KOTTE_EINTERNAL;
  kotte_cred_store *st = kotte__calloc(1, sizeof *st);
  if (st == NULL) return KOTTE_ENOMEM;
  if (kotte__defer_init(&st->defer, loop) != 0) {
    kotte__free(st);
    return KOTTE_EINTERNAL;
  }
  st->defer.async.data = st;
  st->loop = loop;
  st->be = be;
  st->kr = kotte__keyring_ref(kr);
  st->opts = *opts;
  *out = st;
  return 0;
}

static void on_closed(uv_handle_t *h) {
  kotte_cred_store *st = h->data;
  kotte__waiter *waiter = st->free_waiter;
  kotte__free(st);
  kotte__waiter_signal(waiter);
}

static void finalize(kotte_cred_store *st) {
  kotte_cred_backend *be = st->be;
  st->be = NULL;
  if (be) be->free(be);
  kotte_keyring_free(st->kr);
  st->kr = NULL;
  kotte__defer_close(&st->defer, on_closed);
}

static void free_on_loop(kotte_cred_store *st) {
  if (st->closing) return;
  st->closing = 1;
  if (st->pending == 0) finalize(st);
}

static void free_posted(void *arg) { free_on_loop(arg); }

void kotte_cred_store_free(kotte_cred_store *st) {
  if (st == NULL) return;
  if (st->rt == NULL || kotte_runtime_on_loop_thread(st->rt)) {
    free_on_loop(st);
    return;
  }
  kotte__runtime_post_and_wait(st->rt, free_posted, st, &st->free_waiter, "kotte_cred_store_free");
}

typedef struct open_call {
  kotte_cred_store **out;
  kotte_runtime *rt;
  kotte_cred_backend *be;
  kotte_keyring *kr;
  const kotte_cred_options *opts;
} open_call;

static int open_on_loop(void *arg) {
  open_call *c = arg;
  int rc = kotte_cred_store_new(c->out, kotte_runtime_loop(c->rt), c->be, c->kr, c->opts);
  if (rc == 0) (*c->out)->rt = c->rt;
  return rc;
}

int kotte_cred_store_open(kotte_cred_store **out, kotte_runtime *rt, kotte_cred_backend *be,
                          kotte_keyring *kr, const kotte_cred_options *opts) {
  kotte__clear_detail();
  if (out == NULL || rt == NULL) return KOTTE_EINVAL;
  *out = NULL;
  /* a database without libkotte's schema, or an older one, is refused here
   * with its remedy, not at the first saved connection */
  int rc = kotte__pg_schema_verify(kotte__cred_backend_pg_pool(be));
  if (rc != 0) return rc;
  open_call c = { out, rt, be, kr, opts };
  return kotte_runtime_run(rt, open_on_loop, &c);
}

const char *kotte_cred_store_backend_name(const kotte_cred_store *st) {
  return (st && st->be && st->be->name) ? st->be->name : "";
}

kotte_runtime *kotte__cred_store_runtime(kotte_cred_store *st) { return st->rt; }

void kotte__cred_store_set_keyring(kotte_cred_store *st, kotte_keyring *kr) {
  kotte_keyring *old = st->kr;
  st->kr = kotte__keyring_ref(kr);
  kotte_keyring_free(old);
}

kotte_keyring *kotte__cred_store_keyring(kotte_cred_store *st) { return st->kr; }

kotte_time kotte__cred_now(const kotte_cred_store *st) {
  return st->opts.clock ? st->opts.clock(st->opts.clock_ctx) : kotte_clock_now();
}

/* ---- argument checks ---------------------------------------------------- */

#define CHECK_STORE(st, cb)                                                  \
  do {                                                                       \
    if ((st) == NULL || (cb) == NULL) return KOTTE_EINVAL;                   \
    if ((st)->closing) return KOTTE_ECLOSED;                                 \
  } while (0)

static int check_user(const char *user_id) { return kotte__user_id_check(user_id); }

/* Not a UUID is "not found": such a record cannot exist. */
static int check_id(const char *id, char canon[KOTTE_CRED_ID_LEN + 1]) {
  if (id == NULL) return KOTTE_EINVAL;
  if (kotte__uuid_canonical(id, canon) != 0)
    return kotte__fail(KOTTE_ENOTFOUND, "no such connection (not a UUID)");
  return 0;
}

static cred_op *op_for(kotte_cred_store *st, op_kind kind, void *cb, void *ud,
                       const char *user_id, const char *id) {
  cred_op *o = op_new(st, kind, cb, ud);
  if (o == NULL) return NULL;
  o->user_id = kotte__strdup(user_id);
  if (o->user_id == NULL) {
    op_free(o);
    return NULL;
  }
  if (id) memcpy(o->id, id, KOTTE_CRED_ID_LEN + 1);
  return o;
}

/* ---- save --------------------------------------------------------------- */

static void on_inserted(int status, void *ctx) {
  cred_op *o = ctx;
  kotte__cred_complete(o, status);
}

int kotte_cred_save(kotte_cred_store *st, const char *user_id, const kotte_cred_input *in,
                    kotte_cred_cb cb, void *userdata) {
  kotte__clear_detail();
  CHECK_STORE(st, cb);
  int rc = check_user(user_id);
  if (rc == 0) rc = kotte__cred_input_check(in, KOTTE_CRED_ALL);
  if (rc != 0) return rc;
  char id[KOTTE_CRED_ID_LEN + 1];
  if (in->id) {
    if (kotte__uuid_canonical(in->id, id) != 0)
      return kotte__fail(KOTTE_EINVAL, "the id to keep is not a UUID");
  } else {
    kotte__uuid_v4(id);
  }
  kotte_time created = in->created_at ? in->created_at : kotte__cred_now(st);
  kotte_time updated = in->updated_at ? in->updated_at : created;
  kotte__blob u = { NULL, 0 }, p = { NULL, 0 };
  if ((rc = kotte__cred_seal(st, user_id, id, "username", in->username, &u)) != 0 ||
      (rc = kotte__cred_seal(st, user_id, id, "password", in->password, &p)) != 0) {
    kotte__blob_free(&u);
    return rc;
  }
  kotte_cred_record rec = {
    .id = id, .user_id = user_id, .name = in->name, .host = in->host, .port = in->port,
    .database = in->database, .sslmode = kotte__cred_sslmode(in->sslmode),
    .username = u.p, .username_len = u.len, .password = p.p, .password_len = p.len,
    .key_id = kotte_keyring_current_id(st->kr), .created_at = created, .updated_at = updated,
  };
  cred_op *o = op_new(st, OP_CRED, (void *)cb, userdata);
  if (o) o->cred = kotte__cred_from_record(&rec);
  if (o == NULL || o->cred == NULL) {
    if (o) op_free(o);
    kotte__blob_free(&u);
    kotte__blob_free(&p);
    return KOTTE_ENOMEM;
  }
  rc = st->be->insert(st->be, &rec, on_inserted, o);
  kotte__blob_free(&u);
  kotte__blob_free(&p);
  if (rc != 0) kotte_cred_free(o->cred);
  return started(o, rc);
}

/* ---- get ---------------------------------------------------------------- */

static void on_get(int status, const kotte_cred_record *rec, void *ctx) {
  cred_op *o = ctx;
  kotte_cred_store *st = o->store;
  if (status != 0) {
    kotte__cred_complete(o, status);
    return;
  }
  char *user = NULL, *pass = NULL;
  /* The requested user and id, not the record's: a blob opens only where
   * it was sealed, whatever a backend returned. */
  int rc = kotte__cred_open(st, o->user_id, o->id, "username", rec->key_id, rec->username,
                            rec->username_len, &user);
  if (rc == 0)
    rc = kotte__cred_open(st, o->user_id, o->id, "password", rec->key_id, rec->password,
                          rec->password_len, &pass);
  if (rc == 0) {
    o->cred = kotte__cred_from_record(rec);
    if (o->cred == NULL) rc = KOTTE_ENOMEM;
  }
  if (rc == 0) {
    o->cred->username = user;
    o->cred->password = pass;
  } else {
    kotte_secret_free(user);
    kotte_secret_free(pass);
  }
  kotte__cred_complete(o, rc);
}

int kotte_cred_get(kotte_cred_store *st, const char *user_id, const char *id,
                   kotte_cred_cb cb, void *userdata) {
  kotte__clear_detail();
  CHECK_STORE(st, cb);
  char canon[KOTTE_CRED_ID_LEN + 1];
  int rc = check_user(user_id);
  if (rc == 0) rc = check_id(id, canon);
  if (rc != 0) return rc;
  cred_op *o = op_for(st, OP_CRED, (void *)cb, userdata, user_id, canon);
  if (o == NULL) return KOTTE_ENOMEM;
  return started(o, st->be->get(st->be, o->user_id, o->id, on_get, o));
}

/* ---- list --------------------------------------------------------------- */

static void on_list(int status, const kotte_cred_record *recs, size_t n, void *ctx) {
  cred_op *o = ctx;
  if (status == 0) status = kotte__cred_list_from_records(recs, n, &o->list);
  kotte__cred_complete(o, status);
}

int kotte_cred_list_user(kotte_cred_store *st, const char *user_id, kotte_cred_list_cb cb,
                         void *userdata) {
  kotte__clear_detail();
  CHECK_STORE(st, cb);
  int rc = check_user(user_id);
  if (rc != 0) return rc;
  cred_op *o = op_for(st, OP_LIST, (void *)cb, userdata, user_id, NULL);
  if (o == NULL) return KOTTE_ENOMEM;
  return started(o, st->be->list(st->be, o->user_id, on_list, o));
}

/* ---- check -------------------------------------------------------------- */

static void on_checked(int status, void *ctx) { kotte__cred_complete(ctx, status); }

static void on_probe_list(int status, const kotte_cred_record *recs, size_t n, void *ctx) {
  (void)recs;
  (void)n;
  kotte__cred_complete(ctx, status);
}

int kotte_cred_store_check(kotte_cred_store *st, kotte_cred_status_cb cb, void *userdata) {
  CHECK_STORE(st, cb);
  cred_op *o = op_new(st, OP_STATUS, (void *)cb, userdata);
  if (o == NULL) return KOTTE_ENOMEM;
  if (st->be->version >= 2 && st->be->check) return started(o, st->be->check(st->be, on_checked, o));
  /* a user nobody is (user ids are the application's): the backend answers or not */
  return started(o, st->be->list(st->be, "kotte.store-check", on_probe_list, o));
}

/* ---- delete ------------------------------------------------------------- */

static void on_removed(int status, uint64_t count, void *ctx) {
  cred_op *o = ctx;
  if (status == 0 && count == 0) status = KOTTE_ENOTFOUND;
  kotte__cred_complete(o, status);
}

int kotte_cred_delete(kotte_cred_store *st, const char *user_id, const char *id,
                      kotte_cred_status_cb cb, void *userdata) {
  kotte__clear_detail();
  CHECK_STORE(st, cb);
  char canon[KOTTE_CRED_ID_LEN + 1];
  int rc = check_user(user_id);
  if (rc == 0) rc = check_id(id, canon);
  if (rc != 0) return rc;
  cred_op *o = op_for(st, OP_STATUS, (void *)cb, userdata, user_id, canon);
  if (o == NULL) return KOTTE_ENOMEM;
  return started(o, st->be->remove(st->be, o->user_id, o->id, on_removed, o));
}

/* ---- update ------------------------------------------------------------- */

/* A lost compare-and-swap means another writer got in between: read again,
 * a bounded number of times. */
#define UPDATE_TRIES 16

static void update_read(cred_op *o);

static void on_updated(int status, const kotte_cred_record *rec, void *ctx) {
  cred_op *o = ctx;
  if (status == KOTTE_ECONFLICT && ++o->tries < UPDATE_TRIES) {
    update_read(o);
    return;
  }
  if (status == 0) {
    o->cred = kotte__cred_from_record(rec);
    if (o->cred == NULL) status = KOTTE_ENOMEM;
  }
  kotte__cred_complete(o, status);
}

/* The metadata part of the patch, from the copied input. */
static void patch_metadata(const cred_update *u, kotte_time now, kotte_cred_patch *p) {
  memset(p, 0, sizeof *p);
  p->set = KOTTE_CRED_SET_UPDATED_AT;
  p->updated_at = now;
  if (u->fields & KOTTE_CRED_NAME) p->set |= KOTTE_CRED_SET_NAME, p->name = u->name;
  if (u->fields & KOTTE_CRED_HOST) p->set |= KOTTE_CRED_SET_HOST, p->host = u->host;
  if (u->fields & KOTTE_CRED_PORT) p->set |= KOTTE_CRED_SET_PORT, p->port = u->port;
  if (u->fields & KOTTE_CRED_DATABASE)
    p->set |= KOTTE_CRED_SET_DATABASE, p->database = u->database;
  if (u->fields & KOTTE_CRED_SSLMODE)
    p->set |= KOTTE_CRED_SET_SSLMODE, p->sslmode = kotte__cred_sslmode(u->sslmode);
}

/* Writes the update; @p rec is the current record when one secret changes
 * (NULL otherwise). Completes the op on failure. */
static void update_write(cred_op *o, const kotte_cred_record *rec) {
  kotte_cred_store *st = o->store;
  cred_update *u = o->upd;
  kotte_cred_patch p;
  patch_metadata(u, kotte__cred_now(st), &p);
  kotte__blob ub = { NULL, 0 }, pb = { NULL, 0 };
  char *kept = NULL;
  int rc = 0;
  int su = (u->fields & KOTTE_CRED_USERNAME) != 0, sp = (u->fields & KOTTE_CRED_PASSWORD) != 0;
  const char *current = kotte_keyring_current_id(st->kr);
  if (su || sp) {
    const char *username = u->username, *password = u->password;
    if (rec && strcmp(rec->key_id, current) == 0) {
      /* Same key: seal only what changed. The other blob stays valid as
       * long as the row is still under the current key. */
      p.expect_key_id = current;
    } else if (rec) {
      /* The row is under an older key: re-seal the unchanged secret with
       * the current one too, provided nobody changed it meanwhile. */
      if (!su) {
        rc = kotte__cred_open(st, o->user_id, o->id, "username", rec->key_id, rec->username,
                              rec->username_len, &kept);
        username = kept;
        p.expect_username = rec->username;
        p.expect_username_len = rec->username_len;
        su = 1;
      } else {
        rc = kotte__cred_open(st, o->user_id, o->id, "password", rec->key_id, rec->password,
                              rec->password_len, &kept);
        password = kept;
        p.expect_password = rec->password;
        p.expect_password_len = rec->password_len;
        sp = 1;
      }
    }
    if (rc == 0 && su) rc = kotte__cred_seal(st, o->user_id, o->id, "username", username, &ub);
    if (rc == 0 && sp) rc = kotte__cred_seal(st, o->user_id, o->id, "password", password, &pb);
    kotte_secret_free(kept);
    if (su) p.set |= KOTTE_CRED_SET_USERNAME, p.username = ub.p, p.username_len = ub.len;
    if (sp) p.set |= KOTTE_CRED_SET_PASSWORD, p.password = pb.p, p.password_len = pb.len;
    p.set |= KOTTE_CRED_SET_KEY_ID;
    p.key_id = current;
  }
  if (rc == 0) rc = st->be->update(st->be, o->user_id, o->id, &p, on_updated, o);
  kotte__blob_free(&ub);
  kotte__blob_free(&pb);
  if (rc != 0) kotte__cred_complete(o, rc);
}

static void on_update_read(int status, const kotte_cred_record *rec, void *ctx) {
  cred_op *o = ctx;
  if (status != 0) {
    kotte__cred_complete(o, status);
    return;
  }
  update_write(o, rec);
}

/* One secret changes: the current record decides what to seal. */
static void update_read(cred_op *o) {
  kotte_cred_store *st = o->store;
  int rc = st->be->get(st->be, o->user_id, o->id, on_update_read, o);
  if (rc != 0) kotte__cred_complete(o, rc);
}

static int dup_field(char **dst, const char *src) {
  *dst = kotte__strdup(src);
  return *dst == NULL && src != NULL ? KOTTE_ENOMEM : 0;
}

int kotte_cred_update(kotte_cred_store *st, const char *user_id, const char *id,
                      const kotte_cred_input *in, kotte_cred_cb cb, void *userdata) {
  kotte__clear_detail();
  CHECK_STORE(st, cb);
  char canon[KOTTE_CRED_ID_LEN + 1];
  int rc = check_user(user_id);
  if (rc != 0) return rc;
  if (in == NULL) return KOTTE_EINVAL;
  if (in->fields == 0 || (in->fields & ~KOTTE_CRED_ALL))
    return kotte__fail(KOTTE_EINVAL, "update: fields must name what to change");
  if ((rc = kotte__cred_input_check(in, in->fields)) != 0) return rc;
  if ((rc = check_id(id, canon)) != 0) return rc;
  cred_op *o = op_for(st, OP_CRED, (void *)cb, userdata, user_id, canon);
  if (o == NULL) return KOTTE_ENOMEM;
  cred_update *u = o->upd = kotte__calloc(1, sizeof *u);
  if (u == NULL) {
    op_free(o);
    return KOTTE_ENOMEM;
  }
  unsigned int f = u->fields = in->fields;
  u->port = in->port;
  if (((f & KOTTE_CRED_NAME) && dup_field(&u->name, in->name)) ||
      ((f & KOTTE_CRED_HOST) && dup_field(&u->host, in->host)) ||
      ((f & KOTTE_CRED_DATABASE) && dup_field(&u->database, in->database)) ||
      ((f & KOTTE_CRED_SSLMODE) && dup_field(&u->sslmode, in->sslmode)) ||
      ((f & KOTTE_CRED_USERNAME) && dup_field(&u->username, in->username)) ||
      ((f & KOTTE_CRED_PASSWORD) && dup_field(&u->password, in->password))) {
    op_free(o);
    return KOTTE_ENOMEM;
  }
  int su = (f & KOTTE_CRED_USERNAME) != 0, sp = (f & KOTTE_CRED_PASSWORD) != 0;
  if (su != sp) {
    /* One secret: read first (the key of the other one matters). */
    return started(o, st->be->get(st->be, o->user_id, o->id, on_update_read, o));
  }
  /* Metadata only, or both secrets: one write, nothing to read. */
  kotte_cred_store *s = o->store;
  kotte_cred_patch p;
  kotte__blob ub = { NULL, 0 }, pb = { NULL, 0 };
  patch_metadata(u, kotte__cred_now(s), &p);
  if (su) {
    if ((rc = kotte__cred_seal(s, o->user_id, o->id, "username", u->username, &ub)) != 0 ||
        (rc = kotte__cred_seal(s, o->user_id, o->id, "password", u->password, &pb)) != 0) {
      kotte__blob_free(&ub);
      op_free(o);
      return rc;
    }
    p.set |= KOTTE_CRED_SET_USERNAME | KOTTE_CRED_SET_PASSWORD | KOTTE_CRED_SET_KEY_ID;
    p.username = ub.p;
    p.username_len = ub.len;
    p.password = pb.p;
    p.password_len = pb.len;
    p.key_id = kotte_keyring_current_id(s->kr);
  }
  rc = s->be->update(s->be, o->user_id, o->id, &p, on_updated, o);
  kotte__blob_free(&ub);
  kotte__blob_free(&pb);
  return started(o, rc);
}

/* ---- op constructors for credential_rewrap.c ---------------------------- */

cred_op *kotte__cred_op_new(kotte_cred_store *st, void *cb, void *userdata) {
  return op_new(st, OP_REPORT, cb, userdata);
}

int kotte__cred_op_started(cred_op *o, int rc) { return started(o, rc); }
