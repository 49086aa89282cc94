/* JSON helpers over cJSON: validation, normalisation and top-level merge. */
#include <cjson/cJSON.h>
#include <string.h>

#include "core/json.h"

static int is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A lexical pass over JSON text, not a parser: it only needs to know
 * whether a byte is inside a string and which bytes an escape covers;
 * cJSON does the parsing. */
int kotte_json_text_check(const char *text, size_t len) {
  if (text == NULL) return len ? KOTTE_EINVAL : 0;
  int in_string = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)text[i];
    if (ch < 0x20) {
      if (in_string || (ch != '\t' && ch != '\n' && ch != '\r'))
        return kotte__fail(KOTTE_EBADJSON, "raw control character 0x%02x in JSON text", ch);
    } else if (ch == '"') {
      in_string = !in_string;
    } else if (ch == '\\' && in_string && i + 1 < len) {
      /* the escaped character: never the end of the string */
      unsigned char next = (unsigned char)text[++i];
      if (next < 0x20)
        return kotte__fail(KOTTE_EBADJSON, "raw control character 0x%02x in JSON text", next);
      if (next != 'u') continue;
      /* cJSON reads a \u escape whose four characters are not all hex
       * digits as \u0000 (its parse_hex4 answers 0): refused as the
       * invalid JSON it is */
      if (len - i <= 4 || !is_hex(text[i + 1]) || !is_hex(text[i + 2]) || !is_hex(text[i + 3]) ||
          !is_hex(text[i + 4]))
        return kotte__fail(KOTTE_EBADJSON, "a \\u escape without four hex digits in JSON text");
      if (memcmp(text + i + 1, "0000", 4) == 0)
        return kotte__fail(KOTTE_EINVAL, "a JSON string holds an escaped NUL (\\u0000)");
    }
  }
  return 0;
}

int kotte__json_parse_object(const char *text, size_t len, cJSON **out) {
  *out = NULL;
  if (text == NULL) return KOTTE_EBADJSON;
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  if (j == NULL) return KOTTE_EBADJSON;
  /* Anything but whitespace after the value is an error. */
  while (end && end < text + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
    end++;
  if (!cJSON_IsObject(j) || (end && end < text + len)) {
    cJSON_Delete(j);
    return KOTTE_EBADJSON;
  }
  *out = j;
  return 0;
}

int kotte__json_print(const cJSON *j, size_t max, char **out, size_t *out_len) {
  char *s = cJSON_PrintUnformatted(j);
  if (s == NULL) return KOTTE_ENOMEM;
  size_t n = strlen(s);
  if (max && n > max) {
    cJSON_free(s);
    return KOTTE_ETOOBIG;
  }
  /* Copy into our allocator's memory so every string a caller frees comes
   * from kotte__malloc (cJSON_free and kotte__free are the same hook, but
   * keeping one owner is simpler to audit). */
  *out = kotte__strndup(s, n);
  cJSON_free(s);
  if (*out == NULL) return KOTTE_ENOMEM;
  if (out_len) *out_len = n;
  return 0;
}

int kotte__json_normalize_object(const char *text, size_t max, char **out, size_t *out_len) {
  *out = NULL;
  if (text == NULL) text = "{}";
  size_t len = strlen(text);
  /* Compact printing never grows a document by more than a few bytes per
   * value, but an input far beyond the limit is refused before parsing. */
  if (max && len > 4 * max + 1024) return KOTTE_ETOOBIG;
  cJSON *j;
  int rc = kotte__json_parse_object(text, len, &j);
  if (rc != 0) return rc;
  rc = kotte__json_print(j, max, out, out_len);
  cJSON_Delete(j);
  return rc;
}

int kotte__json_merge_into(cJSON *base, const cJSON *patch) {
  for (const cJSON *item = patch->child; item; item = item->next) {
    cJSON *copy = cJSON_Duplicate(item, 1);
    if (copy == NULL) return KOTTE_ENOMEM;
    if (cJSON_GetObjectItemCaseSensitive(base, item->string)) {
      if (!cJSON_ReplaceItemInObjectCaseSensitive(base, item->string, copy)) {
        cJSON_Delete(copy);
        return KOTTE_ENOMEM;
      }
    } else if (!cJSON_AddItemToObject(base, item->string, copy)) {
      cJSON_Delete(copy);
      return KOTTE_ENOMEM;
    }
  }
  return 0;
}

int kotte__json_merge(const char *base, size_t base_len, const char *patch, size_t patch_len,
                      size_t max, char **out, size_t *out_len) {
  cJSON *b = NULL, *p = NULL;
  *out = NULL;
  int rc = kotte__json_parse_object(base, base_len, &b);
  if (rc == 0) rc = kotte__json_parse_object(patch, patch_len, &p);
  if (rc == 0) rc = kotte__json_merge_into(b, p);
  if (rc == 0) rc = kotte__json_print(b, max, out, out_len);
  cJSON_Delete(b);
  cJSON_Delete(p);
  return rc;
}

int kotte__json_get_time(const cJSON *obj, const char *key, kotte_time *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  const double limit = 9007199254740992.0; /* 2^53 */
  if (!cJSON_IsNumber(v) || !(v->valuedouble >= -limit && v->valuedouble <= limit)) return -1;
  *out = (kotte_time)v->valuedouble;
  return 0;
}

int kotte__json_compact(const char *text, size_t len, size_t max, char **out, size_t *out_len) {
  *out = NULL;
  char *s = kotte__strndup(text, len);
  if (s == NULL) return KOTTE_ENOMEM;
  cJSON_Minify(s); /* in place: drops the blanks between tokens */
  size_t n = strlen(s);
  if (max && n > max) {
    kotte__free(s);
    return KOTTE_ETOOBIG;
  }
  *out = s;
  if (out_len) *out_len = n;
  return 0;
}
