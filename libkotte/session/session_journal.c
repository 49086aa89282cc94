/* The json_file session journal: session records over the shared file
 * journal (core/journal_file.c), keyed by the ids' keyed hashes. */
#include <sodium.h>
#include <string.h>

#include "core/json.h"
#include "session/session_journal.h"

#define JOURNAL_VERSION 2 /* 1: clear ids (read, then rewritten) */
#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING

static void buf_line(kotte__journal_buf *b, cJSON *j) { kotte__journal_buf_line(b, j); }

static cJSON *op_obj(const char *op) {
  cJSON *j = cJSON_CreateObject();
  if (j && !cJSON_AddStringToObject(j, "op", op)) {
    cJSON_Delete(j);
    return NULL;
  }
  return j;
}

/* cJSON_Add*ToObject return NULL on failure; collect that in one flag. */
#define ADD(ok, expr) ((ok) = (ok) && (expr) != NULL)

unsigned char *kotte__session_journal_seal(kotte__id_keys *keys, const char *token,
                                           const char *hash) {
  unsigned char *blob = kotte__malloc(KOTTE__ID_SEALED_LEN);
  if (blob) kotte__id_seal(keys, token, hash, blob);
  return blob;
}

void kotte__session_journal_attach(kotte__session_entry *e, unsigned char **sealed) {
  if (e->sealed) {
    memcpy(e->sealed, *sealed, KOTTE__ID_SEALED_LEN);
    kotte__free(*sealed);
  } else {
    e->sealed = *sealed;
  }
  *sealed = NULL;
}

void kotte__session_journal_put(kotte__journal_buf *b, const char *from_hash,
                                const kotte__session_entry *e) {
  cJSON *j = op_obj(from_hash ? "mv" : "put");
  int ok = j != NULL && e->sealed != NULL;
  char sealed[sodium_base64_ENCODED_LEN(KOTTE__ID_SEALED_LEN, B64)];
  if (ok) sodium_bin2base64(sealed, sizeof sealed, e->sealed, KOTTE__ID_SEALED_LEN, B64);
  if (from_hash) ADD(ok, cJSON_AddStringToObject(j, "from", from_hash));
  ADD(ok, cJSON_AddStringToObject(j, "h", e->id));
  ADD(ok, cJSON_AddStringToObject(j, "t", sealed));
  ADD(ok, cJSON_AddStringToObject(j, "u", e->user->user_id));
  ADD(ok, cJSON_AddRawToObject(j, "d", e->data)); /* already compact JSON */
  ADD(ok, cJSON_AddNumberToObject(j, "c", (double)e->created_at));
  ADD(ok, cJSON_AddNumberToObject(j, "a", (double)e->last_activity));
  ADD(ok, cJSON_AddNumberToObject(j, "e", (double)e->expires_at));
  ADD(ok, cJSON_AddNumberToObject(j, "m", (double)e->max_expires_at));
  ADD(ok, cJSON_AddNumberToObject(j, "i", (double)e->idle_timeout));
  if (!ok) {
    cJSON_Delete(j);
    j = NULL;
  }
  buf_line(b, j);
}

void kotte__session_journal_touch(kotte__journal_buf *b, const kotte__session_entry *e) {
  cJSON *j = op_obj("touch");
  int ok = j != NULL;
  ADD(ok, cJSON_AddStringToObject(j, "h", e->id));
  ADD(ok, cJSON_AddNumberToObject(j, "a", (double)e->last_activity));
  ADD(ok, cJSON_AddNumberToObject(j, "e", (double)e->expires_at));
  if (!ok) {
    cJSON_Delete(j);
    j = NULL;
  }
  buf_line(b, j);
}

static void buf_one(kotte__journal_buf *b, const char *op, const char *key, const char *val) {
  cJSON *j = op_obj(op);
  if (j && !cJSON_AddStringToObject(j, key, val)) {
    cJSON_Delete(j);
    j = NULL;
  }
  buf_line(b, j);
}

void kotte__session_journal_del(kotte__journal_buf *b, const char *hash) {
  buf_one(b, "del", "h", hash);
}
void kotte__session_journal_delu(kotte__journal_buf *b, const char *user_id) {
  buf_one(b, "delu", "u", user_id);
}

/* ---- replay ------------------------------------------------------------- */

static const char *get_str(const cJSON *j, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The record's key under @p k as a hash: version 2 stores the hash (under
 * "h", or "from"), version 1 the clear id (under "id", or "from"), which
 * is hashed here. NULL if absent or malformed. */
static const char *get_key(const kotte__session_journal *sj, int version, const cJSON *j,
                           const char *k, char hash[KOTTE__ID_HASH_LEN + 1], const char **token) {
  const char *v = get_str(j, version == 1 && strcmp(k, "h") == 0 ? "id" : k);
  if (!kotte_token_is_valid(v)) return NULL;
  if (version != 1) return v;
  if (token) *token = v;
  kotte__id_hash(sj->keys, v, hash);
  return hash;
}

/* The sealed id of a put: version 2 decodes "t"; version 1 seals the id. */
static unsigned char *get_sealed(const kotte__session_journal *sj, int version, const cJSON *j,
                                 const char *token, const char *hash) {
  if (version == 1) return kotte__session_journal_seal(sj->keys, token, hash);
  const char *t = get_str(j, "t");
  unsigned char *blob = kotte__malloc(KOTTE__ID_SEALED_LEN);
  size_t len = 0;
  const char *end = NULL;
  if (blob == NULL || t == NULL ||
      sodium_base642bin(blob, KOTTE__ID_SEALED_LEN, t, strlen(t), NULL, &len, &end, B64) != 0 ||
      *end != '\0' || len != KOTTE__ID_SEALED_LEN) {
    kotte__free(blob);
    return NULL;
  }
  return blob;
}

static int apply_put(kotte__session_journal *sj, int version, const cJSON *j, int mv) {
  kotte__session_table *t = sj->table;
  kotte_session_record r;
  char hash[KOTTE__ID_HASH_LEN + 1], from_hash[KOTTE__ID_HASH_LEN + 1];
  const char *token = NULL, *from = NULL;
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "d");
  r.id = get_key(sj, version, j, "h", hash, &token);
  r.user_id = get_str(j, "u");
  if (mv && (from = get_key(sj, version, j, "from", from_hash, NULL)) == NULL) return KOTTE_ECORRUPT;
  if (!r.id || !kotte__user_id_valid(r.user_id) || !cJSON_IsObject(d) ||
      kotte__json_get_time(j, "c", &r.created_at) || kotte__json_get_time(j, "a", &r.last_activity) ||
      kotte__json_get_time(j, "e", &r.expires_at) || kotte__json_get_time(j, "m", &r.max_expires_at) ||
      kotte__json_get_time(j, "i", &r.idle_timeout))
    return KOTTE_ECORRUPT;
  unsigned char *sealed = get_sealed(sj, version, j, token, r.id);
  if (sealed == NULL) return version == 1 ? KOTTE_ENOMEM : KOTTE_ECORRUPT;
  char *data;
  size_t len;
  int rc = kotte__json_print(d, 0, &data, &len);
  if (rc == 0) {
    r.data = data;
    r.data_len = len;
    if (from) kotte__session_table_remove(t, from);
    kotte__session_entry *e;
    rc = kotte__session_table_put_raw(t, &r, &e);
    if (rc == 0) kotte__session_journal_attach(e, &sealed);
    kotte__free(data);
  }
  kotte__free(sealed);
  return rc;
}

/* Applies one record. 0, KOTTE_ECORRUPT (bad record) or KOTTE_ENOMEM. */
static int apply(kotte__session_journal *sj, int version, const cJSON *j) {
  kotte__session_table *t = sj->table;
  char hash[KOTTE__ID_HASH_LEN + 1];
  const char *op = get_str(j, "op");
  if (op == NULL) return KOTTE_ECORRUPT;
  if (strcmp(op, "put") == 0) return apply_put(sj, version, j, 0);
  if (strcmp(op, "mv") == 0) return apply_put(sj, version, j, 1);
  if (strcmp(op, "touch") == 0) {
    const char *h = get_key(sj, version, j, "h", hash, NULL);
    kotte_time a, e;
    if (!h || kotte__json_get_time(j, "a", &a) || kotte__json_get_time(j, "e", &e)) return KOTTE_ECORRUPT;
    kotte__session_table_touch_raw(t, h, a, e);
    return 0;
  }
  if (strcmp(op, "del") == 0) {
    const char *h = get_key(sj, version, j, "h", hash, NULL);
    if (!h) return KOTTE_ECORRUPT;
    kotte__session_table_remove(t, h);
    return 0;
  }
  if (strcmp(op, "delu") == 0) {
    const char *u = get_str(j, "u");
    if (!kotte__user_id_valid(u)) return KOTTE_ECORRUPT;
    kotte__session_table_remove_user(t, u);
    return 0;
  }
  return KOTTE_ECORRUPT;
}

static int apply_cb(void *ctx, int version, const cJSON *rec) { return apply(ctx, version, rec); }
static void reset_cb(void *ctx) {
  kotte__session_table_clear(((kotte__session_journal *)ctx)->table);
}
static size_t live_cb(void *ctx) {
  return kotte__session_table_count(((kotte__session_journal *)ctx)->table);
}

typedef struct snap {
  kotte__journal_buf *buf;
  size_t lines;
} snap;

static void snap_entry(const kotte__session_entry *e, void *ctx) {
  snap *s = ctx;
  kotte__session_journal_put(s->buf, NULL, e);
  s->lines++;
}

static size_t snapshot_cb(void *ctx, kotte__journal_buf *b) {
  snap s = { b, 0 };
  kotte__session_table_foreach(((kotte__session_journal *)ctx)->table, snap_entry, &s);
  return s.lines;
}

static const kotte__journal_ops session_ops = {
  .kind = "sessions",
  .noun = "session",
  .version = JOURNAL_VERSION,
  .min_version = 1,
  .apply = apply_cb,
  .reset = reset_cb,
  .live = live_cb,
  .snapshot = snapshot_cb,
};

int kotte__session_journal_open(kotte__session_journal *j, const char *path,
                                kotte__session_table *t, kotte__id_keys *keys) {
  j->table = t;
  j->keys = keys;
  return kotte__journal_open(&j->file, path, &session_ops, j);
}

void kotte__session_journal_close(kotte__session_journal *j) { kotte__journal_close(&j->file); }
