/* kotte-server: the saved-connection store behind /api/v1/connections:
 * libkotte's credential store (kotte/credential.h) on the server's loop,
 * its key ring from MASTER_ENCRYPTION_KEY (and _KEYS_PREVIOUS). */
#ifndef KS_CREDS_H
#define KS_CREDS_H

#include <stddef.h>

#include <uv.h>

#include <kotte.h>
#include <kotte/pg.h>

#include "config.h"

typedef struct ks_creds ks_creds;

/* The key ring of MASTER_ENCRYPTION_KEY (and _KEYS_PREVIOUS), or, outside
 * production, of the development key file described below. The credential
 * store seals with it; the session store opens with it the secrets libkotte's
 * Python drop-in seals into sessions (the password of connection_config).
 * The caller frees it with kotte_keyring_free(). */
int ks_keyring_open(const ks_config *cfg, kotte_keyring **kr, char *err, size_t errlen);

/* Opens the store configured by CREDENTIAL_STORAGE_TYPE (postgresql: on
 * table kotte_credentials through @p pool, which it borrows). Without
 * MASTER_ENCRYPTION_KEY, outside production, the key is the development
 * key file ".master_encryption_key" beside CREDENTIAL_STORAGE_PATH (read,
 * or created once), as Kotte and libkotte's Python drop-in do. */
int ks_creds_open(ks_creds **out, uv_loop_t *loop, kotte_pg_pool *pool, const ks_config *cfg,
                  char *err, size_t errlen);
/* The key ring from MASTER_ENCRYPTION_KEY (and _KEYS_PREVIOUS), or the
 * development key file as above; *kr is the caller's (kotte_keyring_free).
 * The session store seals its marked secrets (the CSRF token) with it too. */
int ks_keyring_open(const ks_config *cfg, kotte_keyring **kr, char *err, size_t errlen);
/* The secret the json_file session backend derives its keys from (hashed
 * and sealed ids at rest): as for PostgreSQL, SESSION_SECRET_KEY or a key
 * derived from MASTER_ENCRYPTION_KEY; outside production, without either,
 * derived from the development key file the same way (so Kotte's Python
 * drop-in opens the same journal). *out is sodium_malloc'd (sodium_free). */
int ks_session_secret(const ks_config *cfg, unsigned char **out, size_t *len, char *err,
                      size_t errlen);
/* The store (NULL for NULL). */
kotte_cred_store *ks_creds_store(ks_creds *c);
/* The backend's name, "none" for NULL. */
const char *ks_creds_backend(const ks_creds *c);
/* Readiness (kotte_cred_store_check()): calls back later with 0 when the
 * store answers and, for json_file, its journal can be written. */
void ks_creds_ping(ks_creds *c, void (*cb)(int status, void *ud), void *ud);
/* Frees the store; operations in flight end with KOTTE_ECANCELED. */
void ks_creds_close(ks_creds *c);

#endif
