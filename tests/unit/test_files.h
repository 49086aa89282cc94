/* Whole-file read and write for the suites that inspect or damage a store's
 * file on disk (cmocka asserts on every failure). */
#ifndef KOTTE_TEST_FILES_H
#define KOTTE_TEST_FILES_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* The file's bytes, NUL-terminated, in malloc memory; *len (if @p len is
 * not NULL) without the NUL. */
static inline char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  if (len) *len = (size_t)n;
  return buf;
}

/* Replaces the file with @p data[0..len). */
static inline void spit(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  fclose(f);
}

/* chattr +i / -i on @p path: 0, or -1 where the filesystem (or the lack of
 * CAP_LINUX_IMMUTABLE) does not allow it. */
static inline int set_immutable(const char *path, int on) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int flags = 0, rc = ioctl(fd, FS_IOC_GETFLAGS, &flags);
  if (rc == 0) {
    flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
    rc = ioctl(fd, FS_IOC_SETFLAGS, &flags);
  }
  close(fd);
  return rc;
}

/* How damage_file() damages a store's file. */
enum { DAMAGE_EMPTY, DAMAGE_HALF, DAMAGE_REMOVE };

/* Truncates @p path to nothing or to half its size, or removes it, as
 * someone else could behind an open store's back. Returns its size before. */
static inline long long damage_file(const char *path, int how) {
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  if (how == DAMAGE_REMOVE) assert_int_equal(unlink(path), 0);
  else assert_int_equal(truncate(path, how == DAMAGE_HALF ? sb.st_size / 2 : 0), 0);
  return (long long)sb.st_size;
}

#endif
