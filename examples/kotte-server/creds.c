/* The saved-connection store. Waits for libkotte's credential store
 * (include/kotte/credential.h); until then the server has none and
 * /api/v1/connections answers 501. */
#include "creds.h"

int ks_creds_open(ks_creds **out, uv_loop_t *loop, const ks_config *cfg, char *err,
                  size_t errlen) {
  (void)loop;
  (void)cfg;
  (void)err;
  (void)errlen;
  *out = NULL;
  return 0;
}

const char *ks_creds_backend(const ks_creds *c) {
  (void)c;
  return "none";
}

void ks_creds_ping(ks_creds *c, void (*cb)(int status, void *ud), void *ud) {
  (void)c;
  (void)cb;
  (void)ud;
}

void ks_creds_close(ks_creds *c) { (void)c; }
