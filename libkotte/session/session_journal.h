/* Private: the json_file session journal, records over the shared file
 * journal (core/journal_file.h: line format, locking, torn tails,
 * compaction).
 *
 * The file never holds a session id: records are keyed by the id's keyed
 * hash "h" and carry the id sealed, "t" (base64url), only so that a list
 * can hand ids back (keyring/id_keys.h; the postgresql backend stores the
 * same two values). The header is {"kotte":"sessions","version":2}. Then,
 * in order:
 *
 *     {"op":"put","h":..,"t":..,"u":..,"d":{..},"c":..,"a":..,"e":..,"m":..,"i":..}
 *     {"op":"mv","from":old-hash, ...the fields of put under the new id}
 *     {"op":"touch","h":..,"a":..,"e":..}
 *     {"op":"del","h":..}
 *     {"op":"delu","u":..}
 *
 * (times are µs since the epoch). Version 1 had the clear id under "id"
 * (and "from") and no "t"; such a file is loaded (each id hashed and
 * sealed) and rewritten as version 2 before it is used.
 */
#ifndef KOTTE_SESSION_JOURNAL_H
#define KOTTE_SESSION_JOURNAL_H

#include "core/journal_file.h"
#include "keyring/id_keys.h"
#include "session/session_table.h"

typedef struct kj {
  /* Bound to the table given to kj_open(); the json_file backend locks,
   * appends and compacts it through core/journal_queue.h. */
  kotte__journal file;
  kt_table *table;
  kotte__id_keys *keys;
} kj;

/* A growable output buffer for journal lines. */
typedef kotte__journal_buf kj_buf;

/* Opens (creating with mode 0600 if absent) and loads @p path into @p t,
 * with @p keys (borrowed for the journal's life). */
int kj_open(kj *j, const char *path, kt_table *t, kotte__id_keys *keys);

void kj_close(kj *j);

/* A sealed copy of @p token bound to @p hash, in kotte__malloc memory
 * (KOTTE__ID_SEALED_LEN bytes), or NULL. */
unsigned char *kj_seal(kotte__id_keys *keys, const char *token, const char *hash);

/* Gives @p *sealed (from kj_seal) to @p e, replacing what it held; never
 * fails. *sealed is NULL afterwards. */
void kj_attach(kt_entry *e, unsigned char **sealed);

/* Line builders: e->id is the hash, e->sealed the sealed id. */
void kj_buf_put(kj_buf *b, const char *from_hash, const kt_entry *e);
void kj_buf_touch(kj_buf *b, const kt_entry *e);
void kj_buf_del(kj_buf *b, const char *hash);
void kj_buf_delu(kj_buf *b, const char *user_id);

#endif
