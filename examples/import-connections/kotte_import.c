/* Importing Kotte's connections.json: parse, decrypt, validate in a
 * throw-away memory store, check the target for conflicts, then write. */
#include "kotte_import.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fernet.h"

typedef struct imp_conn {
  char *user_id;
  char id[KOTTE_CRED_ID_LEN + 1];
  char *name, *host, *database, *sslmode; /* sslmode NULL: Kotte's None */
  int port;
  char *username, *password; /* plaintext, wiped on free */
  size_t username_len, password_len;
  kotte_time created_at, updated_at;
  int present; /* write: already in the target */
} imp_conn;

struct kotte_import_set {
  size_t n, cap;
  imp_conn *c;
};

static int fail(kotte_import_report *rep, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rep->message, sizeof rep->message, fmt, ap);
  va_end(ap);
  return rc;
}

void kotte_import_set_free(kotte_import_set *set) {
  if (set == NULL) return;
  for (size_t i = 0; i < set->n; i++) {
    imp_conn *c = &set->c[i];
    free(c->user_id);
    free(c->name);
    free(c->host);
    free(c->database);
    free(c->sslmode);
    kotte_fernet_free(c->username, c->username_len);
    kotte_fernet_free(c->password, c->password_len);
  }
  free(set->c);
  free(set);
}

/* ---- times -------------------------------------------------------------- */

static int digits(const char **p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if ((*p)[i] < '0' || (*p)[i] > '9') return -1;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  *out = v;
  return 0;
}

int kotte_import_parse_time(const char *s, kotte_time *out) {
  if (s == NULL) return -1;
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  int y, mo, d, h, mi, sec;
  const char *p = s;
  if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
      digits(&p, 2, &d) || (*p != 'T' && *p != ' ') || !*p++ || digits(&p, 2, &h) ||
      *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &sec))
    return -1;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return -1;
  int64_t us = 0;
  if (*p == '.') {
    p++;
    int n = 0;
    while (p[n] >= '0' && p[n] <= '9') n++;
    if (n == 0) return -1;
    for (int i = 0; i < 6; i++) us = us * 10 + (i < n ? p[i] - '0' : 0);
    p += n;
  }
  int64_t offset = 0;
  if (*p == 'Z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int sign = *p++ == '-' ? -1 : 1, oh, om;
    if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om)) return -1;
    offset = sign * (oh * 3600 + om * 60);
  }
  if (*p != '\0') return -1;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  int64_t t = (int64_t)timegm(&tm) - offset;
  *out = t * 1000000 + us;
  return 0;
}

/* ---- loading ------------------------------------------------------------ */

static const char *str_of(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static imp_conn *set_add(kotte_import_set *set) {
  if (set->n == set->cap) {
    size_t cap = set->cap ? 2 * set->cap : 16;
    imp_conn *c = realloc(set->c, cap * sizeof *c);
    if (c == NULL) return NULL;
    set->c = c;
    set->cap = cap;
  }
  imp_conn *c = &set->c[set->n++];
  memset(c, 0, sizeof *c);
  return c;
}

static const char *field_name(int which) { return which ? "password" : "username"; }

/* One connection of one user: fields, then both secrets. */
static int load_conn(kotte_import_set *set, const char *user, const unsigned char *key,
                     const cJSON *conn, kotte_import_report *rep) {
  const char *id = conn->string;
  if (strlen(id) != KOTTE_CRED_ID_LEN)
    return fail(rep, KOTTE_EBADJSON, "user %s: \"%s\" is not a connection id (a UUID)", user, id);
  const char *inner_id = str_of(conn, "id"), *inner_user = str_of(conn, "user_id");
  if ((inner_id && strcmp(inner_id, id) != 0) || (inner_user && strcmp(inner_user, user) != 0))
    return fail(rep, KOTTE_EBADJSON, "connection %s of user %s: its id or user_id field "
                                     "disagrees with where it is filed", id, user);
  const cJSON *port = cJSON_GetObjectItemCaseSensitive(conn, "port");
  const cJSON *ssl = cJSON_GetObjectItemCaseSensitive(conn, "sslmode");
  const char *name = str_of(conn, "name"), *host = str_of(conn, "host");
  const char *db = str_of(conn, "database");
  const char *enc[2] = { str_of(conn, "encrypted_username"), str_of(conn, "encrypted_password") };
  kotte_time created, updated;
  if (!name || !host || !db || !cJSON_IsNumber(port) || !enc[0] || !enc[1] ||
      (ssl && !cJSON_IsNull(ssl) && !cJSON_IsString(ssl)))
    return fail(rep, KOTTE_EBADJSON, "connection %s of user %s: a field is missing or of the "
                                     "wrong type", id, user);
  if (kotte_import_parse_time(str_of(conn, "created_at"), &created) != 0 ||
      kotte_import_parse_time(str_of(conn, "updated_at"), &updated) != 0)
    return fail(rep, KOTTE_EBADJSON, "connection %s of user %s: created_at or updated_at is not "
                                     "an ISO 8601 time", id, user);
  imp_conn *c = set_add(set);
  if (c == NULL) return fail(rep, KOTTE_ENOMEM, "out of memory");
  snprintf(c->id, sizeof c->id, "%s", id);
  c->user_id = strdup(user);
  c->name = strdup(name);
  c->host = strdup(host);
  c->database = strdup(db);
  c->sslmode = cJSON_IsString(ssl) ? dup_or_null(ssl->valuestring) : NULL;
  /* in range before the cast (a cast of 1e300 to int is undefined); the
   * store refuses -1 with a clear error */
  double pv = port->valuedouble;
  c->port = pv >= 1 && pv <= 65535 && pv == (int)pv ? (int)pv : -1;
  c->created_at = created;
  c->updated_at = updated;
  if (!c->user_id || !c->name || !c->host || !c->database || (cJSON_IsString(ssl) && !c->sslmode))
    return fail(rep, KOTTE_ENOMEM, "out of memory");
  for (int which = 0; which < 2; which++) {
    char *plain;
    size_t plen;
    int rc = kotte_fernet_open(key, enc[which], &plain, &plen);
    if (rc == KOTTE_FERNET_BAD_KEY)
      return fail(rep, KOTTE_EINTEGRITY,
                  "connection %s of user %s does not decrypt with the MASTER_ENCRYPTION_KEY "
                  "given: it is not the key this Kotte installation used (or the file was "
                  "altered). Nothing was written.", id, user);
    if (rc == KOTTE_FERNET_BAD_FORMAT)
      return fail(rep, KOTTE_EBADJSON, "connection %s of user %s: encrypted_%s is not a Fernet "
                                       "token", id, user, field_name(which));
    if (rc == KOTTE_FERNET_BAD_PLAIN)
      return fail(rep, KOTTE_EINTEGRITY, "connection %s of user %s: encrypted_%s verifies but "
                                         "does not decrypt", id, user, field_name(which));
    if (rc != KOTTE_FERNET_OK) return fail(rep, KOTTE_ENOMEM, "out of memory");
    if (which == 0) c->username = plain, c->username_len = plen;
    else c->password = plain, c->password_len = plen;
  }
  return 0;
}

static kotte_cred_input input_of(const imp_conn *c) {
  kotte_cred_input in = KOTTE_CRED_INPUT_INIT;
  in.name = c->name;
  in.host = c->host;
  in.port = c->port;
  in.database = c->database;
  in.sslmode = c->sslmode;
  in.username = c->username;
  in.password = c->password;
  in.id = c->id;
  in.created_at = c->created_at;
  in.updated_at = c->updated_at;
  return in;
}

/* Every rule of the store, applied in a memory store nobody sees. */
static int dry_run(const kotte_import_set *set, kotte_keyring *kr, kotte_import_report *rep) {
  kotte_runtime *rt = NULL;
  kotte_cred_backend *be = NULL;
  kotte_cred_store *st = NULL;
  int rc = kotte_runtime_new(&rt, NULL);
  if (rc == 0) rc = kotte_cred_backend_memory_new(&be);
  if (rc == 0 && (rc = kotte_cred_store_open(&st, rt, be, kr, NULL)) != 0)
    kotte_cred_backend_free(be);
  if (rc != 0) {
    kotte_runtime_free(rt);
    return fail(rep, rc, "cannot start a validation store: %s", kotte_strerror(rc));
  }
  for (size_t i = 0; rc == 0 && i < set->n; i++) {
    const imp_conn *c = &set->c[i];
    kotte_cred_input in = input_of(c);
    rc = kotte_cred_save_sync(st, c->user_id, &in, NULL, 30000);
    if (rc == KOTTE_EEXISTS)
      fail(rep, rc, "connection %s of user %s: its name or id appears twice in the file",
           c->id, c->user_id);
    else if (rc != 0)
      fail(rep, rc, "connection %s of user %s cannot be stored: %s (%s)", c->id, c->user_id,
           kotte_strerror(rc), kotte_error_detail());
  }
  kotte_cred_store_free(st);
  kotte_runtime_free(rt);
  return rc;
}

int kotte_import_load(const char *json, size_t len, const char *kotte_key, kotte_keyring *kr,
                      kotte_import_set **out, kotte_import_report *rep) {
  memset(rep, 0, sizeof *rep);
  *out = NULL;
  if (kotte_key == NULL || strlen(kotte_key) < KOTTE_FERNET_KEY_BYTES)
    return fail(rep, KOTTE_EKEY, "Kotte's MASTER_ENCRYPTION_KEY must be at least 32 bytes "
                                 "(Kotte used its first 32 bytes); the one given is shorter");
  cJSON *root = json ? cJSON_ParseWithLength(json, len) : NULL;
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return fail(rep, KOTTE_EBADJSON, "not Kotte's connections.json: not a JSON object");
  }
  kotte_import_set *set = calloc(1, sizeof *set);
  int rc = set ? 0 : fail(rep, KOTTE_ENOMEM, "out of memory");
  for (const cJSON *u = root->child; rc == 0 && u; u = u->next) {
    if (strncmp(u->string, "user:", 5) != 0 || u->string[5] == '\0' || !cJSON_IsObject(u)) {
      rc = fail(rep, KOTTE_EBADJSON, "not Kotte's connections.json: top-level entries must be "
                                     "\"user:<id>\" objects");
      break;
    }
    const char *user = u->string + 5;
    rep->users++;
    if (u->child == NULL) continue;
    unsigned char key[KOTTE_FERNET_KEY_BYTES];
    if (kotte_fernet_user_key(kotte_key, strlen(kotte_key), user, key) != 0) {
      rc = fail(rep, KOTTE_EINTERNAL, "key derivation failed");
      break;
    }
    for (const cJSON *c = u->child; rc == 0 && c; c = c->next) {
      if (!cJSON_IsObject(c)) {
        rc = fail(rep, KOTTE_EBADJSON, "user %s: connection entries must be objects", user);
        break;
      }
      rc = load_conn(set, user, key, c, rep);
      if (rc == 0) rep->connections++;
    }
    OPENSSL_cleanse(key, sizeof key);
  }
  cJSON_Delete(root);
  if (rc == 0) rc = dry_run(set, kr, rep);
  if (rc != 0) {
    kotte_import_set_free(set);
    return rc;
  }
  *out = set;
  return 0;
}

/* ---- writing ------------------------------------------------------------ */

int kotte_import_write(kotte_cred_store *st, const kotte_import_set *set,
                       kotte_import_report *rep, int timeout_ms) {
  rep->imported = rep->skipped = 0;
  rep->message[0] = '\0';
  /* 1. What is there already: skip those; refuse name clashes up front. */
  for (size_t i = 0; i < set->n; i++) {
    imp_conn *c = &set->c[i];
    kotte_cred *have = NULL;
    int rc = kotte_cred_get_sync(st, c->user_id, c->id, &have, timeout_ms);
    c->present = rc == 0;
    kotte_cred_free(have);
    if (rc != 0 && rc != KOTTE_ENOTFOUND && rc != KOTTE_EINTEGRITY && rc != KOTTE_EKEY)
      return fail(rep, rc, "cannot read the target: %s (%s)", kotte_strerror(rc),
                  kotte_error_detail());
    if (rc == KOTTE_EINTEGRITY || rc == KOTTE_EKEY) c->present = 1; /* there, sealed otherwise */
  }
  for (size_t i = 0; i < set->n; i++) {
    const imp_conn *c = &set->c[i];
    if (c->present) continue;
    kotte_cred_list *l = NULL;
    int rc = kotte_cred_list_user_sync(st, c->user_id, &l, timeout_ms);
    if (rc != 0)
      return fail(rep, rc, "cannot read the target: %s (%s)", kotte_strerror(rc),
                  kotte_error_detail());
    for (size_t k = 0; k < kotte_cred_list_count(l); k++) {
      const kotte_cred *x = kotte_cred_list_get(l, k);
      if (strcmp(kotte_cred_name(x), c->name) == 0) {
        fail(rep, KOTTE_EEXISTS, "user %s already has a connection named \"%s\" in the target "
                                 "(id %s, not %s); rename or delete one of them and run the "
                                 "import again. Nothing was written.",
             c->user_id, c->name, kotte_cred_id(x), c->id);
        kotte_cred_list_free(l);
        return KOTTE_EEXISTS;
      }
    }
    kotte_cred_list_free(l);
  }
  /* 2. Write. */
  for (size_t i = 0; i < set->n; i++) {
    const imp_conn *c = &set->c[i];
    if (c->present) {
      rep->skipped++;
      continue;
    }
    kotte_cred_input in = input_of(c);
    int rc = kotte_cred_save_sync(st, c->user_id, &in, NULL, timeout_ms);
    if (rc != 0)
      return fail(rep, rc, "connection %s of user %s: %s (%s); %zu of %zu were written, run "
                           "the import again to finish", c->id, c->user_id, kotte_strerror(rc),
                  kotte_error_detail(), rep->imported, set->n);
    rep->imported++;
  }
  return 0;
}
