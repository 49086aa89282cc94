/* Structured logging. Lines are built with cJSON so every value is escaped
 * correctly, whatever a client sent. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include <sodium.h>

static kotte_log_level min_level = KOTTE_LOG_INFO;

static const char *level_name(kotte_log_level l) {
  switch (l) {
    case KOTTE_LOG_DEBUG: return "DEBUG";
    case KOTTE_LOG_INFO: return "INFO";
    case KOTTE_LOG_WARN: return "WARNING";
    case KOTTE_LOG_ERROR: return "ERROR";
  }
  return "INFO";
}

void ks_iso_now(char out[40]) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char base[24];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, 40, "%s.%06ld+00:00", base, (long)tv.tv_usec);
}

void ks_uuid4(char out[37]) {
  unsigned char b[16];
  randombytes_buf(b, sizeof b);
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
           b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
}

static int secret_name(const char *name) {
  static const char *const words[] = {"password", "token",  "secret",
                                      "key",      "cookie", "authorization"};
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    if (strcasestr(name, words[i])) return 1;
  return 0;
}

static void redact(cJSON *obj) {
  for (cJSON *it = obj ? obj->child : NULL; it; it = it->next) {
    if (it->string && secret_name(it->string)) {
      cJSON *r = cJSON_CreateString("[redacted]");
      if (r) cJSON_ReplaceItemViaPointer(obj, it, r), it = r;
    } else if (cJSON_IsObject(it)) {
      redact(it);
    }
  }
}

static void emit(kotte_log_level level, const char *event, cJSON *fields, const char *message);

/* Writes a printed line as UTF-8. cJSON escapes quotes and control
 * characters but copies other bytes as they come, so a client's bytes (a
 * path, a username) that are not UTF-8 would make the line something no
 * JSON reader accepts (RFC 8259 section 8.1): each byte that starts no
 * well-formed sequence is written as U+FFFD instead. Bytes above 0x7F
 * occur only inside strings, where the replacement keeps the line valid. */
static void put_utf8(const char *text, size_t n) {
  while (n) {
    size_t ok = kotte_utf8_check(text, n);
    fwrite(text, 1, ok, stdout);
    if (ok == n) return;
    fputs("\xef\xbf\xbd", stdout);
    text += ok + 1;
    n -= ok + 1;
  }
}

void ks_log(kotte_log_level level, const char *event, cJSON *fields, const char *message) {
  if (level < min_level) {
    cJSON_Delete(fields);
    return;
  }
  emit(level, event, fields, message);
}

void ks_log_lifecycle(const char *event, cJSON *fields, const char *message) {
  emit(KOTTE_LOG_INFO, event, fields, message);
}

static void emit(kotte_log_level level, const char *event, cJSON *fields, const char *message) {
  cJSON *line = cJSON_CreateObject();
  if (line == NULL) {
    cJSON_Delete(fields);
    return;
  }
  char ts[40];
  ks_iso_now(ts);
  cJSON_AddStringToObject(line, "timestamp", ts);
  cJSON_AddStringToObject(line, "level", level_name(level));
  cJSON_AddStringToObject(line, "logger", "kotte-server");
  if (event) cJSON_AddStringToObject(line, "event", event);
  cJSON_AddStringToObject(line, "message", message ? message : "");
  if (fields) {
    redact(fields);
    while (fields->child) {
      cJSON *it = cJSON_DetachItemViaPointer(fields, fields->child);
      if (cJSON_GetObjectItemCaseSensitive(line, it->string)) {
        cJSON_Delete(it); /* the fixed fields win */
        continue;
      }
      cJSON_AddItemToObject(line, it->string, it);
    }
    cJSON_Delete(fields);
  }
  char *text = cJSON_PrintUnformatted(line);
  cJSON_Delete(line);
  if (text == NULL) return;
  size_t n = strlen(text);
  /* One locked stdio call per line keeps lines whole across threads. */
  flockfile(stdout);
  put_utf8(text, n);
  fputc('\n', stdout);
  fflush(stdout);
  funlockfile(stdout);
  cJSON_free(text);
}

void ks_logf(kotte_log_level level, const char *event, const char *fmt, ...) {
  if (level < min_level) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ks_log(level, event, NULL, msg);
}

void ks_lifecyclef(const char *event, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  emit(KOTTE_LOG_INFO, event, NULL, msg);
}

static void kotte_hook(kotte_log_level level, const char *message, void *ctx) {
  (void)ctx;
  cJSON *f = cJSON_CreateObject();
  if (f) cJSON_AddStringToObject(f, "component", "libkotte");
  ks_log(level, "library", f, message);
}

void ks_log_init(kotte_log_level level) {
  min_level = level;
  kotte_set_log_hook(kotte_hook, NULL, level);
}
