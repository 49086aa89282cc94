/* The json_file session journal: session records over the shared file
 * journal (core/journal_file.c). */
#include <string.h>

#include "core/json.h"
#include "session/journal.h"

static void buf_line(kj_buf *b, cJSON *j) { kotte__journal_buf_line(b, j); }

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

void kj_buf_put(kj_buf *b, const char *from_id, const kt_entry *e) {
  cJSON *j = op_obj(from_id ? "mv" : "put");
  int ok = j != NULL;
  if (from_id) ADD(ok, cJSON_AddStringToObject(j, "from", from_id));
  ADD(ok, cJSON_AddStringToObject(j, "id", e->id));
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

void kj_buf_touch(kj_buf *b, const kt_entry *e) {
  cJSON *j = op_obj("touch");
  int ok = j != NULL;
  ADD(ok, cJSON_AddStringToObject(j, "id", e->id));
  ADD(ok, cJSON_AddNumberToObject(j, "a", (double)e->last_activity));
  ADD(ok, cJSON_AddNumberToObject(j, "e", (double)e->expires_at));
  if (!ok) {
    cJSON_Delete(j);
    j = NULL;
  }
  buf_line(b, j);
}

static void buf_one(kj_buf *b, const char *op, const char *key, const char *val) {
  cJSON *j = op_obj(op);
  if (j && !cJSON_AddStringToObject(j, key, val)) {
    cJSON_Delete(j);
    j = NULL;
  }
  buf_line(b, j);
}

void kj_buf_del(kj_buf *b, const char *id) { buf_one(b, "del", "id", id); }
void kj_buf_delu(kj_buf *b, const char *user_id) { buf_one(b, "delu", "u", user_id); }

/* ---- replay ------------------------------------------------------------- */

static const char *get_str(const cJSON *j, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *get_id(const cJSON *j, const char *k) {
  const char *id = get_str(j, k);
  return kotte_token_is_valid(id) ? id : NULL;
}

/* Applies one record. 0, KOTTE_ECORRUPT (bad record) or KOTTE_ENOMEM. */
static int apply(kt_table *t, const cJSON *j) {
  const char *op = get_str(j, "op");
  if (op == NULL) return KOTTE_ECORRUPT;
  if (strcmp(op, "put") == 0 || strcmp(op, "mv") == 0) {
    kotte_session_record r;
    const char *from = NULL;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "d");
    r.id = get_id(j, "id");
    r.user_id = get_str(j, "u");
    if (op[0] == 'm' && (from = get_id(j, "from")) == NULL) return KOTTE_ECORRUPT;
    if (!r.id || !kotte__user_id_valid(r.user_id) || !cJSON_IsObject(d) ||
        kotte__json_get_time(j, "c", &r.created_at) || kotte__json_get_time(j, "a", &r.last_activity) ||
        kotte__json_get_time(j, "e", &r.expires_at) || kotte__json_get_time(j, "m", &r.max_expires_at) ||
        kotte__json_get_time(j, "i", &r.idle_timeout))
      return KOTTE_ECORRUPT;
    char *data;
    size_t len;
    int rc = kotte__json_print(d, 0, &data, &len);
    if (rc != 0) return rc;
    r.data = data;
    r.data_len = len;
    if (from) kt_remove(t, from);
    rc = kt_put_raw(t, &r, NULL);
    kotte__free(data);
    return rc;
  }
  if (strcmp(op, "touch") == 0) {
    const char *id = get_id(j, "id");
    kotte_time a, e;
    if (!id || kotte__json_get_time(j, "a", &a) || kotte__json_get_time(j, "e", &e)) return KOTTE_ECORRUPT;
    kt_touch_raw(t, id, a, e);
    return 0;
  }
  if (strcmp(op, "del") == 0) {
    const char *id = get_id(j, "id");
    if (!id) return KOTTE_ECORRUPT;
    kt_remove(t, id);
    return 0;
  }
  if (strcmp(op, "delu") == 0) {
    const char *u = get_str(j, "u");
    if (!kotte__user_id_valid(u)) return KOTTE_ECORRUPT;
    kt_remove_user(t, u);
    return 0;
  }
  return KOTTE_ECORRUPT;
}

static int apply_cb(void *ctx, int version, const cJSON *rec) {
  (void)version;
  return apply(ctx, rec);
}
static void reset_cb(void *ctx) { kt_clear(ctx); }
static size_t live_cb(void *ctx) { return kt_count(ctx); }

typedef struct snap {
  kj_buf *buf;
  size_t lines;
} snap;

static void snap_entry(const kt_entry *e, void *ctx) {
  snap *s = ctx;
  kj_buf_put(s->buf, NULL, e);
  s->lines++;
}

static size_t snapshot_cb(void *ctx, kotte__journal_buf *b) {
  snap s = { b, 0 };
  kt_foreach(ctx, snap_entry, &s);
  return s.lines;
}

static const kotte__journal_ops session_ops = {
  .kind = "sessions",
  .noun = "session",
  .version = 1,
  .min_version = 1,
  .apply = apply_cb,
  .reset = reset_cb,
  .live = live_cb,
  .snapshot = snapshot_cb,
};

int kj_open(kj *j, const char *path, kt_table *t) {
  return kotte__journal_open(&j->file, path, &session_ops, t);
}

void kj_close(kj *j) { kotte__journal_close(&j->file); }
