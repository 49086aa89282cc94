/* kotte-server: Kotte's session cookie, as Starlette's SessionMiddleware
 * (with itsdangerous' TimestampSigner) writes and reads it, so that a
 * browser logged in on a Python replica is logged in on this server and
 * the other way round.
 *
 * A cookie value is   PAYLOAD "." TIMESTAMP "." SIGNATURE   where
 *   PAYLOAD   is the standard, padded base64 of the session's JSON, as
 *             Python's json.dumps() writes it: {"session_id": "…",
 *             "csrf_token": "…"} (Kotte's login puts those two keys there);
 *   TIMESTAMP is the signing time in Unix seconds, big-endian without its
 *             leading zero bytes, in unpadded URL-safe base64;
 *   SIGNATURE is HMAC-SHA1 over "PAYLOAD.TIMESTAMP", unpadded URL-safe
 *             base64, keyed by SHA-1("itsdangerous.Signer" "signer" SECRET)
 *             (itsdangerous' default "django-concat" key derivation, with
 *             SECRET = SESSION_SECRET_KEY).
 * A cookie is good when its signature matches and its age (now - TIMESTAMP)
 * is between 0 and SESSION_MAX_AGE seconds, as Starlette checks it with
 * max_age = SESSION_MAX_AGE; anything else is "no session".
 *
 * HMAC-SHA1 and SHA-1 come from OpenSSL's libcrypto (libsodium has no
 * SHA-1); base64 and the constant-time compare from libsodium. Nothing
 * here is hand-made cryptography. */
#ifndef KS_COOKIE_H
#define KS_COOKIE_H

#include <stddef.h>
#include <stdint.h>

#include <kotte.h>

/* The longest cookie value accepted or written (a browser keeps about 4 KB
 * per cookie, name and attributes included). */
#define KS_COOKIE_VALUE_MAX 3800

/* The signing key derived from SESSION_SECRET_KEY (a secret: wipe it). */
typedef struct ks_cookie_signer {
  unsigned char key[20];
} ks_cookie_signer;

/* Derives the key from @p secret (@p len bytes) as itsdangerous does. 0 or -1. */
int ks_cookie_signer_init(ks_cookie_signer *s, const char *secret, size_t len);
void ks_cookie_signer_wipe(ks_cookie_signer *s);

/* Signs @p payload (@p plen bytes of base64) at time @p now into @p out
 * (NUL-terminated). Returns the value's length, or -1 if @p cap is too small. */
int ks_cookie_sign(const ks_cookie_signer *s, const char *payload, size_t plen, int64_t now,
                   char *out, size_t cap);

/* The time cookies are signed and checked at: CLOCK_REALTIME in whole
 * seconds, the clock of Python's time.time() that itsdangerous signs with.
 * Not time(): glibc reads the coarse clock there, which turns to the next
 * second a few milliseconds after CLOCK_REALTIME, so a cookie a Python
 * replica signed in those milliseconds would be "from the future" here and
 * refused (tests/server/cookie.py, a cookie signed just after a second turns). */
int64_t ks_cookie_now(void);

/* Checks @p value (@p len bytes). 0 with *plen = the payload's length (the
 * payload is the value's first *plen bytes) when the signature is right and
 * the age is within [0, max_age]; -1 otherwise. */
int ks_cookie_unsign(const ks_cookie_signer *s, const char *value, size_t len, int64_t now,
                     int64_t max_age, size_t *plen);

/* The payload of Kotte's session cookie for @p session_id and @p csrf_token
 * (both 43-character base64url tokens; @p csrf_token may be NULL), the one
 * place that decides what the cookie's JSON holds. Returns its length, or
 * -1 for a token of the wrong shape or a too small @p cap. */
int ks_cookie_session_payload(const char *session_id, const char *csrf_token, char *out,
                              size_t cap);

/* Reads a verified payload: its session_id (a well-formed token) into
 * @p session_id and its csrf_token (or "") into @p csrf_token. 0, or -1 when
 * the payload is not a JSON object holding a well-formed session_id. */
int ks_cookie_session_read(const char *payload, size_t plen,
                           char session_id[KOTTE_SESSION_ID_LEN + 1],
                           char csrf_token[KOTTE_TOKEN_LEN + 1]);

/* 1 if @p name may be a cookie name (an RFC 6265 token). */
int ks_cookie_name_valid(const char *name);

#endif
