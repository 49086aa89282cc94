/* Private: the credential store's state, shared by credential_store.c and
 * credential_rewrap.c. */
#ifndef KOTTE_CREDENTIAL_STORE_INTERNAL_H
#define KOTTE_CREDENTIAL_STORE_INTERNAL_H

#include "core/defer.h"
#include "runtime/runtime_internal.h"
#include "credential/credential_internal.h"

typedef enum op_kind {
  OP_CRED,   /* result: a record */
  OP_STATUS, /* result: status only */
  OP_LIST,   /* result: a list */
  OP_REPORT  /* result: a report */
} op_kind;

/* An update's copied input (secrets wiped when freed). */
typedef struct cred_update {
  unsigned int fields;
  char *name, *host, *database, *sslmode, *username, *password;
  int port;
} cred_update;

typedef struct rewrap_state rewrap_state;

typedef struct cred_op cred_op;
struct cred_op {
  kotte_cred_store *store;
  op_kind kind;
  int starting;           /* the starting call is still on the stack */
  kotte__deferred link;    /* in the store's deferred queue */
  void (*then)(cred_op *o); /* what the deferred queue does with it */
  union {
    kotte_cred_cb cred;
    kotte_cred_status_cb status;
    kotte_cred_list_cb list;
    kotte_cred_report_cb report;
  } cb;
  void *userdata;
  int status;
  kotte_cred *cred;
  kotte_cred_list *list;
  kotte_cred_report *report;
  char *user_id;
  char id[KOTTE_CRED_ID_LEN + 1];
  cred_update *upd;
  int tries;
  rewrap_state *rw;
  char *detail; /* kotte_error_detail() for the callback, or NULL */
};

struct kotte_cred_store {
  uv_loop_t *loop;
  kotte_runtime *rt;
  kotte_cred_backend *be;
  kotte_keyring *kr; /* the store's own reference */
  kotte_cred_options opts;
  kotte__defer_queue defer;
  unsigned int pending;
  int closing;
  /* for kotte_cred_store_free() on a runtime store: signalled when gone */
  kotte__waiter *free_waiter; /* set while a thread waits in *_free() */
};

typedef struct kotte__blob {
  unsigned char *p;
  size_t len;
} kotte__blob;

/* Ends @p o with @p status: delivered now, or on the next loop turn if its
 * starting call is still on the stack. */
void kotte__cred_complete(cred_op *o, int status);

/* Runs @p run(o) on the next loop turn. */
void kotte__cred_enqueue(cred_op *o, void (*run)(cred_op *));

/* A report op for rewrap and key usage, and the end of its start. */
cred_op *kotte__cred_op_new(kotte_cred_store *st, void *cb, void *userdata);
int kotte__cred_op_started(cred_op *o, int rc);

/* Frees a rewrap op's state (NULL-safe on o->rw). */
void kotte__cred_rewrap_state_free(cred_op *o);

kotte_time kotte__cred_now(const kotte_cred_store *st);

/* Seals @p plaintext for field @p field of connection @p id of @p user_id
 * under the current key; out->p is kotte__malloc memory. */
int kotte__cred_seal(kotte_cred_store *st, const char *user_id, const char *id,
                     const char *field, const char *plaintext, kotte__blob *out);

/* Opens one blob of a record whose row names @p key_id; *out from
 * kotte_keyring_open(). KOTTE_EINTEGRITY also when the blob names another
 * key than the row. */
int kotte__cred_open(kotte_cred_store *st, const char *user_id, const char *id,
                     const char *field, const char *key_id, const unsigned char *blob,
                     size_t len, char **out);

void kotte__blob_free(kotte__blob *b);

/* Wipes and frees a kotte__strdup() copy of a secret. */
void kotte__cred_secret_dup_free(char *s);

#endif
