/* Session objects handed to users. */
#include <sodium.h>
#include <string.h>

#include "session/session_internal.h"

kotte_session *kotte__session_from_record(const kotte_session_record *r) {
  kotte_session *s = kotte__calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  memcpy(s->id, r->id, KOTTE_SESSION_ID_LEN);
  s->user_id = kotte__strdup(r->user_id);
  s->data = kotte__strndup(r->data, r->data_len);
  if (s->user_id == NULL || s->data == NULL) {
    kotte_session_free(s);
    return NULL;
  }
  s->created_at = r->created_at;
  s->last_activity = r->last_activity;
  s->expires_at = r->expires_at;
  s->max_expires_at = r->max_expires_at;
  return s;
}

int kotte__session_list_from_records(const kotte_session_record *recs, size_t n,
                                     kotte_session_list **out) {
  kotte_session_list *l = kotte__calloc(1, sizeof *l);
  if (l == NULL) return KOTTE_ENOMEM;
  l->items = kotte__calloc(n ? n : 1, sizeof *l->items);
  if (l->items == NULL) {
    kotte__free(l);
    return KOTTE_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    l->items[i] = kotte__session_from_record(&recs[i]);
    if (l->items[i] == NULL) {
      kotte_session_list_free(l);
      return KOTTE_ENOMEM;
    }
    l->n = i + 1;
  }
  *out = l;
  return 0;
}

const char *kotte_session_id(const kotte_session *s) { return s ? s->id : ""; }
const char *kotte_session_user_id(const kotte_session *s) { return s ? s->user_id : ""; }
const char *kotte_session_data(const kotte_session *s) { return s ? s->data : "{}"; }
kotte_time kotte_session_created_at(const kotte_session *s) { return s ? s->created_at : 0; }
kotte_time kotte_session_last_activity(const kotte_session *s) { return s ? s->last_activity : 0; }
kotte_time kotte_session_expires_at(const kotte_session *s) { return s ? s->expires_at : 0; }
kotte_time kotte_session_max_expires_at(const kotte_session *s) {
  return s ? s->max_expires_at : 0;
}

void kotte_session_free(kotte_session *s) {
  if (s == NULL) return;
  kotte__free(s->user_id);
  /* The data may hold revealed secrets: wipe it. */
  if (s->data) sodium_memzero(s->data, strlen(s->data));
  kotte__free(s->data);
  kotte__free(s);
}

size_t kotte_session_list_count(const kotte_session_list *l) { return l ? l->n : 0; }

const kotte_session *kotte_session_list_get(const kotte_session_list *l, size_t i) {
  return (l && i < l->n) ? l->items[i] : NULL;
}

void kotte_session_list_free(kotte_session_list *l) {
  if (l == NULL) return;
  for (size_t i = 0; i < l->n; i++) kotte_session_free(l->items[i]);
  kotte__free(l->items);
  kotte__free(l);
}

void kotte_session_backend_free(kotte_session_backend *be) {
  if (be && be->free) be->free(be);
}
