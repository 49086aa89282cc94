/* Private: parameters and result values in PostgreSQL's binary format, for
 * the backends that run their statements through kotte_pg_pool (sessions,
 * credentials).
 *
 * Hand-written because libpq takes and returns binary values as bytes and
 * leaves their encoding to the caller (it has no int4/timestamptz helpers):
 * integers are big-endian, a timestamptz is int64 microseconds since
 * 2000-01-01 UTC. Each backend keeps its own text parameters (sessions send
 * text as binary bytes; credentials send uuids as text for the server to
 * parse). */
#ifndef KOTTE_PG_PARAMS_H
#define KOTTE_PG_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "kotte/core.h"

#define KPG_EPOCH_US 946684800000000LL /* 2000-01-01 in Unix microseconds */
#define KPG_MAX_PARAMS 14

/* A statement's parameters; values point into the caller's memory or num[]. */
typedef struct kotte__pg_params {
  int n;
  const char *values[KPG_MAX_PARAMS];
  int lengths[KPG_MAX_PARAMS];
  int formats[KPG_MAX_PARAMS];
  unsigned char num[KPG_MAX_PARAMS][8];
} kotte__pg_params;

static inline void kotte__pg_put_be(unsigned char *p, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; i--, v >>= 8) p[i] = (unsigned char)v;
}

/* A big-endian int4 (sign-extended) or int8 value of a binary result. */
static inline int64_t kotte__pg_get_be(const char *s, int n) {
  const unsigned char *p = (const unsigned char *)s;
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = (v << 8) | p[i];
  return n == 4 ? (int64_t)(int32_t)(uint32_t)v : (int64_t)v;
}

/* A binary timestamptz of a result, in Unix microseconds. */
static inline kotte_time kotte__pg_get_time(const char *s) {
  return kotte__pg_get_be(s, 8) + KPG_EPOCH_US;
}

static inline void kotte__pg_p_null(kotte__pg_params *p) {
  p->values[p->n] = NULL;
  p->lengths[p->n] = 0;
  p->formats[p->n++] = 1;
}

/* @p len bytes in binary format (bytea, jsonb, text); NULL is SQL NULL. */
static inline void kotte__pg_p_bytes(kotte__pg_params *p, const void *s, size_t len) {
  if (s == NULL) {
    kotte__pg_p_null(p);
    return;
  }
  p->values[p->n] = len ? (const char *)s : "";
  p->lengths[p->n] = (int)len;
  p->formats[p->n++] = 1;
}

/* An int4, clamped to its range. */
static inline void kotte__pg_p_int4(kotte__pg_params *p, int64_t v) {
  if (v > INT32_MAX) v = INT32_MAX;
  if (v < INT32_MIN) v = INT32_MIN;
  kotte__pg_put_be(p->num[p->n], (uint64_t)(uint32_t)(int32_t)v, 4);
  kotte__pg_p_bytes(p, p->num[p->n], 4);
}

static inline void kotte__pg_p_time(kotte__pg_params *p, kotte_time t) {
  kotte__pg_put_be(p->num[p->n], (uint64_t)(t - KPG_EPOCH_US), 8);
  kotte__pg_p_bytes(p, p->num[p->n], 8);
}

#endif
