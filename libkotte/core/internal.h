/* Private helpers shared by every libkotte subsystem. Not installed. */
#ifndef KOTTE_CORE_INTERNAL_H
#define KOTTE_CORE_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

#include "kotte.h"

#if defined(__GNUC__)
#  define KOTTE__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#  define KOTTE__PRINTF(f, a)
#endif

/* Allocation through the hook set by kotte_set_allocator(). */
void *kotte__malloc(size_t n);
void *kotte__calloc(size_t count, size_t n);
void *kotte__realloc(void *p, size_t n);
void kotte__free(void *p);
char *kotte__strdup(const char *s);
char *kotte__strndup(const char *s, size_t n);

/* Sets the thread's kotte_error_detail() message, as the explanation of
 * @p code, and returns @p code. Every public function that returns a status
 * clears the detail first (kotte__clear_detail()), so that it only ever
 * describes the current call. */
int kotte__fail(int code, const char *fmt, ...) KOTTE__PRINTF(2, 3);
void kotte__clear_detail(void);
/* The thread's detail if it was written for @p code (non-zero), else "". */
const char *kotte__detail_for(int code);
/* A heap copy (kotte__free) of kotte__detail_for(@p code), or NULL when
 * there is none; clears the thread's detail. The stores keep it with the
 * operation until its callback. */
char *kotte__detail_take(int code);
/* Makes @p text the thread's detail for @p code; NULL, "" or code 0 clear it. */
void kotte__detail_set(int code, const char *text);

/* Logging through the hook; cheap when no hook is installed. */
int kotte__log_enabled(kotte_log_level level);
void kotte__log(kotte_log_level level, const char *fmt, ...) KOTTE__PRINTF(2, 3);

/* One-time library initialisation (libsodium, cJSON hooks). 0 or KOTTE_EINTERNAL. */
int kotte__init(void);

/* Length-checked user id: non-empty, at most 255 bytes, no NUL inside. */
/* The 43-character unpadded base64url text of a 32-byte digest that is not
 * secret (token.c says why this one path skips libsodium's codec). */
void kotte__b64url_digest32(char out[44], const unsigned char in[32]);

#define KOTTE__MAX_USER_ID 255
int kotte__user_id_valid(const char *user_id);

/* 1 if s[0..n) is well-formed UTF-8 (kotte_utf8_check() covers all of it). */
int kotte__utf8_valid(const char *s, size_t n);

/* 0 for a user id the stores accept (kotte__user_id_valid() and UTF-8, as
 * PostgreSQL's text column needs), else KOTTE_EINVAL with a detail that
 * never repeats the value. */
int kotte__user_id_check(const char *user_id);

#endif
