/* /api/v1/connections: saved database connections. */
#include "creds.h"
#include "server.h"

static void not_available(ks_ex *ex) {
  ks_reply_error(ex, 501, "INTERNAL_ERROR", "internal",
                 "Saved connections are not available in this build", NULL, 0);
}

void ks_h_connections_list(ks_ex *ex) { not_available(ex); }
void ks_h_connections_create(ks_ex *ex) { not_available(ex); }
void ks_h_connection_get(ks_ex *ex) { not_available(ex); }
void ks_h_connection_delete(ks_ex *ex) { not_available(ex); }
