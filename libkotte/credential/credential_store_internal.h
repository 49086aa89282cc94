/* Private: the credential store's state, shared by credential_store.c and
 * credential_rewrap.c. */
#ifndef KOTTE_CREDENTIAL_STORE_INTERNAL_H
#define KOTTE_CREDENTIAL_STORE_INTERNAL_H

#include "core/store.h"
#include "credential/credential_internal.h"
#include "runtime/runtime_internal.h"

/* An update's copied input (secrets wiped when freed). */
typedef struct cred_update {
  unsigned int fields;
  char *name, *host, *database, *sslmode, *username, *password;
  int port;
} cred_update;

typedef struct rewrap_state rewrap_state;

/* An operation of the credential store (core/store.h's op first: its
 * result is a kotte_cred, a list or a report). */
typedef struct cred_op {
  kotte__op base;
  char *user_id;
  char id[KOTTE_CRED_ID_LEN + 1];
  cred_update *upd;
  int tries;
  rewrap_state *rw;
} cred_op;

/* The store an operation belongs to. */
#define CRED_STORE(o) ((kotte_cred_store *)(o)->base.store)

struct kotte_cred_store {
  kotte__store base; /* first */
  kotte_cred_backend *be;
  kotte_keyring *kr; /* the store's own reference */
  kotte_cred_options opts;
};

typedef struct kotte__blob {
  unsigned char *p;
  size_t len;
} kotte__blob;

/* Ends @p o with @p status (kotte__op_complete()). */
static inline void kotte__cred_complete(cred_op *o, int status) {
  kotte__op_complete(&o->base, status);
}

/* An op of the store for credential_rewrap.c (rewrap and key usage), which
 * @p call delivers; its start ends in kotte__op_started(). */
cred_op *kotte__cred_op_new(kotte_cred_store *st, void (*call)(kotte__op *), kotte__op_cb cb,
                            void *userdata);

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
