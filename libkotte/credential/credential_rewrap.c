/* Online rewrap and key usage.
 *
 * A rewrap walks the records not sealed with the current key in rounds of
 * rewrap_batch (keyset pagination by id, so each is visited once), one
 * round per loop turn so other operations interleave. Each record is opened
 * with its old key, re-sealed with the current one and written back with a
 * compare-and-swap on both old blobs: a reader always finds a consistent
 * row (old blobs + old key id, or new blobs + new key id, both in the
 * ring), and a concurrent update is never overwritten. A lost swap re-reads
 * the record and tries again a few times; whatever is left shows up in the
 * final count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credential/credential_store_internal.h"

#define ITEM_TRIES 4

struct rewrap_state {
  char after[KOTTE_CRED_ID_LEN + 1]; /* last id scanned; "" before the first round */
  uint64_t rewrapped, failed;
  unsigned int outstanding; /* items of this round not finished */
  int in_round;             /* the scan callback is still starting items */
  int last_round;           /* the scan returned less than a batch */
  int error;
};

typedef struct rw_item {
  cred_op *parent;
  char id[KOTTE_CRED_ID_LEN + 1];
  char key_id[KOTTE_KEY_ID_LEN + 1];
  char *user_id;
  kotte__blob u, p; /* the old blobs: what the swap expects */
  int tries;
} rw_item;

void kotte__cred_rewrap_state_free(cred_op *o) {
  kotte__free(o->rw);
  o->rw = NULL;
}

static void item_free(rw_item *it) {
  kotte__free(it->user_id);
  kotte__blob_free(&it->u);
  kotte__blob_free(&it->p);
  kotte__free(it);
}

static int blob_copy(kotte__blob *b, const unsigned char *p, size_t n) {
  kotte__blob_free(b);
  if (p == NULL) return KOTTE_EINTEGRITY;
  b->p = kotte__malloc(n);
  if (b->p == NULL) return KOTTE_ENOMEM;
  memcpy(b->p, p, n);
  b->len = n;
  return 0;
}

/* Takes what the item needs from a record (valid only in its callback). */
static int item_load(rw_item *it, const kotte_cred_record *rec) {
  snprintf(it->key_id, sizeof it->key_id, "%s", rec->key_id ? rec->key_id : "");
  int rc = blob_copy(&it->u, rec->username, rec->username_len);
  if (rc == 0) rc = blob_copy(&it->p, rec->password, rec->password_len);
  return rc;
}

KOTTE__OP_CALL_RESULT(call_report, kotte_cred_report_cb)

static void free_report(void *r) { kotte_cred_report_free(r); }

static void round_start(kotte__op *base);
static void count_start(cred_op *o);

static void round_end(cred_op *o) {
  rewrap_state *rw = o->rw;
  if (rw->error) {
    kotte__cred_complete(o, rw->error);
  } else if (CRED_STORE(o)->base.closing) {
    kotte__cred_complete(o, KOTTE_ECANCELED);
  } else if (!rw->last_round) {
    kotte__op_defer(&o->base, round_start); /* next round on the next loop turn */
  } else {
    count_start(o);
  }
}

static void item_done(rw_item *it) {
  cred_op *o = it->parent;
  rewrap_state *rw = o->rw;
  item_free(it);
  if (--rw->outstanding == 0 && !rw->in_round) round_end(o);
}

static void item_failed(rw_item *it, int rc) {
  rewrap_state *rw = it->parent->rw;
  if (rc == KOTTE_EINTEGRITY || rc == KOTTE_EKEY) {
    rw->failed++;
    kotte__log(KOTTE_LOG_WARN, "credential rewrap: connection %s cannot be opened (%s); left "
                               "as it is", it->id, kotte_err_name(rc));
  } else if (rw->error == 0) {
    rw->error = rc;
  }
  item_done(it);
}

static void item_process(rw_item *it);

static void on_item_reread(int status, const kotte_cred_record *rec, void *ctx) {
  rw_item *it = ctx;
  kotte_cred_store *st = CRED_STORE(it->parent);
  if (status == KOTTE_ENOTFOUND ||
      (status == 0 && strcmp(rec->key_id, kotte_keyring_current_id(st->kr)) == 0)) {
    item_done(it); /* deleted, or re-sealed by someone else meanwhile */
    return;
  }
  if (status == 0) status = item_load(it, rec);
  if (status != 0) {
    item_failed(it, status);
    return;
  }
  item_process(it);
}

static void on_item_updated(int status, const kotte_cred_record *rec, void *ctx) {
  rw_item *it = ctx;
  cred_op *o = it->parent;
  kotte_cred_store *st = CRED_STORE(o);
  (void)rec;
  if (status == 0) {
    o->rw->rewrapped++;
    item_done(it);
  } else if (status == KOTTE_ECONFLICT && ++it->tries < ITEM_TRIES) {
    int rc = st->be->get(st->be, it->user_id, it->id, on_item_reread, it);
    if (rc != 0) item_failed(it, rc);
  } else if (status == KOTTE_ECONFLICT || status == KOTTE_ENOTFOUND) {
    item_done(it); /* kept changing or went away: the final count tells */
  } else {
    item_failed(it, status);
  }
}

static void item_process(rw_item *it) {
  kotte_cred_store *st = CRED_STORE(it->parent);
  char *user = NULL, *pass = NULL;
  kotte__blob nu = { NULL, 0 }, np = { NULL, 0 };
  int rc = kotte__cred_open(st, it->user_id, it->id, "username", it->key_id, it->u.p, it->u.len,
                            &user);
  if (rc == 0)
    rc = kotte__cred_open(st, it->user_id, it->id, "password", it->key_id, it->p.p, it->p.len,
                          &pass);
  if (rc == 0) rc = kotte__cred_seal(st, it->user_id, it->id, "username", user, &nu);
  if (rc == 0) rc = kotte__cred_seal(st, it->user_id, it->id, "password", pass, &np);
  kotte_secret_free(user);
  kotte_secret_free(pass);
  if (rc == 0) {
    kotte_cred_patch p;
    memset(&p, 0, sizeof p);
    p.set = KOTTE_CRED_SET_USERNAME | KOTTE_CRED_SET_PASSWORD | KOTTE_CRED_SET_KEY_ID;
    p.username = nu.p;
    p.username_len = nu.len;
    p.password = np.p;
    p.password_len = np.len;
    p.key_id = kotte_keyring_current_id(st->kr);
    p.expect_username = it->u.p;
    p.expect_username_len = it->u.len;
    p.expect_password = it->p.p;
    p.expect_password_len = it->p.len;
    rc = st->be->update(st->be, it->user_id, it->id, &p, on_item_updated, it);
  }
  kotte__blob_free(&nu);
  kotte__blob_free(&np);
  if (rc != 0) item_failed(it, rc);
}

static void on_scan(int status, const kotte_cred_record *recs, size_t n, void *ctx) {
  cred_op *o = ctx;
  rewrap_state *rw = o->rw;
  if (status != 0) {
    kotte__cred_complete(o, status);
    return;
  }
  rw->last_round = n < CRED_STORE(o)->opts.rewrap_batch;
  if (n > 0) snprintf(rw->after, sizeof rw->after, "%s", recs[n - 1].id);
  /* Copy every record first: items may call into the backend, and the
   * records are only valid during this callback. */
  rw_item **items = kotte__calloc(n ? n : 1, sizeof *items);
  if (items == NULL) {
    kotte__cred_complete(o, KOTTE_ENOMEM);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    rw_item *it = kotte__calloc(1, sizeof *it);
    if (it == NULL || (it->user_id = kotte__strdup(recs[i].user_id)) == NULL) {
      if (it) item_free(it);
      rw->error = KOTTE_ENOMEM;
      continue;
    }
    it->parent = o;
    snprintf(it->id, sizeof it->id, "%s", recs[i].id);
    int rc = item_load(it, &recs[i]);
    if (rc == KOTTE_ENOMEM) {
      item_free(it);
      rw->error = rc;
      continue;
    }
    items[i] = it;
  }
  rw->in_round = 1;
  for (size_t i = 0; i < n; i++) {
    if (items[i] == NULL) continue;
    rw->outstanding++;
    if (items[i]->u.p == NULL || items[i]->p.p == NULL) item_failed(items[i], KOTTE_EINTEGRITY);
    else item_process(items[i]);
  }
  kotte__free(items);
  rw->in_round = 0;
  if (rw->outstanding == 0) round_end(o);
}

static void round_start(kotte__op *base) {
  cred_op *o = (cred_op *)base;
  kotte_cred_store *st = CRED_STORE(o);
  rewrap_state *rw = o->rw;
  int rc = st->be->scan_stale(st->be, kotte_keyring_current_id(st->kr),
                              rw->after[0] ? rw->after : NULL, st->opts.rewrap_batch, on_scan, o);
  if (rc != 0) kotte__cred_complete(o, rc);
}

/* ---- key usage ---------------------------------------------------------- */

static int by_id(const void *a, const void *b) {
  return strcmp(((const kotte__key_usage *)a)->id, ((const kotte__key_usage *)b)->id);
}

static void on_counts(int status, const kotte_cred_key_count *counts, size_t n, void *ctx) {
  cred_op *o = ctx;
  kotte_cred_store *st = CRED_STORE(o);
  rewrap_state *rw = o->rw;
  if (status != 0) {
    kotte__cred_complete(o, status);
    return;
  }
  kotte_cred_report *r = kotte__calloc(1, sizeof *r);
  if (r) r->keys = kotte__calloc(n ? n : 1, sizeof *r->keys);
  if (r == NULL || r->keys == NULL) {
    kotte_cred_report_free(r);
    kotte__cred_complete(o, KOTTE_ENOMEM);
    return;
  }
  const char *current = kotte_keyring_current_id(st->kr);
  r->rewrapped = rw->rewrapped;
  r->failed = rw->failed;
  for (size_t i = 0; i < n; i++) {
    kotte__key_usage *k = &r->keys[r->n++];
    snprintf(k->id, sizeof k->id, "%s", counts[i].key_id ? counts[i].key_id : "");
    k->records = counts[i].count;
    k->current = strcmp(k->id, current) == 0;
    k->in_ring = kotte_keyring_has_key(st->kr, k->id);
    if (!k->current) r->stale += k->records;
  }
  qsort(r->keys, r->n, sizeof *r->keys, by_id);
  kotte__op_set_result(&o->base, r, free_report);
  kotte__log(KOTTE_LOG_INFO, "credential keys: %llu re-sealed, %llu could not be opened, %llu "
                             "still under other keys than %s",
             (unsigned long long)r->rewrapped, (unsigned long long)r->failed,
             (unsigned long long)r->stale, current);
  kotte__cred_complete(o, 0);
}

static void count_start(cred_op *o) {
  kotte_cred_store *st = CRED_STORE(o);
  int rc = st->be->count_keys(st->be, on_counts, o);
  if (rc != 0) kotte__cred_complete(o, rc);
}

static int start_report(kotte_cred_store *st, kotte_cred_report_cb cb, void *userdata,
                        int rewrap) {
  KOTTE__STORE_ENTER(st, cb);
  if (st->be->count_keys == NULL || (rewrap && st->be->scan_stale == NULL))
    return kotte__fail(KOTTE_ENOTSUP, "the %s credential backend cannot %s", st->be->name,
                       rewrap ? "rewrap" : "count keys");
  cred_op *o = kotte__cred_op_new(st, call_report, (kotte__op_cb)cb, userdata);
  if (o == NULL) return KOTTE_ENOMEM;
  o->rw = kotte__calloc(1, sizeof *o->rw);
  if (o->rw == NULL) return kotte__op_started(&o->base, KOTTE_ENOMEM);
  int rc = rewrap ? st->be->scan_stale(st->be, kotte_keyring_current_id(st->kr), NULL,
                                       st->opts.rewrap_batch, on_scan, o)
                  : st->be->count_keys(st->be, on_counts, o);
  return kotte__op_started(&o->base, rc);
}

int kotte_cred_rewrap(kotte_cred_store *st, kotte_cred_report_cb cb, void *userdata) {
  return start_report(st, cb, userdata, 1);
}

int kotte_cred_key_usage(kotte_cred_store *st, kotte_cred_report_cb cb, void *userdata) {
  return start_report(st, cb, userdata, 0);
}
