/* kotte-server: the saved-connection store behind /api/v1/connections. */
#ifndef KS_CREDS_H
#define KS_CREDS_H

#include <stddef.h>

#include <uv.h>

#include "config.h"

typedef struct ks_creds ks_creds;

/* Opens the store configured by CREDENTIAL_STORAGE_TYPE. *out stays NULL
 * (and 0 is returned) when this build has no credential store. */
int ks_creds_open(ks_creds **out, uv_loop_t *loop, const ks_config *cfg, char *err,
                  size_t errlen);
/* The backend's name, "none" for NULL. */
const char *ks_creds_backend(const ks_creds *c);
/* Readiness: calls back later with 0 when the store answers. */
void ks_creds_ping(ks_creds *c, void (*cb)(int status, void *ud), void *ud);
/* Frees the store; operations in flight end with KOTTE_ECANCELED. */
void ks_creds_close(ks_creds *c);

#endif
