/* Credential objects handed to users, ids, ISO 8601 times and input checks. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "credential/credential_internal.h"

/* ---- ids ---------------------------------------------------------------- */

static void uuid_format(const unsigned char b[16], char out[KOTTE_CRED_ID_LEN + 1]) {
  static const char hex[] = "0123456789abcdef";
  size_t w = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[w++] = '-';
    out[w++] = hex[b[i] >> 4];
    out[w++] = hex[b[i] & 15];
  }
  out[w] = '\0';
}

void kotte__uuid_v4(char out[KOTTE_CRED_ID_LEN + 1]) {
  unsigned char b[16];
  randombytes_buf(b, sizeof b);
  b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* version 4 */
  b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* RFC 4122 variant */
  uuid_format(b, out);
}

int kotte__uuid_canonical(const char *s, char out[KOTTE_CRED_ID_LEN + 1]) {
  if (s == NULL) return -1;
  for (size_t i = 0; i < KOTTE_CRED_ID_LEN; i++) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return -1;
      out[i] = c;
      continue;
    }
    if (c >= 'A' && c <= 'F') c = (char)(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return -1; /* also an early NUL */
    out[i] = c;
  }
  if (s[KOTTE_CRED_ID_LEN] != '\0') return -1;
  out[KOTTE_CRED_ID_LEN] = '\0';
  return 0;
}

/* ---- times -------------------------------------------------------------- */

void kotte__time_iso(kotte_time t, char out[KOTTE__ISO_LEN]) {
  int64_t secs = t / 1000000, us = t % 1000000;
  if (us < 0) {
    us += 1000000;
    secs -= 1;
  }
  time_t tt = (time_t)secs;
  struct tm tm;
  if (gmtime_r(&tt, &tm) == NULL) {
    snprintf(out, KOTTE__ISO_LEN, "1970-01-01T00:00:00+00:00");
    return;
  }
  char frac[8] = "";
  if (us) snprintf(frac, sizeof frac, ".%06d", (int)us);
  snprintf(out, KOTTE__ISO_LEN, "%04d-%02d-%02dT%02d:%02d:%02d%s+00:00", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

/* ---- validation --------------------------------------------------------- */

static size_t utf8_chars(const char *s) {
  size_t chars = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) chars++;
  return chars;
}

static int check_text(const char *value, const char *what, size_t max_bytes) {
  if (value == NULL) return kotte__fail(KOTTE_EINVAL, "connection %s is missing", what);
  size_t n = strnlen(value, max_bytes + 1);
  if (n > max_bytes)
    return kotte__fail(KOTTE_EINVAL, "connection %s is longer than %zu bytes", what, max_bytes);
  if (!kotte__utf8_valid(value, n))
    return kotte__fail(KOTTE_EINVAL, "connection %s is not valid UTF-8", what);
  return 0;
}

static const char *const sslmodes[] = { "disable", "allow", "prefer",
                                        "require", "verify-ca", "verify-full" };

const char *kotte__cred_sslmode(const char *sslmode) { return sslmode ? sslmode : "prefer"; }

int kotte__cred_input_check(const kotte_cred_input *in, unsigned int fields) {
  if (in == NULL) return KOTTE_EINVAL;
  if (in->version != KOTTE_CRED_INPUT_VERSION)
    return kotte__fail(KOTTE_EVERSION, "kotte_cred_input.version %u is not supported",
                       in->version);
  int rc = 0;
  if (fields & KOTTE_CRED_NAME) {
    if ((rc = check_text(in->name, "name", 4 * KOTTE_CRED_MAX_NAME_CHARS)) != 0) return rc;
    size_t chars = utf8_chars(in->name);
    if (chars < 1 || chars > KOTTE_CRED_MAX_NAME_CHARS)
      return kotte__fail(KOTTE_EINVAL, "connection name must be 1 to %d characters",
                         KOTTE_CRED_MAX_NAME_CHARS);
  }
  if ((fields & KOTTE_CRED_HOST) && (rc = check_text(in->host, "host", KOTTE_CRED_MAX_FIELD)))
    return rc;
  if ((fields & KOTTE_CRED_PORT) && (in->port < 1 || in->port > 65535))
    return kotte__fail(KOTTE_EINVAL, "connection port must be 1 to 65535");
  if ((fields & KOTTE_CRED_DATABASE) &&
      (rc = check_text(in->database, "database", KOTTE_CRED_MAX_FIELD)))
    return rc;
  if ((fields & KOTTE_CRED_SSLMODE) && in->sslmode != NULL) {
    size_t i;
    for (i = 0; i < sizeof sslmodes / sizeof *sslmodes; i++)
      if (strcmp(in->sslmode, sslmodes[i]) == 0) break;
    if (i == sizeof sslmodes / sizeof *sslmodes)
      return kotte__fail(KOTTE_EINVAL, "connection sslmode must be one of disable, allow, "
                                       "prefer, require, verify-ca, verify-full");
  }
  if ((fields & KOTTE_CRED_USERNAME) &&
      (rc = check_text(in->username, "username", KOTTE_CRED_MAX_FIELD)))
    return rc;
  if ((fields & KOTTE_CRED_PASSWORD) &&
      (rc = check_text(in->password, "password", KOTTE_CRED_MAX_PASSWORD)))
    return rc;
  return 0;
}

/* ---- records ------------------------------------------------------------ */

kotte_cred *kotte__cred_from_record(const kotte_cred_record *r) {
  kotte_cred *c = kotte__calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  snprintf(c->id, sizeof c->id, "%s", r->id);
  snprintf(c->key_id, sizeof c->key_id, "%s", r->key_id ? r->key_id : "");
  c->user_id = kotte__strdup(r->user_id);
  c->name = kotte__strdup(r->name);
  c->host = kotte__strdup(r->host);
  c->database = kotte__strdup(r->database);
  c->sslmode = kotte__strdup(kotte__cred_sslmode(r->sslmode));
  if (!c->user_id || !c->name || !c->host || !c->database || !c->sslmode) {
    kotte_cred_free(c);
    return NULL;
  }
  c->port = r->port;
  c->created_at = r->created_at;
  c->updated_at = r->updated_at;
  kotte__time_iso(c->created_at, c->created_iso);
  kotte__time_iso(c->updated_at, c->updated_iso);
  return c;
}

int kotte__cred_list_from_records(const kotte_cred_record *recs, size_t n,
                                  kotte_cred_list **out) {
  kotte_cred_list *l = kotte__calloc(1, sizeof *l);
  if (l == NULL) return KOTTE_ENOMEM;
  l->items = kotte__calloc(n ? n : 1, sizeof *l->items);
  if (l->items == NULL) {
    kotte__free(l);
    return KOTTE_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    l->items[i] = kotte__cred_from_record(&recs[i]);
    if (l->items[i] == NULL) {
      kotte_cred_list_free(l);
      return KOTTE_ENOMEM;
    }
    l->n = i + 1;
  }
  *out = l;
  return 0;
}

const char *kotte_cred_id(const kotte_cred *c) { return c ? c->id : ""; }
const char *kotte_cred_user_id(const kotte_cred *c) { return c ? c->user_id : ""; }
const char *kotte_cred_name(const kotte_cred *c) { return c ? c->name : ""; }
const char *kotte_cred_host(const kotte_cred *c) { return c ? c->host : ""; }
int kotte_cred_port(const kotte_cred *c) { return c ? c->port : 0; }
const char *kotte_cred_database(const kotte_cred *c) { return c ? c->database : ""; }
const char *kotte_cred_sslmode(const kotte_cred *c) { return c ? c->sslmode : "prefer"; }
const char *kotte_cred_username(const kotte_cred *c) { return c ? c->username : NULL; }
const char *kotte_cred_password(const kotte_cred *c) { return c ? c->password : NULL; }
const char *kotte_cred_key_id(const kotte_cred *c) { return c ? c->key_id : ""; }
kotte_time kotte_cred_created_at(const kotte_cred *c) { return c ? c->created_at : 0; }
kotte_time kotte_cred_updated_at(const kotte_cred *c) { return c ? c->updated_at : 0; }
const char *kotte_cred_created_at_iso(const kotte_cred *c) { return c ? c->created_iso : ""; }
const char *kotte_cred_updated_at_iso(const kotte_cred *c) { return c ? c->updated_iso : ""; }

void kotte_cred_free(kotte_cred *c) {
  if (c == NULL) return;
  kotte_secret_free(c->username);
  kotte_secret_free(c->password);
  kotte__free(c->user_id);
  kotte__free(c->name);
  kotte__free(c->host);
  kotte__free(c->database);
  kotte__free(c->sslmode);
  kotte__free(c);
}

size_t kotte_cred_list_count(const kotte_cred_list *l) { return l ? l->n : 0; }

const kotte_cred *kotte_cred_list_get(const kotte_cred_list *l, size_t i) {
  return (l && i < l->n) ? l->items[i] : NULL;
}

void kotte_cred_list_free(kotte_cred_list *l) {
  if (l == NULL) return;
  for (size_t i = 0; i < l->n; i++) kotte_cred_free(l->items[i]);
  kotte__free(l->items);
  kotte__free(l);
}

/* ---- reports ------------------------------------------------------------ */

uint64_t kotte_cred_report_rewrapped(const kotte_cred_report *r) { return r ? r->rewrapped : 0; }
uint64_t kotte_cred_report_failed(const kotte_cred_report *r) { return r ? r->failed : 0; }
uint64_t kotte_cred_report_stale(const kotte_cred_report *r) { return r ? r->stale : 0; }
size_t kotte_cred_report_key_count(const kotte_cred_report *r) { return r ? r->n : 0; }

const char *kotte_cred_report_key_id(const kotte_cred_report *r, size_t i) {
  return (r && i < r->n) ? r->keys[i].id : NULL;
}

uint64_t kotte_cred_report_key_records(const kotte_cred_report *r, size_t i) {
  return (r && i < r->n) ? r->keys[i].records : 0;
}

int kotte_cred_report_key_is_current(const kotte_cred_report *r, size_t i) {
  return (r && i < r->n) ? r->keys[i].current : 0;
}

int kotte_cred_report_key_in_ring(const kotte_cred_report *r, size_t i) {
  return (r && i < r->n) ? r->keys[i].in_ring : 0;
}

void kotte_cred_report_free(kotte_cred_report *r) {
  if (r == NULL) return;
  kotte__free(r->keys);
  kotte__free(r);
}

void kotte_cred_backend_free(kotte_cred_backend *be) {
  if (be && be->free) be->free(be);
}
