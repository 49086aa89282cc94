/*
 * libkotte — common definitions: export macro, error codes, version.
 *
 * Every libkotte function that can fail returns 0 on success or one of the
 * negative KOTTE_E* codes below. kotte_strerror() turns any int into a
 * static, never-NULL English description. Codes never carry secrets.
 */
#ifndef KOTTE_COMMON_H
#define KOTTE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "kotte/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Marks a symbol as part of the public ABI (all others are hidden). */
#if defined(_WIN32)
#  define KOTTE_EXTERN __declspec(dllexport)
#elif defined(__GNUC__)
#  define KOTTE_EXTERN __attribute__((visibility("default")))
#else
#  define KOTTE_EXTERN
#endif

/**
 * The error table. X(NAME, value, description). Values are stable ABI: new
 * codes are only ever appended with a new, more negative value.
 */
#define KOTTE_ERRNO_MAP(X)                                                   \
  X(EINVAL, -1, "invalid argument")                                          \
  X(ENOMEM, -2, "out of memory")                                             \
  X(ENOTFOUND, -3, "not found (unknown, deleted or expired)")                \
  X(EEXISTS, -4, "already exists")                                           \
  X(ETOOBIG, -5, "value exceeds the configured size limit")                  \
  X(EBADID, -6, "malformed identifier")                                      \
  X(EBADJSON, -7, "invalid JSON or not a JSON object")                       \
  X(ECORRUPT, -8, "store file is corrupt or not a libkotte store")           \
  X(EIO, -9, "I/O error")                                                    \
  X(ETIMEDOUT, -10, "operation timed out")                                   \
  X(ECANCELED, -11, "operation canceled")                                    \
  X(EVERSION, -12, "unsupported options or backend struct version")          \
  X(ENOTSUP, -13, "operation not supported by this backend")                 \
  X(EDEADLK, -14, "blocking call made on the loop thread would deadlock")    \
  X(ECLOSED, -15, "object is closed or closing")                             \
  X(EINTEGRITY, -16, "integrity check failed (tampered or wrong key)")       \
  X(EKEY, -17, "invalid or unknown key")                                     \
  X(EDB, -18, "database error")                                              \
  X(EPOOLTIMEOUT, -19, "timed out waiting for a pooled connection")          \
  X(ETOOMANYWAITERS, -20, "too many requests waiting for a connection")      \
  X(EINTERNAL, -21, "internal error")                                        \
  X(ELOCK, -22, "could not lock the store file")                             \
  X(ECONFLICT, -23, "the record changed concurrently; try again")             \
  X(ESCHEMA, -24, "the database schema is missing or older than this libkotte needs")    \
  X(EFORBIDDEN, -25, "not allowed: it belongs to another user")

/** Error codes: 0 is success, everything else is negative. */
typedef enum kotte_errno {
  KOTTE_OK = 0,
#define KOTTE__ERRNO_ENUM(name, val, desc) KOTTE_##name = (val),
  KOTTE_ERRNO_MAP(KOTTE__ERRNO_ENUM)
#undef KOTTE__ERRNO_ENUM
  KOTTE__ERRNO_LAST = -25
} kotte_errno;

/**
 * A static description of @p code. Never NULL, also for unknown codes.
 * Thread-safe; callable from any thread.
 */
KOTTE_EXTERN const char *kotte_strerror(int code);

/**
 * The symbolic name of @p code ("KOTTE_ENOTFOUND"), or "KOTTE_UNKNOWN".
 * Never NULL. Thread-safe.
 */
KOTTE_EXTERN const char *kotte_err_name(int code);

/**
 * A detail message for the failure of the current call on this thread, for
 * example the path of a corrupt store file, or "" when there is none; never
 * a message left by an earlier call (every libkotte function that returns
 * a status clears it first).
 *
 * - After a call that returned a negative code: what went wrong in it.
 * - Inside an asynchronous operation's callback with a negative status (on
 *   the loop thread): what went wrong in that operation. After a blocking
 *   (*_sync) call: what went wrong in the operation it waited for.
 * - A PostgreSQL failure reads
 *   "WHO: SQLSTATE XXXXX: PostgreSQL's message; hint: what to do"
 *   (PostgreSQL's primary message only: its DETAIL and CONTEXT, which can
 *   quote row values, are left out).
 *
 * Thread-local; valid until the next libkotte call on the same thread.
 * Never contains a secret (no password, token, key or conninfo).
 */
KOTTE_EXTERN const char *kotte_error_detail(void);

/** The runtime library version as "MAJOR.MINOR.PATCH". Never NULL. */
KOTTE_EXTERN const char *kotte_version(void);

/** The runtime library version as KOTTE_VERSION_HEX (0xMMmmpp). */
KOTTE_EXTERN unsigned int kotte_version_hex(void);

#ifdef __cplusplus
}
#endif
#endif /* KOTTE_COMMON_H */
