/* Private: the json_file session journal, records over the shared file
 * journal (core/journal_file.h: line format, locking, torn tails,
 * compaction).
 *
 * The header is {"kotte":"sessions","version":1}. Then, in order:
 *
 *     {"op":"put","id":..,"u":..,"d":{..},"c":..,"a":..,"e":..,"m":..,"i":..}
 *     {"op":"mv","from":old-id, ...the fields of put under the new id}
 *     {"op":"touch","id":..,"a":..,"e":..}
 *     {"op":"del","id":..}
 *     {"op":"delu","u":..}
 *
 * (times are µs since the epoch).
 */
#ifndef KOTTE_SESSION_JOURNAL_H
#define KOTTE_SESSION_JOURNAL_H

#include "core/journal_file.h"
#include "session/table.h"

typedef struct kj {
  kotte__journal file; /* bound to the table given to kj_open() */
} kj;

/* A growable output buffer for journal lines. */
typedef kotte__journal_buf kj_buf;

/* Opens (creating with mode 0600 if absent) and loads @p path into @p t. */
int kj_open(kj *j, const char *path, kt_table *t);

/* Takes the lock and brings @p t (the table given to kj_open) up to date. */
int kj_lock(kj *j, kt_table *t);
void kj_unlock(kj *j);

/* Appends @p b (whole lines) and, if @p sync, fdatasync()s. Lock held. */
int kj_append(kj *j, const kj_buf *b, size_t lines, int sync);

/* Rewrites the journal from the table if it has grown past twice the live size. */
int kj_maybe_compact(kj *j, kt_table *t);

void kj_close(kj *j);

/* Line builders. */
void kj_buf_put(kj_buf *b, const char *from_id, const kt_entry *e);
void kj_buf_touch(kj_buf *b, const kt_entry *e);
void kj_buf_del(kj_buf *b, const char *id);
void kj_buf_delu(kj_buf *b, const char *user_id);
void kj_buf_free(kj_buf *b);

#endif
