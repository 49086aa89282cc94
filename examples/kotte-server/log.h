/* kotte-server: structured logging, one JSON object a line on stdout.
 *
 * Fields passed in are checked by name: any whose name says it holds a
 * secret (password, token, secret, key, cookie, authorization) is replaced
 * by "[redacted]" before printing, as a second line of defence; callers
 * never pass secrets in the first place. */
#ifndef KS_LOG_H
#define KS_LOG_H

#include <cjson/cJSON.h>

#include <kotte.h>

/* Sets the minimum level and routes libkotte's log hook into ks_log(). */
void ks_log_init(kotte_log_level min_level);

/* Logs @p message with @p event and @p fields (a cJSON object or NULL;
 * always consumed). Thread-safe (one fputs per line). */
void ks_log(kotte_log_level level, const char *event, cJSON *fields, const char *message);

/* Shorthand for a printf-formatted message without fields. */
void ks_logf(kotte_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Start, listen and stop lines: logged at INFO whatever LOG_LEVEL says,
 * so that an operator always sees where the server listens and why it
 * stopped. */
void ks_log_lifecycle(const char *event, cJSON *fields, const char *message);
void ks_lifecyclef(const char *event, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "2026-11-25T23:12:38.123456+00:00", as Python's datetime.isoformat(). */
void ks_iso_now(char out[40]);

/* A random UUID version 4 in canonical form. */
void ks_uuid4(char out[37]);

#endif
