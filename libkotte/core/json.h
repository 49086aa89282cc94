/* Private JSON helpers over cJSON. */
#ifndef KOTTE_CORE_JSON_H
#define KOTTE_CORE_JSON_H

#include <cjson/cJSON.h>

#include "core/internal.h"

/* Parses exactly one JSON object from text[0..len). KOTTE_EBADJSON otherwise. */
int kotte__json_parse_object(const char *text, size_t len, cJSON **out);

/* Compact text of @p j in kotte__malloc memory; KOTTE_ETOOBIG above @p max (0: no limit). */
int kotte__json_print(const cJSON *j, size_t max, char **out, size_t *out_len);

/* The compact form of @p text[0..len), which must already have parsed as
 * JSON: the same text without the blanks between tokens (numbers and
 * escapes stay as written), in kotte__malloc memory; KOTTE_ETOOBIG above
 * @p max (0: no limit). Far cheaper than printing the parsed tree again,
 * which formats every number twice (cJSON checks its %.15g round trip). */
int kotte__json_compact(const char *text, size_t len, size_t max, char **out, size_t *out_len);

/* Validates @p text (NULL means "{}") as an object and returns it compact. */
int kotte__json_normalize_object(const char *text, size_t max, char **out, size_t *out_len);

/* Sets every top-level key of @p patch on @p base (replacing existing ones). */
int kotte__json_merge_into(cJSON *base, const cJSON *patch);

/* Merges object texts: the compact result, or KOTTE_ETOOBIG above @p max. */
int kotte__json_merge(const char *base, size_t base_len, const char *patch, size_t patch_len,
                      size_t max, char **out, size_t *out_len);

/* Reads member @p key of @p obj as a kotte_time: 0, or -1 when it is missing,
 * not a number, or not within +-2^53 (whole numbers a double holds exactly;
 * casting anything beyond int64's range would be undefined behaviour). */
int kotte__json_get_time(const cJSON *obj, const char *key, kotte_time *out);

#endif
