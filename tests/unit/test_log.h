/* Captures libkotte's log lines (kotte_set_log_hook) for the suites that
 * check what a store logs. The hook may run on any thread (the json_file
 * backends log from the thread pool): a mutex guards the buffer. */
#ifndef KOTTE_TEST_LOG_H
#define KOTTE_TEST_LOG_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kotte.h>

typedef struct test_log {
  pthread_mutex_t mu;
  char text[65536]; /* "<level> <message>\n" lines; the tail is dropped */
  size_t len;
} test_log;

static test_log test_log_buf = { PTHREAD_MUTEX_INITIALIZER, { 0 }, 0 };

static inline void test_log_hook(kotte_log_level level, const char *msg, void *ctx) {
  (void)ctx;
  const char *name = level >= KOTTE_LOG_ERROR  ? "ERROR"
                     : level >= KOTTE_LOG_WARN ? "WARN"
                     : level >= KOTTE_LOG_INFO ? "INFO"
                                               : "DEBUG";
  pthread_mutex_lock(&test_log_buf.mu);
  size_t room = sizeof test_log_buf.text - test_log_buf.len;
  int n = snprintf(test_log_buf.text + test_log_buf.len, room, "%s %s\n", name, msg);
  if (n > 0) test_log_buf.len += (size_t)n < room ? (size_t)n : room - 1;
  pthread_mutex_unlock(&test_log_buf.mu);
}

/* Starts capturing (from DEBUG up) with an empty buffer. */
static inline void test_log_start(void) {
  pthread_mutex_lock(&test_log_buf.mu);
  test_log_buf.len = 0;
  test_log_buf.text[0] = '\0';
  pthread_mutex_unlock(&test_log_buf.mu);
  kotte_set_log_hook(test_log_hook, NULL, KOTTE_LOG_DEBUG);
}

static inline void test_log_stop(void) { kotte_set_log_hook(NULL, NULL, KOTTE_LOG_ERROR); }

/* A malloc'd copy of one captured line that starts with @p level and holds
 * every string of the NULL-terminated @p parts, or NULL. */
static inline char *test_log_find(const char *level, const char *const *parts) {
  pthread_mutex_lock(&test_log_buf.mu);
  char *copy = strdup(test_log_buf.text);
  pthread_mutex_unlock(&test_log_buf.mu);
  char *found = NULL;
  for (char *line = strtok(copy, "\n"); line && !found; line = strtok(NULL, "\n")) {
    if (strncmp(line, level, strlen(level)) != 0 || line[strlen(level)] != ' ') continue;
    int all = 1;
    for (const char *const *p = parts; *p && all; p++) all = strstr(line, *p) != NULL;
    if (all) found = strdup(line);
  }
  free(copy);
  return found;
}

/* 1 if any captured line holds @p needle. */
static inline int test_log_has(const char *needle) {
  pthread_mutex_lock(&test_log_buf.mu);
  int hit = strstr(test_log_buf.text, needle) != NULL;
  pthread_mutex_unlock(&test_log_buf.mu);
  return hit;
}

/* Asserts the ERROR a json_file store logs for a journal that damage_file()
 * (test_files.h) cut (@p removed 0: "<before> bytes") or removed, naming
 * @p path, and that nothing called the lost records unacknowledged. */
static inline void test_log_expect_damage(const char *path, long long before, int removed) {
  char before_part[64];
  snprintf(before_part, sizeof before_part, "%lld bytes", before);
  const char *parts[] = { path, removed ? "removed" : before_part, NULL };
  char *line = test_log_find("ERROR", parts);
  if (line == NULL) fail_msg("no ERROR naming the damage; captured:\n%s", test_log_buf.text);
  free(line);
  assert_false(test_log_has("unacknowledged"));
}

#endif
