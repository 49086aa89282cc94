/* Error codes, their descriptions, and the per-thread detail message. */
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

const char *kotte_strerror(int code) {
  switch (code) {
  case KOTTE_OK: return "success";
#define KOTTE__ERRNO_DESC(name, val, desc) case (val): return desc;
    KOTTE_ERRNO_MAP(KOTTE__ERRNO_DESC)
#undef KOTTE__ERRNO_DESC
  default: return "unknown error";
  }
}

const char *kotte_err_name(int code) {
  switch (code) {
  case KOTTE_OK: return "KOTTE_OK";
#define KOTTE__ERRNO_NAME(name, val, desc) case (val): return "KOTTE_" #name;
    KOTTE_ERRNO_MAP(KOTTE__ERRNO_NAME)
#undef KOTTE__ERRNO_NAME
  default: return "KOTTE_UNKNOWN";
  }
}

static _Thread_local char detail[512];

const char *kotte_error_detail(void) { return detail; }

void kotte__clear_detail(void) { detail[0] = '\0'; }

int kotte__fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  return code;
}

const char *kotte_version(void) { return KOTTE_VERSION_STRING; }

unsigned int kotte_version_hex(void) { return KOTTE_VERSION_HEX; }
