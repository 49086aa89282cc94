/* The durable file journal: append, replay, lock, torn tails, compaction. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/journal_file.h"
#include "core/json.h"

#define HASH_HEX 16

static const unsigned char zero_key[crypto_shorthash_KEYBYTES];

static void line_hash(const char *json, size_t len, char hex[HASH_HEX + 1]) {
  unsigned char h[crypto_shorthash_BYTES];
  crypto_shorthash(h, (const unsigned char *)json, len, zero_key);
  sodium_bin2hex(hex, HASH_HEX + 1, h, sizeof h);
}

/* ---- output buffer ------------------------------------------------------ */

void kotte__journal_buf_add(kotte__journal_buf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    char *p = kotte__realloc(b->p, cap);
    if (p == NULL) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void buf_text_line(kotte__journal_buf *b, const char *s, size_t n) {
  char hex[HASH_HEX + 1];
  line_hash(s, n, hex);
  kotte__journal_buf_add(b, hex, HASH_HEX);
  kotte__journal_buf_add(b, " ", 1);
  kotte__journal_buf_add(b, s, n);
  kotte__journal_buf_add(b, "\n", 1);
}

void kotte__journal_buf_line(kotte__journal_buf *b, cJSON *j) {
  char *s = j ? cJSON_PrintUnformatted(j) : NULL;
  cJSON_Delete(j);
  if (s == NULL) {
    b->oom = 1;
    return;
  }
  buf_text_line(b, s, strlen(s));
  cJSON_free(s);
}

void kotte__journal_buf_free(kotte__journal_buf *b) {
  kotte__free(b->p);
  memset(b, 0, sizeof *b);
}

/* The header line, e.g. {"kotte":"sessions","version":2}: always the
 * current version (an older file is rewritten, never appended to). */
static void header_json(const kotte__journal *j, char *out, size_t cap) {
  snprintf(out, cap, "{\"kotte\":\"%s\",\"version\":%d}", j->ops->kind, j->ops->version);
}

/* The write check's record, skipped on replay (see kotte__journal_check):
 * {"op":"nop","pad":"...."}, padded past one 4 KiB block so that writing it
 * needs new space on the disk (a smaller one could land in the room left
 * in the journal's last block and pass on a full disk). */
#define NOP_PAD 4096

/* ---- errors ------------------------------------------------------------- */

static int corrupt(const kotte__journal *j, off_t at, const char *what) {
  kotte__log(KOTTE_LOG_ERROR, "%s store %s: %s at byte %lld; refusing to use it", j->ops->noun,
             j->path, what, (long long)at);
  return kotte__fail(KOTTE_ECORRUPT, "%s store file %s: %s at byte %lld", j->ops->noun,
                     j->path, what, (long long)at);
}

static int io_error(const kotte__journal *j, const char *what) {
  int e = errno;
  kotte__log(KOTTE_LOG_ERROR, "%s store %s: %s: %s", j->ops->noun, j->path, what, strerror(e));
  return kotte__fail(KOTTE_EIO, "%s store file %s: %s: %s", j->ops->noun, j->path, what,
                     strerror(e));
}

/* ---- replay ------------------------------------------------------------- */

/* Checks and parses one line (without its newline). */
static int parse_line(const char *line, size_t len, cJSON **out) {
  *out = NULL;
  if (len < HASH_HEX + 2 || line[HASH_HEX] != ' ') return KOTTE_ECORRUPT;
  char hex[HASH_HEX + 1];
  const char *json = line + HASH_HEX + 1;
  size_t jlen = len - HASH_HEX - 1;
  line_hash(json, jlen, hex);
  if (memcmp(hex, line, HASH_HEX) != 0) return KOTTE_ECORRUPT;
  return kotte__json_parse_object(json, jlen, out) == 0 ? 0 : KOTTE_ECORRUPT;
}

/* A header of our kind in a version we read: sets j->version. */
static int header_ok(kotte__journal *j, const cJSON *rec) {
  const cJSON *k = cJSON_GetObjectItemCaseSensitive(rec, "kotte");
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, "version");
  if (!cJSON_IsString(k) || strcmp(k->valuestring, j->ops->kind) != 0 || !cJSON_IsNumber(v))
    return 0;
  for (int version = j->ops->min_version; version <= j->ops->version; version++) {
    if (v->valuedouble == version) {
      j->version = version;
      return 1;
    }
  }
  return 0;
}

static int is_nop(const cJSON *rec) {
  const cJSON *op = cJSON_GetObjectItemCaseSensitive(rec, "op");
  return cJSON_IsString(op) && strcmp(op->valuestring, "nop") == 0;
}

/*
 * Reads the journal from j->applied to its end and applies each complete
 * line. An incomplete last line is truncated away (we hold the lock, so
 * its writer is dead). Reading from byte 0 expects the header first.
 */
static int catch_up(kotte__journal *j, off_t size) {
  if (size == j->applied) return 0;
  size_t n = (size_t)(size - j->applied);
  char *buf = kotte__malloc(n);
  if (buf == NULL) return KOTTE_ENOMEM;
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(j->fd, buf + got, n - got, j->applied + (off_t)got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      kotte__free(buf);
      return r < 0 ? io_error(j, "read") : corrupt(j, j->applied, "file shrank while reading");
    }
    got += (size_t)r;
  }
  char what[96];
  int rc = 0;
  size_t pos = 0;
  while (pos < n) {
    char *nl = memchr(buf + pos, '\n', n - pos);
    off_t at = j->applied;
    if (nl == NULL && j->records == 0) {
      /* Without a complete header this is not our file: never cut it. */
      snprintf(what, sizeof what, "not a libkotte %s journal", j->ops->noun);
      rc = corrupt(j, at, what);
      break;
    }
    if (nl == NULL) {
      /* Past what this process read: a write whose writer died (or failed)
       * before acknowledging it. A file cut short inside what this process
       * had read never gets here (kotte__journal_lock restores it first). */
      kotte__log(KOTTE_LOG_WARN, "%s store %s: dropping an incomplete last record (%zu bytes "
                                 "at byte %lld): a write that never completed, or a file cut "
                                 "short before this process read it", j->ops->noun, j->path,
                 n - pos, (long long)at);
      if (ftruncate(j->fd, at) != 0) rc = io_error(j, "truncate partial record");
      break;
    }
    size_t len = (size_t)(nl - (buf + pos));
    cJSON *rec;
    if (parse_line(buf + pos, len, &rec) != 0) {
      rc = corrupt(j, at, "damaged record");
      break;
    }
    if (j->records == 0) {
      int good = header_ok(j, rec);
      cJSON_Delete(rec);
      if (!good) {
        snprintf(what, sizeof what, "not a libkotte %s journal (versions %d to %d)",
                 j->ops->noun, j->ops->min_version, j->ops->version);
        rc = corrupt(j, at, what);
        break;
      }
    } else if (is_nop(rec)) {
      cJSON_Delete(rec);
    } else {
      rc = j->ops->apply(j->ctx, j->version, rec);
      cJSON_Delete(rec);
      if (rc == KOTTE_ECORRUPT) rc = corrupt(j, at, "invalid record");
      if (rc != 0) break;
    }
    j->records++;
    pos += len + 1;
    j->applied += (off_t)(len + 1);
  }
  kotte__free(buf);
  return rc;
}

static int open_file(kotte__journal *j) {
  int fd = open(j->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return io_error(j, "open");
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return io_error(j, "stat");
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return corrupt(j, 0, "not a regular file");
  }
  if (j->fd >= 0) close(j->fd);
  j->fd = fd;
  j->dev = st.st_dev;
  j->ino = st.st_ino;
  j->applied = 0;
  j->records = 0;
  j->version = 0;
  return 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int fsync_dir(const char *path) {
  char *copy = kotte__strdup(path);
  if (copy == NULL) return -1;
  int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  kotte__free(copy);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

/*
 * Writes the header and ops->snapshot to "<path>.tmp", fsyncs it, renames
 * it over the journal, fsyncs the directory and reopens: the compaction,
 * also used to upgrade an older format and to restore a damaged file. Lock
 * held. Afterwards the file holds exactly the caller's state. On failure
 * the old file stays as it was.
 */
static int write_snapshot(kotte__journal *j) {
  kotte__journal_buf b = { NULL, 0, 0, 0 };
  char header[96];
  header_json(j, header, sizeof header);
  buf_text_line(&b, header, strlen(header));
  size_t lines = 1 + j->ops->snapshot(j->ctx, &b);
  if (b.oom) {
    kotte__journal_buf_free(&b);
    return KOTTE_ENOMEM;
  }
  size_t plen = strlen(j->path);
  char *tmp = kotte__malloc(plen + 5);
  if (tmp == NULL) {
    kotte__journal_buf_free(&b);
    return KOTTE_ENOMEM;
  }
  memcpy(tmp, j->path, plen);
  memcpy(tmp + plen, ".tmp", 5);
  int rc = 0;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || write_all(fd, b.p, b.len) != 0 || fsync(fd) != 0) {
    rc = io_error(j, "write compacted journal");
    if (fd >= 0) close(fd);
    unlink(tmp);
  } else {
    close(fd);
    if (rename(tmp, j->path) != 0) {
      rc = io_error(j, "rename compacted journal");
      unlink(tmp);
    } else {
      fsync_dir(j->path);
      if ((rc = open_file(j)) == 0) {
        j->applied = (off_t)b.len;
        j->records = lines;
        j->version = j->ops->version;
        j->stale = 0;
      } else {
        j->stale = 1; /* the next lock reloads the file just written */
      }
    }
  }
  j->write_error = rc;
  kotte__free(tmp);
  kotte__journal_buf_free(&b);
  return rc;
}

/*
 * The journal was cut below what this process had read from it, or
 * removed. libkotte does neither (it cuts only an incomplete last line
 * beyond what any process read, and replaces the file by rename), so
 * someone else damaged it. Every record this process read had been
 * acknowledged: the file is rewritten from this process's state rather
 * than taken for what is left of it. (Another process sharing the file
 * that read records this one had not yet read reloads the rewritten file
 * and loses those: see kotte/session.h. And if this process's last batch
 * failed, its changes are in the state too and get written: a write
 * reported as failed may then have taken effect, which beats losing every
 * write that was reported as done.)
 */
static int restore(kotte__journal *j, const char *what) {
  size_t live = j->ops->live(j->ctx);
  kotte__log(KOTTE_LOG_ERROR, "%s store %s: %s; libkotte never does this, so something else "
                              "damaged the file: rewriting it from the %zu records this process "
                              "holds", j->ops->noun, j->path, what, live);
  int rc = write_snapshot(j);
  if (rc == 0)
    kotte__log(KOTTE_LOG_WARN, "%s store %s: rewritten from this process's %zu records",
               j->ops->noun, j->path, live);
  else
    kotte__log(KOTTE_LOG_ERROR, "%s store %s: cannot rewrite it (%s); every operation fails "
                                "until it can", j->ops->noun, j->path, kotte_strerror(rc));
  return rc;
}

int kotte__journal_lock(kotte__journal *j) {
  while (flock(j->lock_fd, LOCK_EX) != 0) {
    if (errno != EINTR) {
      int e = errno;
      kotte__log(KOTTE_LOG_ERROR, "%s store %s: cannot lock %s: %s", j->ops->noun, j->path,
                 j->lock_path, strerror(e));
      return kotte__fail(KOTTE_ELOCK, "cannot lock %s: %s", j->lock_path, strerror(e));
    }
  }
  struct stat by_path, by_fd;
  char what[160];
  int rc = 0;
  if (stat(j->path, &by_path) != 0) {
    if (errno != ENOENT) {
      rc = io_error(j, "stat");
      goto fail;
    }
    if (j->applied > 0) {
      snprintf(what, sizeof what, "the journal was removed while in use (this process had "
               "read %lld bytes of it)", (long long)j->applied);
      if ((rc = restore(j, what)) != 0) goto fail;
      return 0;
    }
    j->stale = 1;
    if ((rc = open_file(j)) != 0) goto fail;
  } else if (by_path.st_dev != j->dev || by_path.st_ino != j->ino) {
    /* Replaced by another process's compaction: start over. */
    j->stale = 1;
    if ((rc = open_file(j)) != 0) goto fail;
  }
  if (fstat(j->fd, &by_fd) != 0) {
    rc = io_error(j, "stat");
    goto fail;
  }
  if (by_fd.st_size < j->applied) {
    snprintf(what, sizeof what, "the journal shrank from %lld bytes to %lld bytes while in use",
             (long long)j->applied, (long long)by_fd.st_size);
    if ((rc = restore(j, what)) != 0) goto fail;
    return 0;
  }
  if (j->stale) {
    j->ops->reset(j->ctx);
    j->applied = 0;
    j->records = 0;
    j->stale = 0;
  }
  if (by_fd.st_size == 0) {
    /* A new file (or one whose creator died before the header): start it. */
    char header[96];
    header_json(j, header, sizeof header);
    kotte__journal_buf b = { NULL, 0, 0, 0 };
    buf_text_line(&b, header, strlen(header));
    if (b.oom) {
      rc = KOTTE_ENOMEM;
      goto fail;
    }
    if (write_all(j->fd, b.p, b.len) != 0 || fdatasync(j->fd) != 0 || fsync_dir(j->path) != 0) {
      kotte__journal_buf_free(&b);
      rc = j->write_error = io_error(j, "write header");
      goto fail;
    }
    j->applied = (off_t)b.len;
    j->records = 1;
    j->version = j->ops->version;
    kotte__journal_buf_free(&b);
    return 0;
  }
  rc = catch_up(j, by_fd.st_size);
  if (rc == 0 && j->version < j->ops->version) {
    /* Never append to an older format: rewrite it in the current one. */
    kotte__log(KOTTE_LOG_INFO, "%s store %s: rewriting the journal from format version %d to %d",
               j->ops->noun, j->path, j->version, j->ops->version);
    rc = write_snapshot(j);
  }
  if (rc == 0) return 0;
fail:
  /* Whatever was half-applied is dropped; the next lock reloads (or, for
   * a damaged file, tries to restore it again). */
  j->stale = 1;
  flock(j->lock_fd, LOCK_UN);
  return rc;
}

void kotte__journal_unlock(kotte__journal *j) { flock(j->lock_fd, LOCK_UN); }

int kotte__journal_append(kotte__journal *j, const kotte__journal_buf *b, size_t lines,
                          int sync) {
  if (b->oom) {
    j->stale = 1;
    return KOTTE_ENOMEM;
  }
  if (b->len == 0) return 0;
  if (write_all(j->fd, b->p, b->len) != 0 || (sync && fdatasync(j->fd) != 0)) {
    int rc = io_error(j, "append");
    /* The caller's state already holds the changes: rebuild it from the
     * file. A partial line is truncated by the next lock holder. */
    j->stale = 1;
    j->write_error = rc;
    return rc;
  }
  j->applied += (off_t)b->len;
  j->records += lines;
  j->write_error = 0;
  return 0;
}

int kotte__journal_check(kotte__journal *j, kotte__journal_buf *b, size_t *lines) {
  if (j->write_error == 0) return 0;
  static const char head[] = "{\"op\":\"nop\",\"pad\":\"", tail[] = "\"}";
  char *json = kotte__malloc(sizeof head - 1 + NOP_PAD + sizeof tail);
  if (json == NULL) {
    b->oom = 1; /* the batch fails with KOTTE_ENOMEM: not ready */
    return 1;
  }
  memcpy(json, head, sizeof head - 1);
  memset(json + sizeof head - 1, '.', NOP_PAD);
  memcpy(json + sizeof head - 1 + NOP_PAD, tail, sizeof tail);
  buf_text_line(b, json, sizeof head - 1 + NOP_PAD + sizeof tail - 1);
  kotte__free(json);
  (*lines)++;
  return 1;
}

int kotte__journal_maybe_compact(kotte__journal *j) {
  size_t live = j->ops->live(j->ctx);
  if (j->records < 2 * live + 1024) return 0;
  int rc = write_snapshot(j);
  /* Compaction is an optimisation: the appends that just succeeded say
   * the journal is writable; a failure here is retried after later ones. */
  j->write_error = 0;
  return rc;
}

int kotte__journal_open(kotte__journal *j, const char *path, const kotte__journal_ops *ops,
                        void *ctx) {
  memset(j, 0, sizeof *j);
  j->fd = j->lock_fd = -1;
  j->ops = ops;
  j->ctx = ctx;
  size_t plen = strlen(path);
  j->path = kotte__strdup(path);
  j->lock_path = kotte__malloc(plen + 6);
  if (j->path == NULL || j->lock_path == NULL) {
    kotte__journal_close(j);
    return KOTTE_ENOMEM;
  }
  memcpy(j->lock_path, path, plen);
  memcpy(j->lock_path + plen, ".lock", 6);
  int rc;
  j->lock_fd = open(j->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (j->lock_fd < 0) {
    int e = errno;
    rc = kotte__fail(KOTTE_EIO, "cannot open %s: %s", j->lock_path, strerror(e));
    kotte__journal_close(j);
    return rc;
  }
  /* An existing empty file holds nothing to lose (a creator that died
   * before its header, or a file emptied while no process had it open):
   * it becomes a new store, with a warning. A file with bytes but no
   * complete header of ours is refused (KOTTE_ECORRUPT). */
  struct stat st;
  int was_empty = stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0;
  if ((rc = open_file(j)) != 0 || (rc = kotte__journal_lock(j)) != 0) {
    ops->reset(ctx);
    kotte__journal_close(j);
    return rc;
  }
  kotte__journal_unlock(j);
  if (was_empty)
    kotte__log(KOTTE_LOG_WARN, "%s store %s: the file exists but is empty; starting a new store "
                               "in it", ops->noun, path);
  return 0;
}

void kotte__journal_close(kotte__journal *j) {
  if (j->fd >= 0) close(j->fd);
  if (j->lock_fd >= 0) close(j->lock_fd);
  kotte__free(j->path);
  kotte__free(j->lock_path);
  j->fd = j->lock_fd = -1;
  j->path = j->lock_path = NULL;
}
