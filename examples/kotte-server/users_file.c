/* The users file: "username:hash" lines, '#' comments. Written whole to
 * a temporary file, fsync'd and renamed under an flock on "<path>.lock",
 * so readers never see half a file and concurrent writers do not lose
 * each other's changes. Mode 0600. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "users_internal.h"

#define MAX_FILE (16u << 20)

int ks_username_valid(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 64) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == '@' || c == '-';
    if (!ok) return 0;
  }
  return 1;
}

void ks__users_recs_free(ks_user_rec *recs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(recs[i].name);
    free(recs[i].hash);
  }
  free(recs);
}

int ks__users_file_read(const char *path, ks_user_rec **out, size_t *nout, char *err,
                        size_t errlen) {
  *out = NULL;
  *nout = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "users file %s: %s", path, strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size > (off_t)MAX_FILE) {
    snprintf(err, errlen, "users file %s: unreadable or larger than %u bytes", path, MAX_FILE);
    close(fd);
    return -1;
  }
  size_t size = (size_t)st.st_size;
  char *text = malloc(size + 1);
  size_t got = 0;
  while (text && got < size) {
    ssize_t r = read(fd, text + got, size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  if (text == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  text[got] = '\0';
  ks_user_rec *recs = NULL;
  size_t n = 0, cap = 0;
  unsigned lineno = 0;
  int rc = 0;
  for (char *line = text, *next; line && *line; line = next) {
    lineno++;
    next = strchr(line, '\n');
    if (next) *next++ = '\0';
    size_t len = strlen(line);
    if (len && line[len - 1] == '\r') line[--len] = '\0';
    if (len == 0 || line[0] == '#') continue;
    char *colon = strchr(line, ':');
    if (colon == NULL) {
      snprintf(err, errlen, "users file %s: line %u is not username:hash", path, lineno);
      rc = -1;
      break;
    }
    *colon = '\0';
    if (!ks_username_valid(line) || colon[1] != '$') {
      snprintf(err, errlen, "users file %s: line %u has a bad username or hash", path, lineno);
      rc = -1;
      break;
    }
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      ks_user_rec *nr = realloc(recs, cap * sizeof *recs);
      if (nr == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
        break;
      }
      recs = nr;
    }
    recs[n].name = strdup(line);
    recs[n].hash = strdup(colon + 1);
    n++;
    if (!recs[n - 1].name || !recs[n - 1].hash) {
      snprintf(err, errlen, "out of memory");
      rc = -1;
      break;
    }
  }
  free(text);
  if (rc != 0) {
    ks__users_recs_free(recs, n);
    return -1;
  }
  *out = recs;
  *nout = n;
  return 0;
}

/* Takes the writers' lock; returns its fd or -1. */
static int lock_file(const char *path, char *err, size_t errlen) {
  char lp[1100];
  snprintf(lp, sizeof lp, "%s.lock", path);
  int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || flock(fd, LOCK_EX) != 0) {
    snprintf(err, errlen, "users file lock %s: %s", lp, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

static int write_all(int fd, const char *s, size_t n) {
  while (n) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    s += w;
    n -= (size_t)w;
  }
  return 0;
}

static int write_recs(const char *path, const ks_user_rec *recs, size_t n, char *err,
                      size_t errlen) {
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    snprintf(err, errlen, "users file %s: %s", tmp, strerror(errno));
    return -1;
  }
  static const char head[] =
      "# kotte-server users: username:argon2id hash, one a line.\n"
      "# Manage with: kotte-server user add|passwd|del|list NAME\n";
  int bad = write_all(fd, head, sizeof head - 1);
  for (size_t i = 0; i < n && !bad; i++)
    bad = write_all(fd, recs[i].name, strlen(recs[i].name)) || write_all(fd, ":", 1) ||
          write_all(fd, recs[i].hash, strlen(recs[i].hash)) || write_all(fd, "\n", 1);
  if (!bad) bad = fsync(fd);
  if (close(fd) != 0) bad = 1;
  if (!bad) bad = rename(tmp, path);
  if (bad) {
    snprintf(err, errlen, "users file %s: %s", path, strerror(errno));
    unlink(tmp);
    return -1;
  }
  /* make the rename durable */
  char dir[1024];
  snprintf(dir, sizeof dir, "%s", path);
  int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return 0;
}

/* Reads the file, treating a missing one as empty. */
static int read_or_empty(const char *path, ks_user_rec **recs, size_t *n, char *err,
                         size_t errlen) {
  if (access(path, F_OK) != 0 && errno == ENOENT) {
    *recs = NULL;
    *n = 0;
    return 0;
  }
  return ks__users_file_read(path, recs, n, err, errlen);
}

int ks_users_file_put(const char *path, const char *username, const char *password, int replace,
                      char *err, size_t errlen) {
  if (!ks_username_valid(username)) {
    snprintf(err, errlen, "a username is 1 to 64 of the characters A-Z a-z 0-9 . _ @ -");
    return -1;
  }
  if (password == NULL || *password == '\0') {
    snprintf(err, errlen, "the password must not be empty");
    return -1;
  }
  if (sodium_init() < 0) {
    snprintf(err, errlen, "libsodium failed to initialise");
    return -1;
  }
  char hash[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(hash, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                            crypto_pwhash_MEMLIMIT_INTERACTIVE,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    snprintf(err, errlen, "password hashing failed (out of memory?)");
    return -1;
  }
  int lfd = lock_file(path, err, errlen);
  if (lfd < 0) return -1;
  ks_user_rec *recs;
  size_t n;
  int rc = read_or_empty(path, &recs, &n, err, errlen);
  if (rc == 0) {
    size_t i;
    for (i = 0; i < n && strcmp(recs[i].name, username) != 0; i++) {
    }
    if (i < n && !replace) {
      snprintf(err, errlen, "user %s already exists (use `user passwd` to change the password)",
               username);
      rc = -1;
    } else if (i == n && replace) {
      snprintf(err, errlen, "no user %s", username);
      rc = -1;
    } else {
      ks_user_rec *nr = i < n ? recs : realloc(recs, (n + 1) * sizeof *recs);
      char *h = strdup(hash), *nm = i < n ? NULL : strdup(username);
      if (nr == NULL || h == NULL || (i == n && nm == NULL)) {
        if (nr) recs = nr;
        free(h);
        free(nm);
        snprintf(err, errlen, "out of memory");
        rc = -1;
      } else {
        recs = nr;
        if (i < n) {
          free(recs[i].hash);
          recs[i].hash = h;
        } else {
          recs[n].name = nm;
          recs[n].hash = h;
          n++;
        }
        rc = write_recs(path, recs, n, err, errlen);
      }
    }
    ks__users_recs_free(recs, n);
  }
  close(lfd);
  return rc;
}

int ks_users_file_delete(const char *path, const char *username, char *err, size_t errlen) {
  int lfd = lock_file(path, err, errlen);
  if (lfd < 0) return -1;
  ks_user_rec *recs;
  size_t n;
  int rc = read_or_empty(path, &recs, &n, err, errlen);
  if (rc == 0) {
    size_t i;
    for (i = 0; i < n && strcmp(recs[i].name, username) != 0; i++) {
    }
    if (i == n) {
      rc = 1;
    } else {
      free(recs[i].name);
      free(recs[i].hash);
      memmove(&recs[i], &recs[i + 1], (n - i - 1) * sizeof *recs);
      n--;
      rc = write_recs(path, recs, n, err, errlen);
    }
    ks__users_recs_free(recs, n);
  }
  close(lfd);
  return rc;
}

int ks_users_file_list(const char *path, FILE *out, char *err, size_t errlen) {
  ks_user_rec *recs;
  size_t n;
  if (ks__users_file_read(path, &recs, &n, err, errlen) != 0) return -1;
  for (size_t i = 0; i < n; i++) fprintf(out, "%s\n", recs[i].name);
  ks__users_recs_free(recs, n);
  return 0;
}
