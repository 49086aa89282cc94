/* /api/v1/connections: saved database connections, as Kotte's
 * connections router answers them, over libkotte's credential store. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "creds.h"
#include "log.h"
#include "server.h"

static void not_available(ks_ex *ex) {
  /* only while the server shuts down: the store is closed */
  ks_reply_store_error(ex, KOTTE_ECLOSED, "Credential store");
}

static kotte_cred_store *store_of(ks_ex *ex) { return ks_creds_store(ex->srv->creds); }

static void not_found(ks_ex *ex) {
  char msg[200];
  snprintf(msg, sizeof msg, "Connection '%s' not found", ex->param);
  ks_reply_error(ex, 404, "CONNECTION_NOT_FOUND", "not_found", msg, NULL, 0);
}

/* Kotte answers 500 with these messages for anything unexpected; the
 * cause goes to the log only. */
static void failed(ks_ex *ex, int rc, const char *what, const char *message) {
  if (rc == KOTTE_ECANCELED || rc == KOTTE_ECLOSED || rc == KOTTE_EIO || rc == KOTTE_EDB ||
      rc == KOTTE_ETIMEDOUT || rc == KOTTE_EPOOLTIMEOUT || rc == KOTTE_ELOCK) {
    ks_reply_store_error(ex, rc, "Credential store"); /* 503, retryable */
    return;
  }
  cJSON *f = cJSON_CreateObject();
  if (f) {
    cJSON_AddStringToObject(f, "request_id", ex->request_id);
    cJSON_AddStringToObject(f, "error", kotte_err_name(rc));
    cJSON_AddStringToObject(f, "detail", kotte_error_detail());
  }
  ks_log(KOTTE_LOG_ERROR, what, f, message);
  ks_reply_error(ex, 500, "INTERNAL_ERROR", "internal", message, NULL, 0);
}

/* SavedConnectionResponse: metadata, never a secret. */
static cJSON *metadata(const kotte_cred *c) {
  cJSON *o = cJSON_CreateObject();
  if (o == NULL) return NULL;
  cJSON_AddStringToObject(o, "id", kotte_cred_id(c));
  cJSON_AddStringToObject(o, "name", kotte_cred_name(c));
  cJSON_AddStringToObject(o, "host", kotte_cred_host(c));
  cJSON_AddNumberToObject(o, "port", kotte_cred_port(c));
  cJSON_AddStringToObject(o, "database", kotte_cred_database(c));
  cJSON_AddStringToObject(o, "created_at", kotte_cred_created_at_iso(c));
  cJSON_AddStringToObject(o, "updated_at", kotte_cred_updated_at_iso(c));
  return o;
}

static void log_event(ks_ex *ex, const char *event, const char *id, const char *msg) {
  cJSON *f = cJSON_CreateObject();
  if (f) {
    cJSON_AddStringToObject(f, "request_id", ex->request_id);
    cJSON_AddStringToObject(f, "user_id", kotte_session_user_id(ex->session));
    if (id) cJSON_AddStringToObject(f, "connection_id", id);
  }
  ks_log(KOTTE_LOG_INFO, event, f, msg);
}

/* ---- list ---------------------------------------------------------------- */

static void on_list(int status, kotte_cred_list *list, void *ud) {
  ks_ex *ex = ud;
  if (status != 0) {
    failed(ex, status, "connections_list_failed", "Failed to list connections");
    return;
  }
  cJSON *arr = cJSON_CreateArray();
  for (size_t i = 0; arr && i < kotte_cred_list_count(list); i++)
    cJSON_AddItemToArray(arr, metadata(kotte_cred_list_get(list, i)));
  kotte_cred_list_free(list);
  ks_reply_json(ex, 200, arr);
}

void ks_h_connections_list(ks_ex *ex) {
  if (store_of(ex) == NULL) {
    not_available(ex);
    return;
  }
  int rc = kotte_cred_list_user(store_of(ex), kotte_session_user_id(ex->session), on_list, ex);
  if (rc != 0) failed(ex, rc, "connections_list_failed", "Failed to list connections");
}

/* ---- save ------------------------------------------------------------------- */

static void on_saved(int status, kotte_cred *c, void *ud) {
  ks_ex *ex = ud;
  if (status == KOTTE_EEXISTS) {
    char msg[200];
    snprintf(msg, sizeof msg, "Connection '%s' already exists", (char *)ex->hctx);
    ks_reply_error(ex, 422, "QUERY_VALIDATION_ERROR", "validation", msg, NULL, 0);
    return;
  }
  if (status == KOTTE_EINVAL) {
    /* the detail names the field and the rule, never a value */
    ks_reply_error(ex, 422, "QUERY_VALIDATION_ERROR", "validation", kotte_error_detail(), NULL, 0);
    return;
  }
  if (status != 0) {
    failed(ex, status, "connection_save_failed", "Failed to save connection");
    return;
  }
  log_event(ex, "connection_saved", kotte_cred_id(c), "saved connection for user");
  cJSON *b = metadata(c);
  kotte_cred_free(c);
  ks_reply_json(ex, 201, b);
}

/* Pydantic's rules for one field of SavedConnectionRequest; 0 or answers 422. */
static int str_field(ks_ex *ex, cJSON *body, const char *name, int optional, const char **out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
  *out = NULL;
  if (v == NULL || (optional && cJSON_IsNull(v))) {
    if (optional) return 0;
    ks_reply_invalid(ex, name, "Field required", "missing");
    return -1;
  }
  if (!cJSON_IsString(v)) {
    ks_reply_invalid(ex, name, "Input should be a valid string", "string_type");
    return -1;
  }
  *out = v->valuestring;
  return 0;
}

static size_t utf8_chars(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xc0) != 0x80) n++;
  return n;
}

void ks_h_connections_create(ks_ex *ex) {
  if (store_of(ex) == NULL) {
    not_available(ex);
    return;
  }
  cJSON *body = ks_body_object(ex);
  if (body == NULL) return;
  kotte_cred_input in = KOTTE_CRED_INPUT_INIT;
  int bad = str_field(ex, body, "name", 0, &in.name) || str_field(ex, body, "host", 0, &in.host);
  if (!bad) {
    const cJSON *port = cJSON_GetObjectItemCaseSensitive(body, "port");
    if (port == NULL) {
      ks_reply_invalid(ex, "port", "Field required", "missing");
      bad = 1;
    } else if (!cJSON_IsNumber(port) || !isfinite(port->valuedouble) ||
               port->valuedouble != floor(port->valuedouble)) {
      ks_reply_invalid(ex, "port", "Input should be a valid integer", "int_type");
      bad = 1;
    } else if (port->valuedouble < 1 || port->valuedouble > 65535) {
      ks_reply_invalid(ex, "port",
                       port->valuedouble < 1 ? "Input should be greater than or equal to 1"
                                             : "Input should be less than or equal to 65535",
                       port->valuedouble < 1 ? "greater_than_equal" : "less_than_equal");
      bad = 1;
    } else {
      in.port = (int)port->valuedouble;
    }
  }
  bad = bad || str_field(ex, body, "database", 0, &in.database) ||
        str_field(ex, body, "username", 0, &in.username) ||
        str_field(ex, body, "password", 0, &in.password) ||
        str_field(ex, body, "sslmode", 1, &in.sslmode);
  if (!bad) {
    size_t n = utf8_chars(in.name);
    if (n < 1 || n > 100) {
      ks_reply_invalid(ex, "name",
                       n < 1 ? "String should have at least 1 character"
                             : "String should have at most 100 characters",
                       n < 1 ? "string_too_short" : "string_too_long");
      bad = 1;
    }
  }
  char *name = bad ? NULL : ks_ex_ctx(ex, strlen(in.name) + 1);
  if (!bad && name == NULL) {
    ks_reply_store_error(ex, KOTTE_ENOMEM, "Credential store");
    bad = 1;
  }
  if (!bad) {
    memcpy(name, in.name, strlen(in.name) + 1); /* for the duplicate message */
    in.fields = KOTTE_CRED_ALL;
    int rc = kotte_cred_save(store_of(ex), kotte_session_user_id(ex->session), &in, on_saved, ex);
    if (rc != 0) on_saved(rc, NULL, ex);
  }
  ks_json_wipe_delete(body); /* the store copied what it needs */
}

/* ---- get --------------------------------------------------------------------- */

static void on_get(int status, kotte_cred *c, void *ud) {
  ks_ex *ex = ud;
  if (status == KOTTE_ENOTFOUND) {
    not_found(ex);
    return;
  }
  if (status != 0) {
    failed(ex, status, "connection_get_failed", "Failed to retrieve connection");
    return;
  }
  log_event(ex, "connection_retrieved", kotte_cred_id(c), "retrieved connection for user");
  /* SavedConnectionDetail: the request's fields, then id and times */
  cJSON *o = cJSON_CreateObject();
  if (o) {
    cJSON_AddStringToObject(o, "name", kotte_cred_name(c));
    cJSON_AddStringToObject(o, "host", kotte_cred_host(c));
    cJSON_AddNumberToObject(o, "port", kotte_cred_port(c));
    cJSON_AddStringToObject(o, "database", kotte_cred_database(c));
    cJSON_AddStringToObject(o, "username", kotte_cred_username(c));
    cJSON_AddStringToObject(o, "password", kotte_cred_password(c));
    const char *ssl = kotte_cred_sslmode(c);
    if (ssl && *ssl) cJSON_AddStringToObject(o, "sslmode", ssl);
    else cJSON_AddNullToObject(o, "sslmode");
    cJSON_AddStringToObject(o, "id", kotte_cred_id(c));
    cJSON_AddStringToObject(o, "created_at", kotte_cred_created_at_iso(c));
    cJSON_AddStringToObject(o, "updated_at", kotte_cred_updated_at_iso(c));
  }
  kotte_cred_free(c); /* wipes the opened secrets */
  ks_reply_json(ex, 200, o); /* wipes the copies in the JSON and the text */
}

void ks_h_connection_get(ks_ex *ex) {
  if (store_of(ex) == NULL) {
    not_available(ex);
    return;
  }
  int rc = kotte_cred_get(store_of(ex), kotte_session_user_id(ex->session), ex->param, on_get, ex);
  if (rc != 0) on_get(rc, NULL, ex); /* e.g. not a UUID: KOTTE_ENOTFOUND at once */
}

/* ---- delete ---------------------------------------------------------------------- */

static void on_deleted(int status, void *ud) {
  ks_ex *ex = ud;
  if (status == KOTTE_ENOTFOUND) {
    not_found(ex);
    return;
  }
  if (status != 0) {
    failed(ex, status, "connection_delete_failed", "Failed to delete connection");
    return;
  }
  log_event(ex, "connection_deleted", ex->param, "deleted connection for user");
  ks_reply_raw(ex, 204, NULL, NULL, 0);
}

void ks_h_connection_delete(ks_ex *ex) {
  if (store_of(ex) == NULL) {
    not_available(ex);
    return;
  }
  int rc = kotte_cred_delete(store_of(ex), kotte_session_user_id(ex->session), ex->param,
                             on_deleted, ex);
  if (rc != 0) on_deleted(rc, ex);
}
