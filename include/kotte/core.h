/*
 * libkotte — process-wide hooks: allocator, logging, clock, random tokens.
 */
#ifndef KOTTE_CORE_H
#define KOTTE_CORE_H

#include "kotte/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Allocator                                                           */
/* ------------------------------------------------------------------ */

/**
 * A replacement allocator. All four fields are required. The functions
 * must be thread-safe: libkotte allocates from its loop threads and from
 * the libuv thread pool.
 */
typedef struct kotte_allocator {
  void *(*malloc_fn)(size_t size, void *ctx);
  void *(*realloc_fn)(void *ptr, size_t size, void *ctx);
  void (*free_fn)(void *ptr, void *ctx);
  void *ctx;
} kotte_allocator;

/**
 * Replaces the allocator used by libkotte and by cJSON (cJSON's hooks are
 * process-wide, so this also affects other cJSON users in the process).
 * Pass NULL to restore malloc/realloc/free.
 *
 * Must be called before any other libkotte call and before any thread uses
 * libkotte; memory allocated before the switch must not be outstanding.
 * Returns 0, or KOTTE_EINVAL if a function pointer is missing.
 * Secrets (keys) never use this allocator: they live in sodium_malloc().
 */
KOTTE_EXTERN int kotte_set_allocator(const kotte_allocator *allocator);

/* ------------------------------------------------------------------ */
/* Logging                                                             */
/* ------------------------------------------------------------------ */

typedef enum kotte_log_level {
  KOTTE_LOG_DEBUG = 10,
  KOTTE_LOG_INFO = 20,
  KOTTE_LOG_WARN = 30,
  KOTTE_LOG_ERROR = 40
} kotte_log_level;

/**
 * Receives one log line (no trailing newline). May be called from any
 * libkotte thread, concurrently. Messages never contain a password, a
 * session token, a key or a conninfo string; session ids appear at most as
 * their first 8 characters.
 */
typedef void (*kotte_log_fn)(kotte_log_level level, const char *message, void *ctx);

/**
 * Installs the process-wide log hook (NULL: discard, the default) and the
 * minimum level passed to it. Thread-safe.
 */
KOTTE_EXTERN void kotte_set_log_hook(kotte_log_fn fn, void *ctx, kotte_log_level min_level);

/* ------------------------------------------------------------------ */
/* Time                                                                */
/* ------------------------------------------------------------------ */

/** Microseconds since the Unix epoch, UTC. */
typedef int64_t kotte_time;

/**
 * A clock. Stores take one in their options so that tests can drive
 * expiry; NULL means the system's real-time clock. Must be thread-safe.
 */
typedef kotte_time (*kotte_clock_fn)(void *ctx);

/** The system real-time clock (CLOCK_REALTIME) in microseconds. */
KOTTE_EXTERN kotte_time kotte_clock_now(void);

/* ------------------------------------------------------------------ */
/* Random tokens                                                       */
/* ------------------------------------------------------------------ */

/** Length of a token from kotte_token_generate(), without the NUL. */
#define KOTTE_TOKEN_LEN 43

/**
 * Writes 256 bits from libsodium's CSPRNG, base64url without padding
 * (43 characters, the same shape as Python's secrets.token_urlsafe(32)),
 * NUL-terminated, into @p out. Returns 0 or KOTTE_EINTERNAL if libsodium
 * could not be initialised. Thread-safe.
 */
KOTTE_EXTERN int kotte_token_generate(char out[KOTTE_TOKEN_LEN + 1]);

/**
 * 1 if @p s is exactly the shape kotte_token_generate() produces
 * (43 characters of [A-Za-z0-9_-]), else 0. NULL gives 0.
 */
KOTTE_EXTERN int kotte_token_is_valid(const char *s);

/* ------------------------------------------------------------------ */
/* Text                                                                */
/* ------------------------------------------------------------------ */

/**
 * The length of the longest well-formed UTF-8 prefix of @p s[0..len):
 * @p len when all of it is UTF-8, else the offset of the first byte that
 * starts no well-formed sequence (RFC 3629 and the Unicode Standard's
 * Table 3-7: no overlong forms, no UTF-16 surrogates, nothing above
 * U+10FFFF; a sequence cut off by @p len is ill-formed). NUL bytes are
 * well-formed. NULL gives 0. Thread-safe.
 *
 * Every store refuses text that is not UTF-8 with KOTTE_EINVAL (user ids,
 * saved-connection fields) or KOTTE_EBADJSON (session data) before any
 * backend sees it, as PostgreSQL would refuse it; an application checks
 * its own input with the same rule.
 */
KOTTE_EXTERN size_t kotte_utf8_check(const char *s, size_t len);

/**
 * Checks @p text (@p len bytes, NULs included) for what cJSON parses
 * without complaint but cannot keep, so that JSON read from a client can
 * be refused before cJSON silently shortens a value:
 *  - a raw control character (U+0000 to U+001F): JSON allows none inside
 *    a string and only tab, LF and CR between tokens, yet cJSON takes any
 *    of them (a raw NUL ends the string it is in: "pw<NUL>tail" reads "pw");
 *  - a \u escape without four hex digits after it: not JSON, and cJSON
 *    reads it as \u0000;
 *  - an escaped NUL (the six characters \u0000) inside a string: valid
 *    JSON, but cJSON's strings are NUL-terminated and end there.
 * The escapes are followed as JSON reads them, so "\\u0000" (an escaped
 * backslash, then the text u0000) passes. It checks nothing else: parse
 * the text with cJSON afterwards. libkotte applies it to every session
 * data text it is given.
 *
 * Returns 0; KOTTE_EBADJSON for a raw control character or a bad \u
 * escape; KOTTE_EINVAL for an escaped NUL (or NULL @p text with a non-zero
 * @p len). Thread-safe.
 */
KOTTE_EXTERN int kotte_json_text_check(const char *text, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* KOTTE_CORE_H */
