/* The allocator hook, also handed to cJSON. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

static void *std_malloc(size_t n, void *ctx) { (void)ctx; return malloc(n); }
static void *std_realloc(void *p, size_t n, void *ctx) { (void)ctx; return realloc(p, n); }
static void std_free(void *p, void *ctx) { (void)ctx; free(p); }

static kotte_allocator current = { std_malloc, std_realloc, std_free, NULL };

/* cJSON's hooks carry no context pointer, so they trampoline to `current`. */
static void *cjson_malloc(size_t n) { return current.malloc_fn(n, current.ctx); }
static void cjson_free(void *p) { current.free_fn(p, current.ctx); }

int kotte_set_allocator(const kotte_allocator *a) {
  kotte__clear_detail();
  if (a == NULL) {
    current = (kotte_allocator){ std_malloc, std_realloc, std_free, NULL };
    cJSON_InitHooks(NULL);
    return 0;
  }
  if (!a->malloc_fn || !a->realloc_fn || !a->free_fn)
    return kotte__fail(KOTTE_EINVAL, "kotte_set_allocator: all three functions are required");
  current = *a;
  cJSON_Hooks hooks = { cjson_malloc, cjson_free };
  cJSON_InitHooks(&hooks);
  return 0;
}

void *kotte__malloc(size_t n) { return current.malloc_fn(n ? n : 1, current.ctx); }

void *kotte__calloc(size_t count, size_t n) {
  if (n && count > SIZE_MAX / n) return NULL;
  void *p = kotte__malloc(count * n);
  if (p) memset(p, 0, count * n);
  return p;
}

void *kotte__realloc(void *p, size_t n) { return current.realloc_fn(p, n ? n : 1, current.ctx); }

void kotte__free(void *p) {
  if (p) current.free_fn(p, current.ctx);
}

char *kotte__strndup(const char *s, size_t n) {
  char *d = kotte__malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

/* uthash's out-of-memory flag (core/uthash_config.h), per thread because
 * the tables of different backends run on different threads. */
_Thread_local int kotte__uthash_oom;

char *kotte__strdup(const char *s) { return s ? kotte__strndup(s, strlen(s)) : NULL; }
