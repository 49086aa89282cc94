/* Private: the durable file journal under every json_file backend.
 *
 * File format (text, one record a line):
 *
 *     <16 hex digits> <JSON object>\n
 *
 * The hex digits are SipHash-2-4 (libsodium crypto_shorthash, all-zero
 * key) of the JSON bytes: a checksum against torn or damaged lines, not a
 * MAC. The first record is the header {"kotte":"<kind>","version":N}; what
 * follows is up to the user of the journal (see its `apply`), except the
 * record {"op":"nop"}, which a write check appends (kotte__journal_check)
 * and replay skips. A file in an older version the user still reads
 * (ops->min_version) is loaded, then rewritten in the current version
 * before anything is appended to it.
 *
 * Guarantees, the same for every user:
 *  - files (journal and "<path>.lock") are created with mode 0600;
 *  - every operation runs under flock() on "<path>.lock" and first replays
 *    what other processes appended (or reloads a file another process
 *    compacted, or truncated);
 *  - kotte__journal_append() with `sync` returns only after fdatasync();
 *  - a last line without its newline, beyond what this process read, is a
 *    write that never completed: it is dropped and truncated away by the
 *    next lock holder;
 *  - a file that shrank below what this process read from it (same
 *    inode), or was removed, was damaged by someone else (libkotte only
 *    cuts such an incomplete line and replaces the file by rename): that
 *    is logged as an ERROR with the sizes and the path, and the file is
 *    rewritten from this process's state (every record it read had been
 *    acknowledged) before the operation goes on; if that rewrite fails,
 *    every operation fails (KOTTE_EIO) until it succeeds;
 *  - an existing empty file is a new store (logged as a warning): there is
 *    nothing in it to lose;
 *  - any other bad line, or a missing or foreign header, makes the file
 *    corrupt (KOTTE_ECORRUPT, path in kotte_error_detail()); a corrupt file
 *    is never written to, truncated or replaced;
 *  - compaction writes a snapshot to "<path>.tmp", fsyncs it, renames it
 *    over the journal and fsyncs the directory.
 *
 * Not thread-safe: one thread at a time per kotte__journal (the json_file
 * backends run one batch at a time on the libuv thread pool).
 */
#ifndef KOTTE_CORE_JOURNAL_FILE_H
#define KOTTE_CORE_JOURNAL_FILE_H

#include <cjson/cJSON.h>
#include <sys/types.h>

#include "core/internal.h"

/* A growable output buffer for journal lines. */
typedef struct kotte__journal_buf {
  char *p;
  size_t len, cap;
  int oom;
} kotte__journal_buf;

/* Appends raw bytes (sets oom on failure; later adds are no-ops). */
void kotte__journal_buf_add(kotte__journal_buf *b, const char *s, size_t n);

/* Appends @p j as one checksummed line and deletes it. NULL marks oom. */
void kotte__journal_buf_line(kotte__journal_buf *b, cJSON *j);

void kotte__journal_buf_free(kotte__journal_buf *b);

/* What a journal holds; callbacks get the `ctx` given to open. */
typedef struct kotte__journal_ops {
  /* The header's "kotte" value ("sessions", "credentials"). */
  const char *kind;
  /* For messages: "<noun> store <path>: ..." ("session", "credential"). */
  const char *noun;
  /* The header version written; the oldest version still read (loaded,
   * then rewritten in `version`). */
  int version;
  int min_version;
  /* Applies one record of a file in format @p version: 0, KOTTE_ECORRUPT
   * (invalid record) or KOTTE_ENOMEM. */
  int (*apply)(void *ctx, int version, const cJSON *rec);
  /* Forgets everything applied so far (the file is reloaded from byte 0). */
  void (*reset)(void *ctx);
  /* The number of live records (compaction runs above twice that). */
  size_t (*live)(void *ctx);
  /* Writes one line per live record into @p b; returns how many. */
  size_t (*snapshot)(void *ctx, kotte__journal_buf *b);
} kotte__journal_ops;

typedef struct kotte__journal {
  const kotte__journal_ops *ops;
  void *ctx;
  char *path;
  char *lock_path;
  int fd;      /* the journal, O_RDWR|O_APPEND */
  int lock_fd; /* "<path>.lock", flock()ed around every batch */
  dev_t dev;
  ino_t ino;
  off_t applied;  /* bytes of the journal reflected in the caller's state */
  size_t records; /* lines in the journal, header included */
  int stale;      /* the caller's state must be rebuilt from the file */
  int version;    /* the format version of the file read so far */
  /* 0, or the error of the last write (append, header, rewrite) that
   * failed and was not followed by one that succeeded. */
  int write_error;
} kotte__journal;

/* Opens (creating with mode 0600 if absent) and loads @p path through
 * ops->apply. 0, KOTTE_ENOMEM, KOTTE_EIO, KOTTE_ELOCK or KOTTE_ECORRUPT. */
int kotte__journal_open(kotte__journal *j, const char *path, const kotte__journal_ops *ops,
                        void *ctx);

/* Takes the lock and brings the caller's state up to date with the file.
 * On failure the lock is not held. */
int kotte__journal_lock(kotte__journal *j);
void kotte__journal_unlock(kotte__journal *j);

/* Appends @p b (whole lines, @p lines of them) and, if @p sync,
 * fdatasync()s. Lock held. On failure the state is marked stale, so the
 * next lock rebuilds it from what really is in the file. */
int kotte__journal_append(kotte__journal *j, const kotte__journal_buf *b, size_t lines,
                          int sync);

/* The write check, for a job of a batch (lock held): if the last write
 * failed, adds one {"op":"nop"} line to @p b (and counts it in *lines) and
 * returns 1: the batch's append then proves the journal writable again, or
 * fails the job. The line is padded to a little over 4 KiB, so that it
 * needs a new block of the disk (compaction drops it). Returns 0 (nothing added) while writes succeed, so that
 * checks do not grow the journal. */
int kotte__journal_check(kotte__journal *j, kotte__journal_buf *b, size_t *lines);

/* Rewrites the journal from ops->snapshot if it holds more than twice the
 * live records (plus a floor). Lock held. Failure leaves the old file. */
int kotte__journal_maybe_compact(kotte__journal *j);

void kotte__journal_close(kotte__journal *j);

#endif
