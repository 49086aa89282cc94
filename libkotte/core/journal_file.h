/* Private: the durable file journal under every json_file backend.
 *
 * File format (text, one record a line):
 *
 *     <16 hex digits> <JSON object>\n
 *
 * The hex digits are SipHash-2-4 (libsodium crypto_shorthash, all-zero
 * key) of the JSON bytes: a checksum against torn or damaged lines, not a
 * MAC. The first record is the header {"kotte":"<kind>","version":1}; what
 * follows is up to the user of the journal (see its `apply`).
 *
 * Guarantees, the same for every user:
 *  - files (journal and "<path>.lock") are created with mode 0600;
 *  - every operation runs under flock() on "<path>.lock" and first replays
 *    what other processes appended (or reloads a file another process
 *    compacted, or truncated);
 *  - kotte__journal_append() with `sync` returns only after fdatasync();
 *  - a last line without its newline is a write that was never
 *    acknowledged: it is dropped and truncated away by the next lock holder;
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
  /* Applies one record: 0, KOTTE_ECORRUPT (invalid record) or KOTTE_ENOMEM. */
  int (*apply)(void *ctx, const cJSON *rec);
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

/* Rewrites the journal from ops->snapshot if it holds more than twice the
 * live records (plus a floor). Lock held. Failure leaves the old file. */
int kotte__journal_maybe_compact(kotte__journal *j);

void kotte__journal_close(kotte__journal *j);

#endif
