/* Credential journal records: building lines and replaying them. */
#include <sodium.h>
#include <string.h>

#include "core/json.h"
#include "credential/credential_journal.h"

/* cJSON_Add*ToObject return NULL on failure; collect that in one flag. */
#define ADD(ok, expr) ((ok) = (ok) && (expr) != NULL)

static int add_blob(cJSON *j, const char *key, const unsigned char *p, size_t n) {
  size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
  char *s = kotte__malloc(cap);
  if (s == NULL) return 0;
  sodium_bin2base64(s, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
  int ok = cJSON_AddStringToObject(j, key, s) != NULL;
  kotte__free(s);
  return ok;
}

void kotte__cred_journal_put(kotte__journal_buf *b, const kotte__cred_entry *e) {
  cJSON *j = cJSON_CreateObject();
  int ok = j != NULL;
  ADD(ok, cJSON_AddStringToObject(j, "op", "put"));
  ADD(ok, cJSON_AddStringToObject(j, "id", e->id));
  ADD(ok, cJSON_AddStringToObject(j, "u", e->user->user_id));
  ADD(ok, cJSON_AddStringToObject(j, "n", e->name));
  ADD(ok, cJSON_AddStringToObject(j, "h", e->host));
  ADD(ok, cJSON_AddNumberToObject(j, "p", e->port));
  ADD(ok, cJSON_AddStringToObject(j, "db", e->database));
  ADD(ok, cJSON_AddStringToObject(j, "ssl", e->sslmode));
  ok = ok && add_blob(j, "un", e->username, e->username_len);
  ok = ok && add_blob(j, "pw", e->password, e->password_len);
  ADD(ok, cJSON_AddStringToObject(j, "k", e->key_id));
  ADD(ok, cJSON_AddNumberToObject(j, "c", (double)e->created_at));
  ADD(ok, cJSON_AddNumberToObject(j, "m", (double)e->updated_at));
  if (!ok) {
    cJSON_Delete(j);
    j = NULL;
  }
  kotte__journal_buf_line(b, j);
}

void kotte__cred_journal_del(kotte__journal_buf *b, const char *id) {
  cJSON *j = cJSON_CreateObject();
  int ok = j != NULL;
  ADD(ok, cJSON_AddStringToObject(j, "op", "del"));
  ADD(ok, cJSON_AddStringToObject(j, "id", id));
  if (!ok) {
    cJSON_Delete(j);
    j = NULL;
  }
  kotte__journal_buf_line(b, j);
}

/* ---- replay ------------------------------------------------------------- */

static const char *get_str(const cJSON *j, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *get_text(const cJSON *j, const char *k) {
  const char *s = get_str(j, k);
  return s && kotte__utf8_valid(s, strlen(s)) ? s : NULL;
}

static int get_num(const cJSON *j, const char *k, double *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
  if (!cJSON_IsNumber(v)) return -1;
  *out = v->valuedouble;
  return 0;
}

static int is_key_id(const char *s) {
  if (s == NULL || strlen(s) != KOTTE_KEY_ID_LEN) return 0;
  for (const char *p = s; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
  return 1;
}

/* Decodes a base64 blob into kotte__malloc memory; -1 if invalid. */
static int get_blob(const cJSON *j, const char *k, unsigned char **out, size_t *len) {
  const char *s = get_str(j, k);
  *out = NULL;
  if (s == NULL) return -1;
  size_t n = strlen(s);
  unsigned char *p = kotte__malloc(n ? n : 1);
  if (p == NULL) return -1;
  const char *end = NULL;
  if (sodium_base642bin(p, n, s, n, NULL, len, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != s + n || *len < KOTTE_SEAL_OVERHEAD) {
    kotte__free(p);
    return -1;
  }
  *out = p;
  return 0;
}

static int apply_put(kotte__cred_table *t, const cJSON *j) {
  kotte_cred_record r;
  memset(&r, 0, sizeof r);
  char id[KOTTE_CRED_ID_LEN + 1];
  double port;
  kotte_time c, m;
  const char *raw_id = get_str(j, "id");
  r.user_id = get_text(j, "u");
  r.name = get_text(j, "n");
  r.host = get_text(j, "h");
  r.database = get_text(j, "db");
  r.sslmode = get_text(j, "ssl");
  r.key_id = get_str(j, "k");
  if (kotte__uuid_canonical(raw_id, id) != 0 || strcmp(id, raw_id) != 0 ||
      !kotte__user_id_valid(r.user_id) || !r.name || !r.name[0] || !r.host || !r.database ||
      !r.sslmode || !is_key_id(r.key_id) || get_num(j, "p", &port) || port < 1 || port > 65535 ||
      port != (int)port || kotte__json_get_time(j, "c", &c) || kotte__json_get_time(j, "m", &m))
    return KOTTE_ECORRUPT;
  r.id = id;
  r.port = (int)port;
  r.created_at = c;
  r.updated_at = m;
  unsigned char *un = NULL, *pw = NULL;
  int rc = KOTTE_ECORRUPT;
  if (get_blob(j, "un", &un, &r.username_len) == 0 &&
      get_blob(j, "pw", &pw, &r.password_len) == 0) {
    r.username = un;
    r.password = pw;
    rc = kotte__cred_table_put(t, &r, NULL);
    if (rc == KOTTE_EEXISTS) rc = KOTTE_ECORRUPT; /* two records of one name */
  }
  kotte__free(un);
  kotte__free(pw);
  return rc;
}

static int apply(void *ctx, int version, const cJSON *j) {
  (void)version; /* one format so far */
  kotte__cred_table *t = ctx;
  const char *op = get_str(j, "op");
  if (op == NULL) return KOTTE_ECORRUPT;
  if (strcmp(op, "put") == 0) return apply_put(t, j);
  if (strcmp(op, "del") == 0) {
    char id[KOTTE_CRED_ID_LEN + 1];
    if (kotte__uuid_canonical(get_str(j, "id"), id) != 0) return KOTTE_ECORRUPT;
    kotte__cred_table_remove(t, NULL, id);
    return 0;
  }
  return KOTTE_ECORRUPT;
}

static void reset(void *ctx) { kotte__cred_table_clear(ctx); }
static size_t live(void *ctx) { return kotte__cred_table_count(ctx); }

typedef struct snap {
  kotte__journal_buf *b;
  size_t lines;
} snap;

static void snap_entry(const kotte__cred_entry *e, void *ctx) {
  snap *s = ctx;
  kotte__cred_journal_put(s->b, e);
  s->lines++;
}

static size_t snapshot(void *ctx, kotte__journal_buf *b) {
  snap s = { b, 0 };
  kotte__cred_table_foreach(ctx, snap_entry, &s);
  return s.lines;
}

static const kotte__journal_ops cred_ops = {
  .kind = "credentials",
  .noun = "credential",
  .version = 1,
  .min_version = 1,
  .apply = apply,
  .reset = reset,
  .live = live,
  .snapshot = snapshot,
};

int kotte__cred_journal_open(kotte__journal *j, const char *path, kotte__cred_table *t) {
  return kotte__journal_open(j, path, &cred_ops, t);
}
