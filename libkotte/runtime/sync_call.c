/* Blocking calls with timeouts over the asynchronous API. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "runtime/runtime_internal.h"

void *kotte__sync_new(size_t size, int (*start)(kotte__sync *s)) {
  kotte__sync *s = kotte__calloc(1, size);
  if (s == NULL) return NULL;
  if (uv_mutex_init(&s->mu) != 0) {
    kotte__free(s);
    return NULL;
  }
  if (uv_cond_init(&s->cv) != 0) {
    uv_mutex_destroy(&s->mu);
    kotte__free(s);
    return NULL;
  }
  atomic_init(&s->refs, 2);
  s->start = start;
  return s;
}

static void unref(kotte__sync *s) {
  if (atomic_fetch_sub(&s->refs, 1) != 1) return;
  if (s->result && s->result_free) s->result_free(s->result);
  if (s->destroy) s->destroy(s);
  for (unsigned int i = 0; i < s->n_copies; i++) {
    if (s->wipe[i]) sodium_memzero(s->copies[i], strlen(s->copies[i]));
    kotte__free(s->copies[i]);
  }
  uv_cond_destroy(&s->cv);
  uv_mutex_destroy(&s->mu);
  kotte__free(s);
}

/* Also the end of a call that was never posted: the loop's reference
 * never existed. */
void kotte__sync_discard(kotte__sync *s) {
  atomic_store(&s->refs, 1);
  unref(s);
}

void kotte__sync_complete(kotte__sync *s, int status, void *result, uint64_t count) {
  /* called from the operation's callback: the loop thread's detail
   * describes this failure (or is empty) */
  if (status != 0) snprintf(s->detail, sizeof s->detail, "%s", kotte__detail_for(status));
  uv_mutex_lock(&s->mu);
  s->status = status;
  s->result = result;
  s->count = count;
  s->done = 1;
  uv_cond_signal(&s->cv);
  uv_mutex_unlock(&s->mu);
  unref(s);
}

static void start_on_loop(void *arg) {
  kotte__sync *s = arg;
  kotte__clear_detail();
  int rc = s->start(s);
  if (rc != 0) {
    /* The refusal's explanation lives in this (the loop) thread's detail;
     * copy it for the caller before anyone else can see `s` finish. */
    snprintf(s->detail, sizeof s->detail, "%s", kotte_error_detail());
    kotte__sync_complete(s, rc, NULL, 0);
  }
}

int kotte__sync_run(kotte_runtime *rt, kotte__sync *s, int timeout_ms, void **result,
                    uint64_t *count) {
  /* A detail left by an earlier call must not describe this one. */
  kotte__clear_detail();
  if (kotte_runtime_on_loop_thread(rt)) {
    kotte__sync_discard(s);
    return KOTTE_EDEADLK;
  }
  int rc = kotte_runtime_post(rt, start_on_loop, s);
  if (rc != 0) {
    kotte__sync_discard(s);
    return rc;
  }
  if (timeout_ms < 0) timeout_ms = kotte_runtime_default_timeout(rt);
  uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
  uv_mutex_lock(&s->mu);
  while (!s->done) {
    uint64_t now = uv_hrtime();
    if (now >= deadline || uv_cond_timedwait(&s->cv, &s->mu, deadline - now) != 0) {
      if (!s->done) break;
    }
  }
  if (s->done) {
    rc = s->status;
    if (rc != 0 && s->detail[0]) kotte__fail(rc, "%s", s->detail);
    if (result) {
      *result = s->result;
      s->result = NULL;
    }
    if (count) *count = s->count;
  } else {
    s->abandoned = 1;
    rc = KOTTE_ETIMEDOUT;
  }
  uv_mutex_unlock(&s->mu);
  unref(s);
  return rc;
}

char *kotte__sync_copy(kotte__sync *s, const char *str, int wipe) {
  if (str == NULL) return NULL;
  char *d = s->n_copies < KOTTE__SYNC_MAX_COPIES ? kotte__strdup(str) : NULL;
  if (d == NULL) {
    s->oom = 1;
    return NULL;
  }
  s->wipe[s->n_copies] = (unsigned char)(wipe != 0);
  s->copies[s->n_copies++] = d;
  return d;
}

void *kotte__sync_call_new(kotte_runtime *rt, size_t size, int (*start)(kotte__sync *s),
                           void *target, int op, int *rc) {
  if (rt == NULL) {
    *rc = kotte__fail(KOTTE_EINVAL, "blocking call on a store not opened on a runtime");
    return NULL;
  }
  kotte__sync *s = kotte__sync_new(size, start);
  *rc = s ? 0 : KOTTE_ENOMEM;
  if (s) {
    s->target = target;
    s->op = op;
  }
  return s;
}

int kotte__sync_call_run(kotte_runtime *rt, kotte__sync *s, int timeout_ms, void **result,
                         uint64_t *count) {
  if (s->oom) {
    kotte__sync_discard(s); /* never posted */
    return KOTTE_ENOMEM;
  }
  return kotte__sync_run(rt, s, timeout_ms, result, count);
}

void kotte__sync_on_status(int status, void *userdata) {
  kotte__sync_complete(userdata, status, NULL, 0);
}
