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
  /* Bound to the table given to kj_open(); the json_file backend locks,
   * appends and compacts it through core/journal_queue.h. */
  kotte__journal file;
} kj;

/* A growable output buffer for journal lines. */
typedef kotte__journal_buf kj_buf;

/* Opens (creating with mode 0600 if absent) and loads @p path into @p t. */
int kj_open(kj *j, const char *path, kt_table *t);

void kj_close(kj *j);

/* Line builders. */
void kj_buf_put(kj_buf *b, const char *from_id, const kt_entry *e);
void kj_buf_touch(kj_buf *b, const kt_entry *e);
void kj_buf_del(kj_buf *b, const char *id);
void kj_buf_delu(kj_buf *b, const char *user_id);

#endif
