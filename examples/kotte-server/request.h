/* kotte-server: reading the parts of a request that decide who is asking
 * and what they send: the session cookie, the CSRF header checked
 * against the session's token, and the JSON body. No answer is sent here
 * (the router and handlers answer), so the fuzz target can call them on
 * any bytes (tests/fuzz/fuzz_request.c). */
#ifndef KS_REQUEST_H
#define KS_REQUEST_H

#include <cjson/cJSON.h>

#include <kotte.h>

#include "http.h"

/* The cookie @p name as Starlette finds it: in the first Cookie header
 * field, the last pair with that name, surrounding blanks and one pair of
 * double quotes removed. 1 with *value pointing into the header (@p *len
 * bytes, not NUL-terminated), or 0 when there is none. Verifying it is
 * cookie.h's job (ks_cookie_unsign, ks_cookie_session_read). */
int ks_cookie_value(const ks_request *req, const char *name, const char **value, size_t *len);

/* The session's CSRF token: csrf_token of the session data @p sdata,
 * stored as the sealed secret {"$secret": TOKEN} (request.c) or, from an
 * older session, a plain string; NULL if there is none (or it is empty). */
const char *ks_session_csrf(const cJSON *sdata);

/* 1 if the request's X-CSRF-Token is non-empty and equal (compared in
 * constant time) to the session's CSRF token (ks_session_csrf). */
int ks_csrf_token_matches(const ks_request *req, const cJSON *sdata);

/* Reads the body as a JSON object, as FastAPI does: only without a
 * Content-Type or with application/json or application/...+json. Refused:
 * raw control characters and escaped NULs (cJSON would keep a string only
 * up to its NUL, see kotte_json_text_check), anything after the value, and
 * a value that is no object. Returns the object (free it with
 * ks_json_wipe_delete), or NULL with *type and *msg set to what the 422
 * answer names (pydantic's error type and message). */
cJSON *ks_json_body_parse(const ks_request *req, const char **type, const char **msg);

/* Wipes string values (passwords) of @p j and deletes it. NULL is a no-op. */
void ks_json_wipe_delete(cJSON *j);

#endif
