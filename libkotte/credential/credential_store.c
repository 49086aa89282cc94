/* The credential store: validation, ids, times, sealing and opening over
 * any backend. Delivery (one callback per operation, on the loop thread,
 * never before the starting call returned) and the lifecycle are
 * core/store.h's. Rewrap lives in credential_rewrap.c. */
#include <sodium.h>
#include <stddef.h>
#include <string.h>

#include "credential/credential_store_internal.h"
#include "pg/pg_diag.h"

/* ---- the store type (core/store.h) --------------------------------------- */

_Static_assert(offsetof(cred_op, base) == 0 && offsetof(kotte_cred_store, base) == 0,
               "core/store.h: the shared part comes first");

static void op_free(kotte__op *base) {
  cred_op *o = (cred_op *)base;
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
  kotte__free(o);
}

KOTTE__OP_CALL_RESULT(call_cred, kotte_cred_cb)
KOTTE__OP_CALL_RESULT(call_list, kotte_cred_list_cb)
#define call_status kotte__op_call_status

static void free_cred(void *c) { kotte_cred_free(c); } /* wipes the secrets */
static void free_list(void *l) { kotte_cred_list_free(l); }

static void store_release(kotte__store *base) {
  kotte_cred_store *st = (kotte_cred_store *)base;
  st->be->free(st->be); /* once, with no operation in flight */
  kotte_keyring_free(st->kr);
}

static const kotte__store_type cred_store_type = { op_free, store_release };

static cred_op *op_new(kotte_cred_store *st, void (*call)(kotte__op *), kotte__op_cb cb,
                       void *userdata) {
  return kotte__op_new(&st->base, sizeof(cred_op), call, cb, userdata);
}

static int started(cred_op *o, int rc) { return kotte__op_started(&o->base, rc); }

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

/* The size of each version of the backend struct: a backend built against
 * an older header has only the fields up to the first one added later. */
static const size_t backend_sizes[KOTTE_CRED_BACKEND_VERSION] = {
  offsetof(kotte_cred_backend, check), /* 1 */
  sizeof(kotte_cred_backend),          /* 2 */
};
_Static_assert(KOTTE_CRED_BACKEND_VERSION == 2, "a new backend version: add its size above");

int kotte_cred_backend_init(kotte_cred_backend *be, unsigned int version) {
  return kotte__backend_init(be, "credential", version, KOTTE_CRED_BACKEND_VERSION, backend_sizes);
}

/* kotte_cred_store_new() on @p loop, or _open() on @p rt's loop. */
static int store_make(kotte_cred_store **out, uv_loop_t *loop, kotte_runtime *rt,
                      kotte_cred_backend *be, kotte_keyring *kr, const kotte_cred_options *opts) {
  kotte_cred_options defaults = KOTTE_CRED_OPTIONS_INIT;
  if (kr == NULL) return KOTTE_EINVAL;
  if (opts == NULL) opts = &defaults;
  int rc = check_options(opts);
  if (rc != 0) return rc;
  int has_required = be->insert && be->get && be->list && be->update && be->remove && be->free;
  kotte_cred_store *st = kotte__store_new(sizeof *st, &cred_store_type, "credential",
                                          be->version, KOTTE_CRED_BACKEND_VERSION, has_required,
                                          &rc);
  if (st == NULL) return rc;
  if ((rc = kotte__store_attach(&st->base, loop, rt)) != 0) {
    kotte__free(st);
    return rc;
  }
  st->be = be;
  st->kr = kotte__keyring_ref(kr);
  st->opts = *opts;
  *out = st;
  return 0;
}

int kotte_cred_store_new(kotte_cred_store **out, uv_loop_t *loop, kotte_cred_backend *be,
                         kotte_keyring *kr, const kotte_cred_options *opts) {
  kotte__clear_detail();
  if (out == NULL) return KOTTE_EINVAL;
  *out = NULL;
  if (loop == NULL || be == NULL) return KOTTE_EINVAL;
  return store_make(out, loop, NULL, be, kr, opts);
}

int kotte_cred_store_open(kotte_cred_store **out, kotte_runtime *rt, kotte_cred_backend *be,
                          kotte_keyring *kr, const kotte_cred_options *opts) {
  kotte__clear_detail();
  if (out == NULL || rt == NULL) return KOTTE_EINVAL;
  *out = NULL;
  if (be == NULL) return KOTTE_EINVAL;
  /* a database without libkotte's schema, or an older one, is refused here
   * with its remedy, not at the first saved connection */
  int rc = kotte__pg_schema_verify(kotte__cred_backend_pg_pool(be));
  return rc != 0 ? rc : store_make(out, NULL, rt, be, kr, opts);
}

void kotte_cred_store_free(kotte_cred_store *st) {
  if (st) kotte__store_free(&st->base, "kotte_cred_store_free");
}

const char *kotte_cred_store_backend_name(const kotte_cred_store *st) {
  return (st && st->be && st->be->name) ? st->be->name : "";
}

kotte_runtime *kotte__cred_store_runtime(kotte_cred_store *st) { return st->base.rt; }

void kotte__cred_store_set_keyring(kotte_cred_store *st, kotte_keyring *kr) {
  kotte_keyring *old = st->kr;
  st->kr = kotte__keyring_ref(kr);
  kotte_keyring_free(old);
}

kotte_keyring *kotte__cred_store_keyring(kotte_cred_store *st) { return st->kr; }

kotte_time kotte__cred_now(const kotte_cred_store *st) {
  return kotte__store_clock(st->opts.clock, st->opts.clock_ctx);
}

/* ---- argument checks ---------------------------------------------------- */

static int check_user(const char *user_id) { return kotte__user_id_check(user_id); }

/* Not a UUID is "not found": such a record cannot exist. */
static int check_id(const char *id, char canon[KOTTE_CRED_ID_LEN + 1]) {
  if (id == NULL) return KOTTE_EINVAL;
  if (kotte__uuid_canonical(id, canon) != 0)
    return kotte__fail(KOTTE_ENOTFOUND, "no such connection (not a UUID)");
  return 0;
}

static cred_op *op_for(kotte_cred_store *st, void (*call)(kotte__op *), kotte__op_cb cb, void *ud,
                       const char *user_id, const char *id) {
  cred_op *o = op_new(st, call, cb, ud);
  if (o == NULL) return NULL;
  o->user_id = kotte__strdup(user_id);
  if (o->user_id == NULL) {
    op_free(&o->base);
    return NULL;
  }
  if (id) memcpy(o->id, id, KOTTE_CRED_ID_LEN + 1);
  return o;
}

/* The start of a call on one connection of one user: checks both and
 * makes its op (*out), or returns the refusal. */
static int op_for_one(kotte_cred_store *st, void (*call)(kotte__op *), kotte__op_cb cb, void *ud,
                      const char *user_id, const char *id, cred_op **out) {
  char canon[KOTTE_CRED_ID_LEN + 1];
  int rc = check_user(user_id);
  if (rc == 0) rc = check_id(id, canon);
  if (rc != 0) return rc;
  *out = op_for(st, call, cb, ud, user_id, canon);
  return *out ? 0 : KOTTE_ENOMEM;
}

/* ---- save --------------------------------------------------------------- */

static void on_inserted(int status, void *ctx) {
  cred_op *o = ctx;
  kotte__cred_complete(o, status);
}

int kotte_cred_save(kotte_cred_store *st, const char *user_id, const kotte_cred_input *in,
                    kotte_cred_cb cb, void *userdata) {
  KOTTE__STORE_ENTER(st, cb);
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
  cred_op *o = op_new(st, call_cred, (kotte__op_cb)cb, userdata);
  if (o) kotte__op_set_result(&o->base, kotte__cred_from_record(&rec), free_cred);
  if (o == NULL || o->base.result == NULL) {
    if (o) op_free(&o->base);
    kotte__blob_free(&u);
    kotte__blob_free(&p);
    return KOTTE_ENOMEM;
  }
  rc = st->be->insert(st->be, &rec, on_inserted, o);
  kotte__blob_free(&u);
  kotte__blob_free(&p);
  return started(o, rc);
}

/* ---- get ---------------------------------------------------------------- */

static void on_get(int status, const kotte_cred_record *rec, void *ctx) {
  cred_op *o = ctx;
  kotte_cred_store *st = CRED_STORE(o);
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
  kotte_cred *c = NULL;
  if (rc == 0 && (c = kotte__cred_from_record(rec)) == NULL) rc = KOTTE_ENOMEM;
  if (rc == 0) {
    c->username = user;
    c->password = pass;
    kotte__op_set_result(&o->base, c, free_cred);
  } else {
    kotte_secret_free(user);
    kotte_secret_free(pass);
  }
  kotte__cred_complete(o, rc);
}

int kotte_cred_get(kotte_cred_store *st, const char *user_id, const char *id,
                   kotte_cred_cb cb, void *userdata) {
  KOTTE__STORE_ENTER(st, cb);
  cred_op *o;
  int rc = op_for_one(st, call_cred, (kotte__op_cb)cb, userdata, user_id, id, &o);
  if (rc != 0) return rc;
  return started(o, st->be->get(st->be, o->user_id, o->id, on_get, o));
}

/* ---- list --------------------------------------------------------------- */

static void on_list(int status, const kotte_cred_record *recs, size_t n, void *ctx) {
  cred_op *o = ctx;
  kotte_cred_list *l = NULL;
  if (status == 0) status = kotte__cred_list_from_records(recs, n, &l);
  kotte__op_set_result(&o->base, l, free_list);
  kotte__cred_complete(o, status);
}

int kotte_cred_list_user(kotte_cred_store *st, const char *user_id, kotte_cred_list_cb cb,
                         void *userdata) {
  KOTTE__STORE_ENTER(st, cb);
  int rc = check_user(user_id);
  if (rc != 0) return rc;
  cred_op *o = op_for(st, call_list, (kotte__op_cb)cb, userdata, user_id, NULL);
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
  KOTTE__STORE_ENTER(st, cb);
  cred_op *o = op_new(st, call_status, (kotte__op_cb)cb, userdata);
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
  KOTTE__STORE_ENTER(st, cb);
  cred_op *o;
  int rc = op_for_one(st, call_status, (kotte__op_cb)cb, userdata, user_id, id, &o);
  if (rc != 0) return rc;
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
    kotte_cred *c = kotte__cred_from_record(rec);
    if (c == NULL) status = KOTTE_ENOMEM;
    kotte__op_set_result(&o->base, c, free_cred);
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
  kotte_cred_store *st = CRED_STORE(o);
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
  kotte_cred_store *st = CRED_STORE(o);
  int rc = st->be->get(st->be, o->user_id, o->id, on_update_read, o);
  if (rc != 0) kotte__cred_complete(o, rc);
}

static int dup_field(char **dst, const char *src) {
  *dst = kotte__strdup(src);
  return *dst == NULL && src != NULL ? KOTTE_ENOMEM : 0;
}

int kotte_cred_update(kotte_cred_store *st, const char *user_id, const char *id,
                      const kotte_cred_input *in, kotte_cred_cb cb, void *userdata) {
  KOTTE__STORE_ENTER(st, cb);
  char canon[KOTTE_CRED_ID_LEN + 1];
  int rc = check_user(user_id);
  if (rc != 0) return rc;
  if (in == NULL) return KOTTE_EINVAL;
  if (in->fields == 0 || (in->fields & ~KOTTE_CRED_ALL))
    return kotte__fail(KOTTE_EINVAL, "update: fields must name what to change");
  if ((rc = kotte__cred_input_check(in, in->fields)) != 0) return rc;
  if ((rc = check_id(id, canon)) != 0) return rc;
  cred_op *o = op_for(st, call_cred, (kotte__op_cb)cb, userdata, user_id, canon);
  if (o == NULL) return KOTTE_ENOMEM;
  cred_update *u = o->upd = kotte__calloc(1, sizeof *u);
  if (u == NULL) {
    op_free(&o->base);
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
    op_free(&o->base);
    return KOTTE_ENOMEM;
  }
  int su = (f & KOTTE_CRED_USERNAME) != 0, sp = (f & KOTTE_CRED_PASSWORD) != 0;
  if (su != sp) {
    /* One secret: read first (the key of the other one matters). */
    return started(o, st->be->get(st->be, o->user_id, o->id, on_update_read, o));
  }
  /* Metadata only, or both secrets: one write, nothing to read. */
  kotte_cred_store *s = CRED_STORE(o);
  kotte_cred_patch p;
  kotte__blob ub = { NULL, 0 }, pb = { NULL, 0 };
  patch_metadata(u, kotte__cred_now(s), &p);
  if (su) {
    if ((rc = kotte__cred_seal(s, o->user_id, o->id, "username", u->username, &ub)) != 0 ||
        (rc = kotte__cred_seal(s, o->user_id, o->id, "password", u->password, &pb)) != 0) {
      kotte__blob_free(&ub);
      op_free(&o->base);
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

/* ---- op constructor for credential_rewrap.c ----------------------------- */

cred_op *kotte__cred_op_new(kotte_cred_store *st, void (*call)(kotte__op *), kotte__op_cb cb,
                            void *userdata) {
  return op_new(st, call, cb, userdata);
}
