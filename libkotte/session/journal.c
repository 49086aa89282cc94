/* The json_file session journal: append, replay, lock, compact. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/json.h"
#include "session/journal.h"

#define HEADER "{\"kotte\":\"sessions\",\"version\":1}"
#define HASH_HEX 16

static const unsigned char zero_key[crypto_shorthash_KEYBYTES];

static void line_hash(const char *json, size_t len, char hex[HASH_HEX + 1]) {
  unsigned char h[crypto_shorthash_BYTES];
  crypto_shorthash(h, (const unsigned char *)json, len, zero_key);
  sodium_bin2hex(hex, HASH_HEX + 1, h, sizeof h);
}

/* ---- output buffer ------------------------------------------------------ */

static void buf_add(kj_buf *b, const char *s, size_t n) {
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

static void buf_line(kj_buf *b, cJSON *j) {
  char *s = j ? cJSON_PrintUnformatted(j) : NULL;
  cJSON_Delete(j);
  if (s == NULL) {
    b->oom = 1;
    return;
  }
  char hex[HASH_HEX + 1];
  size_t n = strlen(s);
  line_hash(s, n, hex);
  buf_add(b, hex, HASH_HEX);
  buf_add(b, " ", 1);
  buf_add(b, s, n);
  buf_add(b, "\n", 1);
  cJSON_free(s);
}

void kj_buf_free(kj_buf *b) {
  kotte__free(b->p);
  memset(b, 0, sizeof *b);
}

static cJSON *op_obj(const char *op) {
  cJSON *j = cJSON_CreateObject();
  if (j && !cJSON_AddStringToObject(j, "op", op)) {
    cJSON_Delete(j);
    return NULL;
  }
  return j;
}

/* cJSON_Add*ToObject return NULL on failure; collect that in one flag. */
#define ADD(ok, expr) ((ok) = (ok) && (expr) != NULL)

void kj_buf_put(kj_buf *b, const char *from_id, const kt_entry *e) {
  cJSON *j = op_obj(from_id ? "mv" : "put");
  int ok = j != NULL;
  if (from_id) ADD(ok, cJSON_AddStringToObject(j, "from", from_id));
  ADD(ok, cJSON_AddStringToObject(j, "id", e->id));
  ADD(ok, cJSON_AddStringToObject(j, "u", e->user->user_id));
  ADD(ok, cJSON_AddRawToObject(j, "d", e->data)); /* already compact JSON */
  ADD(ok, cJSON_AddNumberToObject(j, "c", (double)e->created_at));
  ADD(ok, cJSON_AddNumberToObject(j, "a", (double)e->last_activity));
  ADD(ok, cJSON_AddNumberToObject(j, "e", (double)e->expires_at));
  ADD(ok, cJSON_AddNumberToObject(j, "m", (double)e->max_expires_at));
  ADD(ok, cJSON_AddNumberToObject(j, "i", (double)e->idle_timeout));
  if (!ok) {
    cJSON_Delete(j);
    j = NULL;
  }
  buf_line(b, j);
}

void kj_buf_touch(kj_buf *b, const kt_entry *e) {
  cJSON *j = op_obj("touch");
  int ok = j != NULL;
  ADD(ok, cJSON_AddStringToObject(j, "id", e->id));
  ADD(ok, cJSON_AddNumberToObject(j, "a", (double)e->last_activity));
  ADD(ok, cJSON_AddNumberToObject(j, "e", (double)e->expires_at));
  if (!ok) {
    cJSON_Delete(j);
    j = NULL;
  }
  buf_line(b, j);
}

static void buf_one(kj_buf *b, const char *op, const char *key, const char *val) {
  cJSON *j = op_obj(op);
  if (j && !cJSON_AddStringToObject(j, key, val)) {
    cJSON_Delete(j);
    j = NULL;
  }
  buf_line(b, j);
}

void kj_buf_del(kj_buf *b, const char *id) { buf_one(b, "del", "id", id); }
void kj_buf_delu(kj_buf *b, const char *user_id) { buf_one(b, "delu", "u", user_id); }

/* ---- replay ------------------------------------------------------------- */

static int get_time(const cJSON *j, const char *k, kotte_time *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
  if (!cJSON_IsNumber(v)) return -1;
  *out = (kotte_time)v->valuedouble;
  return 0;
}

static const char *get_str(const cJSON *j, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *get_id(const cJSON *j, const char *k) {
  const char *id = get_str(j, k);
  return kotte_token_is_valid(id) ? id : NULL;
}

/* Applies one record. 0, KOTTE_ECORRUPT (bad record) or KOTTE_ENOMEM. */
static int apply(kt_table *t, const cJSON *j) {
  const char *op = get_str(j, "op");
  if (op == NULL) return KOTTE_ECORRUPT;
  if (strcmp(op, "put") == 0 || strcmp(op, "mv") == 0) {
    kotte_session_record r;
    const char *from = NULL;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "d");
    r.id = get_id(j, "id");
    r.user_id = get_str(j, "u");
    if (op[0] == 'm' && (from = get_id(j, "from")) == NULL) return KOTTE_ECORRUPT;
    if (!r.id || !kotte__user_id_valid(r.user_id) || !cJSON_IsObject(d) ||
        get_time(j, "c", &r.created_at) || get_time(j, "a", &r.last_activity) ||
        get_time(j, "e", &r.expires_at) || get_time(j, "m", &r.max_expires_at) ||
        get_time(j, "i", &r.idle_timeout))
      return KOTTE_ECORRUPT;
    char *data;
    size_t len;
    int rc = kotte__json_print(d, 0, &data, &len);
    if (rc != 0) return rc;
    r.data = data;
    r.data_len = len;
    if (from) kt_remove(t, from);
    rc = kt_put_raw(t, &r, NULL);
    kotte__free(data);
    return rc;
  }
  if (strcmp(op, "touch") == 0) {
    const char *id = get_id(j, "id");
    kotte_time a, e;
    if (!id || get_time(j, "a", &a) || get_time(j, "e", &e)) return KOTTE_ECORRUPT;
    kt_touch_raw(t, id, a, e);
    return 0;
  }
  if (strcmp(op, "del") == 0) {
    const char *id = get_id(j, "id");
    if (!id) return KOTTE_ECORRUPT;
    kt_remove(t, id);
    return 0;
  }
  if (strcmp(op, "delu") == 0) {
    const char *u = get_str(j, "u");
    if (!kotte__user_id_valid(u)) return KOTTE_ECORRUPT;
    kt_remove_user(t, u);
    return 0;
  }
  return KOTTE_ECORRUPT;
}

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

static int corrupt(const kj *j, off_t at, const char *what) {
  kotte__log(KOTTE_LOG_ERROR, "session store %s: %s at byte %lld; refusing to use it", j->path,
             what, (long long)at);
  return kotte__fail(KOTTE_ECORRUPT, "session store file %s: %s at byte %lld", j->path, what,
                     (long long)at);
}

static int io_error(const kj *j, const char *what) {
  int e = errno;
  kotte__log(KOTTE_LOG_ERROR, "session store %s: %s: %s", j->path, what, strerror(e));
  return kotte__fail(KOTTE_EIO, "session store file %s: %s: %s", j->path, what, strerror(e));
}

/*
 * Reads the journal from j->applied to its end and applies each complete
 * line. An incomplete last line is truncated away (we hold the lock, so
 * its writer is dead). Reading starts at byte 0 with `header` set.
 */
static int catch_up(kj *j, kt_table *t, off_t size) {
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
  int rc = 0;
  size_t pos = 0;
  while (pos < n) {
    char *nl = memchr(buf + pos, '\n', n - pos);
    off_t at = j->applied;
    if (nl == NULL && j->records == 0) {
      /* Without a complete header this is not our file: never cut it. */
      rc = corrupt(j, at, "not a libkotte session journal");
      break;
    }
    if (nl == NULL) {
      kotte__log(KOTTE_LOG_WARN, "session store %s: dropping an unacknowledged partial record "
                                 "(%zu bytes) at byte %lld", j->path, n - pos, (long long)at);
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
      /* the header */
      const cJSON *k = cJSON_GetObjectItemCaseSensitive(rec, "kotte");
      const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, "version");
      int good = cJSON_IsString(k) && strcmp(k->valuestring, "sessions") == 0 &&
                 cJSON_IsNumber(v) && v->valuedouble == 1;
      cJSON_Delete(rec);
      if (!good) {
        rc = corrupt(j, at, "not a libkotte session journal (version 1)");
        break;
      }
    } else {
      rc = apply(t, rec);
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

static int open_journal(kj *j) {
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

int kj_lock(kj *j, kt_table *t) {
  while (flock(j->lock_fd, LOCK_EX) != 0) {
    if (errno != EINTR) {
      int e = errno;
      kotte__log(KOTTE_LOG_ERROR, "session store %s: cannot lock %s: %s", j->path, j->lock_path,
                 strerror(e));
      return kotte__fail(KOTTE_ELOCK, "cannot lock %s: %s", j->lock_path, strerror(e));
    }
  }
  struct stat by_path, by_fd;
  int rc = 0;
  if (stat(j->path, &by_path) != 0 || by_path.st_dev != j->dev || by_path.st_ino != j->ino) {
    /* Replaced by another process's compaction (or removed): start over. */
    j->stale = 1;
    if ((rc = open_journal(j)) != 0) goto fail;
  }
  if (fstat(j->fd, &by_fd) != 0) {
    rc = io_error(j, "stat");
    goto fail;
  }
  if (by_fd.st_size < j->applied) j->stale = 1; /* truncated: rebuild */
  if (j->stale) {
    kt_clear(t);
    j->applied = 0;
    j->records = 0;
    j->stale = 0;
  }
  if (by_fd.st_size == 0) {
    /* A new file (or one whose creator died before the header): start it. */
    char hex[HASH_HEX + 1];
    line_hash(HEADER, strlen(HEADER), hex);
    char line[HASH_HEX + sizeof HEADER + 2];
    int n = snprintf(line, sizeof line, "%s %s\n", hex, HEADER);
    if (write_all(j->fd, line, (size_t)n) != 0 || fdatasync(j->fd) != 0 ||
        fsync_dir(j->path) != 0) {
      rc = io_error(j, "write header");
      goto fail;
    }
    j->applied = n;
    j->records = 1;
    return 0;
  }
  rc = catch_up(j, t, by_fd.st_size);
  if (rc == 0) return 0;
fail:
  /* Whatever was half-applied is dropped; the next lock reloads. */
  j->stale = 1;
  flock(j->lock_fd, LOCK_UN);
  return rc;
}

void kj_unlock(kj *j) { flock(j->lock_fd, LOCK_UN); }

int kj_append(kj *j, const kj_buf *b, size_t lines, int sync) {
  if (b->oom) {
    j->stale = 1;
    return KOTTE_ENOMEM;
  }
  if (b->len == 0) return 0;
  if (write_all(j->fd, b->p, b->len) != 0 || (sync && fdatasync(j->fd) != 0)) {
    int rc = io_error(j, "append");
    /* The table already holds the changes: rebuild it from the file. A
     * partial line is truncated by the next lock holder. */
    j->stale = 1;
    return rc;
  }
  j->applied += (off_t)b->len;
  j->records += lines;
  return 0;
}

typedef struct snap {
  kj_buf buf;
  kotte_time now;
  size_t lines;
} snap;

static void snap_entry(const kt_entry *e, void *ctx) {
  snap *s = ctx;
  kj_buf_put(&s->buf, NULL, e);
  s->lines++;
}

int kj_maybe_compact(kj *j, kt_table *t) {
  size_t live = kt_count(t);
  if (j->records < 2 * live + 1024) return 0;
  snap s = { { NULL, 0, 0, 0 }, 0, 1 };
  char hex[HASH_HEX + 1];
  line_hash(HEADER, strlen(HEADER), hex);
  buf_add(&s.buf, hex, HASH_HEX);
  buf_add(&s.buf, " " HEADER "\n", sizeof HEADER + 1);
  kt_foreach(t, snap_entry, &s);
  if (s.buf.oom) {
    kj_buf_free(&s.buf);
    return KOTTE_ENOMEM; /* compaction is an optimisation: try again later */
  }
  size_t plen = strlen(j->path);
  char *tmp = kotte__malloc(plen + 5);
  if (tmp == NULL) {
    kj_buf_free(&s.buf);
    return KOTTE_ENOMEM;
  }
  memcpy(tmp, j->path, plen);
  memcpy(tmp + plen, ".tmp", 5);
  int rc = 0;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || write_all(fd, s.buf.p, s.buf.len) != 0 || fsync(fd) != 0) {
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
      if ((rc = open_journal(j)) == 0) {
        j->applied = (off_t)s.buf.len;
        j->records = s.lines;
      } else {
        j->stale = 1;
      }
    }
  }
  kotte__free(tmp);
  kj_buf_free(&s.buf);
  return rc;
}

int kj_open(kj *j, const char *path, kt_table *t) {
  memset(j, 0, sizeof *j);
  j->fd = j->lock_fd = -1;
  size_t plen = strlen(path);
  j->path = kotte__strdup(path);
  j->lock_path = kotte__malloc(plen + 6);
  if (j->path == NULL || j->lock_path == NULL) {
    kj_close(j);
    return KOTTE_ENOMEM;
  }
  memcpy(j->lock_path, path, plen);
  memcpy(j->lock_path + plen, ".lock", 6);
  int rc;
  j->lock_fd = open(j->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (j->lock_fd < 0) {
    int e = errno;
    rc = kotte__fail(KOTTE_EIO, "cannot open %s: %s", j->lock_path, strerror(e));
    kj_close(j);
    return rc;
  }
  if ((rc = open_journal(j)) != 0 || (rc = kj_lock(j, t)) != 0) {
    kt_clear(t);
    kj_close(j);
    return rc;
  }
  kj_unlock(j);
  return 0;
}

void kj_close(kj *j) {
  if (j->fd >= 0) close(j->fd);
  if (j->lock_fd >= 0) close(j->lock_fd);
  kotte__free(j->path);
  kotte__free(j->lock_path);
  j->fd = j->lock_fd = -1;
  j->path = j->lock_path = NULL;
}
