/* libFuzzer target for the parsers that read untrusted bytes:
 *   first byte % 3 == 0: the rest is a json_file session journal on disk;
 *                   == 1: two JSON documents (split at the first NUL) to
 *                         normalise and merge as session data and patch;
 *                   == 2: a session id candidate.
 * Invariants: no crash, no leak, no undefined behaviour; a journal that is
 * refused as corrupt is left byte-for-byte as it was. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/json.h"
#include "session/session_journal.h"

static char path[4096];

static void fuzz_journal(const uint8_t *d, size_t n) {
  if (path[0] == '\0') {
    /* $KOTTE_FUZZ_DIR (tests/fuzz/run.sh: its own temporary folder), so that
     * no other run's clean-up can remove the file between the write and the
     * check (a shared /tmp pattern once did, seen as "changed on disk") */
    const char *dir = getenv("KOTTE_FUZZ_DIR");
    snprintf(path, sizeof path, "%s/kotte-fuzz-%d.journal", dir && *dir ? dir : "/tmp",
             (int)getpid());
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || (n && write(fd, d, n) != (ssize_t)n)) abort();
  close(fd);
  static kotte__id_keys keys;
  static int keys_ready;
  if (!keys_ready) {
    if (kotte__init() != 0 ||
        kotte__id_keys_init(&keys, (const unsigned char *)"fuzz-session-secret", 19, "fuzz") != 0)
      abort();
    keys_ready = 1;
  }
  kotte__session_table t;
  kotte__session_journal j;
  kotte__session_table_init(&t);
  int rc = kotte__session_journal_open(&j, path, &t, &keys);
  if (rc == 0) {
    kotte__session_journal_close(&j);
  } else if (rc == KOTTE_ECORRUPT) {
    /* refused: must be untouched */
    char *back = malloc(n + 1);
    fd = open(path, O_RDONLY);
    ssize_t got = read(fd, back, n + 1);
    close(fd);
    if (got != (ssize_t)n || memcmp(back, d, n) != 0) abort();
    free(back);
  } else if (rc != KOTTE_ENOMEM && rc != KOTTE_EIO) {
    abort();
  }
  kotte__session_table_clear(&t);
}

static void fuzz_json(const uint8_t *d, size_t n) {
  const uint8_t *nul = memchr(d, 0, n);
  size_t a = nul ? (size_t)(nul - d) : n;
  char *base = strndup((const char *)d, a);
  char *patch = nul ? strndup((const char *)nul + 1, n - a - 1) : strdup("{}");
  char *nb = NULL, *merged = NULL;
  size_t nb_len, m_len;
  if (kotte__json_normalize_object(base, 4096, &nb, &nb_len) == 0) {
    if (kotte__json_merge(nb, nb_len, patch, strlen(patch), 4096, &merged, &m_len) == 0 &&
        strlen(merged) != m_len)
      abort();
  }
  kotte__free(nb);
  kotte__free(merged);
  free(base);
  free(patch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  switch (data[0] % 3) {
  case 0: fuzz_journal(data + 1, size - 1); break;
  case 1: fuzz_json(data + 1, size - 1); break;
  case 2: {
    char *s = strndup((const char *)data + 1, size - 1);
    (void)kotte_token_is_valid(s);
    free(s);
    break;
  }
  }
  return 0;
}
