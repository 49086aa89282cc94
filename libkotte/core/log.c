/* The logging hook. */
#include <stdatomic.h>
#include <stdio.h>
#include <uv.h>

#include "core/internal.h"

static uv_once_t lock_once = UV_ONCE_INIT;
static uv_rwlock_t lock;
static kotte_log_fn hook_fn;
static void *hook_ctx;
static atomic_int min_level = KOTTE_LOG_ERROR + 1; /* nothing until a hook is set */

static void init_lock(void) { uv_rwlock_init(&lock); }

void kotte_set_log_hook(kotte_log_fn fn, void *ctx, kotte_log_level level) {
  uv_once(&lock_once, init_lock);
  uv_rwlock_wrlock(&lock);
  hook_fn = fn;
  hook_ctx = ctx;
  atomic_store(&min_level, fn ? (int)level : KOTTE_LOG_ERROR + 1);
  uv_rwlock_wrunlock(&lock);
}

int kotte__log_enabled(kotte_log_level level) { return (int)level >= atomic_load(&min_level); }

void kotte__log(kotte_log_level level, const char *fmt, ...) {
  if (!kotte__log_enabled(level)) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  uv_once(&lock_once, init_lock);
  uv_rwlock_rdlock(&lock);
  if (hook_fn) hook_fn(level, line, hook_ctx);
  uv_rwlock_rdunlock(&lock);
}
