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

/* The thread's detail and the code it explains: a detail is handed on
 * (to an operation's callback, to a blocking caller) only for the code it
 * was written for, so a failure that left no detail never shows an older
 * one. */
static _Thread_local struct {
  int code;
  char text[1024];
} detail;

const char *kotte_error_detail(void) { return detail.text; }

void kotte__clear_detail(void) {
  detail.code = 0;
  detail.text[0] = '\0';
}

int kotte__fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail.text, sizeof detail.text, fmt, ap);
  va_end(ap);
  detail.code = code;
  return code;
}

const char *kotte__detail_for(int code) {
  return code != 0 && detail.code == code ? detail.text : "";
}

char *kotte__detail_take(int code) {
  const char *d = kotte__detail_for(code);
  char *copy = d[0] ? kotte__strdup(d) : NULL;
  kotte__clear_detail();
  return copy;
}

void kotte__detail_set(int code, const char *text) {
  if (code == 0 || text == NULL || text[0] == '\0') {
    kotte__clear_detail();
    return;
  }
  snprintf(detail.text, sizeof detail.text, "%s", text);
  detail.code = code;
}

const char *kotte_version(void) { return KOTTE_VERSION_STRING; }

unsigned int kotte_version_hex(void) { return KOTTE_VERSION_HEX; }
