/* UTF-8 well-formedness: the rule PostgreSQL applies to text and jsonb in a
 * UTF8 database, checked before anything reaches a backend so that every
 * backend refuses the same input with the same code.
 *
 * Hand-written because none of the libraries libkotte links has a public
 * validator: cJSON copies string bytes as they come, libsodium has none,
 * libpq only measures characters (pg_utf_mblen), libuv's decoder is
 * internal. libunistring's u8_check() would be a new build dependency for
 * these few lines, which follow the Unicode Standard's table of
 * well-formed byte sequences (Table 3-7) exactly; test_core checks them
 * against glibc's UTF-8 decoder over every sequence of up to three bytes. */
#include "core/internal.h"

size_t kotte_utf8_check(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  if (s == NULL) return 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
    else return i; /* a continuation byte, or F8..FF */
    if (n - i < len) return i;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    /* overlong forms, UTF-16 surrogates, beyond U+10FFFF */
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return n;
}

int kotte__utf8_valid(const char *s, size_t n) { return kotte_utf8_check(s, n) == n; }
