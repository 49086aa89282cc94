/* Private: the json_file session journal.
 *
 * File format (text, one record a line):
 *
 *     <16 hex digits> <JSON object>\n
 *
 * The hex digits are SipHash-2-4 (libsodium crypto_shorthash, all-zero
 * key) of the JSON bytes: a checksum against torn or damaged lines, not a
 * MAC. The first record is the header {"kotte":"sessions","version":1}.
 * Then, in order:
 *
 *     {"op":"put","id":..,"u":..,"d":{..},"c":..,"a":..,"e":..,"m":..,"i":..}
 *     {"op":"mv","from":old-id, ...the fields of put under the new id}
 *     {"op":"touch","id":..,"a":..,"e":..}
 *     {"op":"del","id":..}
 *     {"op":"delu","u":..}
 *
 * (times are µs since the epoch). A last line without its newline is a
 * write that was never acknowledged: it is dropped (and truncated away by
 * the next writer). Any other bad line makes the file corrupt.
 */
#ifndef KOTTE_SESSION_JOURNAL_H
#define KOTTE_SESSION_JOURNAL_H

#include <sys/types.h>

#include "session/table.h"

typedef struct kj {
  char *path;
  char *lock_path;
  int fd;       /* the journal, O_RDWR|O_APPEND */
  int lock_fd;  /* "<path>.lock", flock()ed around every batch */
  dev_t dev;
  ino_t ino;
  off_t applied;  /* bytes of the journal reflected in the table */
  size_t records; /* lines in the journal, header included */
  int stale;      /* the table must be rebuilt from the file */
} kj;

/* A growable output buffer for journal lines. */
typedef struct kj_buf {
  char *p;
  size_t len, cap;
  int oom;
} kj_buf;

/* Opens (creating with mode 0600 if absent) and loads @p path into @p t. */
int kj_open(kj *j, const char *path, kt_table *t);

/* Takes the lock and brings @p t up to date with the file. */
int kj_lock(kj *j, kt_table *t);
void kj_unlock(kj *j);

/* Appends @p b (whole lines) and, if @p sync, fdatasync()s. Lock held. */
int kj_append(kj *j, const kj_buf *b, size_t lines, int sync);

/* Rewrites the journal from @p t if it has grown past twice the live size. */
int kj_maybe_compact(kj *j, kt_table *t);

void kj_close(kj *j);

/* Line builders. */
void kj_buf_put(kj_buf *b, const char *from_id, const kt_entry *e);
void kj_buf_touch(kj_buf *b, const kt_entry *e);
void kj_buf_del(kj_buf *b, const char *id);
void kj_buf_delu(kj_buf *b, const char *user_id);
void kj_buf_free(kj_buf *b);

#endif
