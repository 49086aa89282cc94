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

typedef struct kotte__session_journal {
  /* Bound to the table given to kotte__session_journal_open(); the json_file backend locks,
   * appends and compacts it through core/journal_queue.h. */
  kotte__journal file;
  kotte__session_table *table;
  kotte__id_keys *keys;
} kotte__session_journal;

/* Opens (creating with mode 0600 if absent) and loads @p path into @p t,
 * with @p keys (borrowed for the journal's life). */
int kotte__session_journal_open(kotte__session_journal *j, const char *path,
                                kotte__session_table *t, kotte__id_keys *keys);

void kotte__session_journal_close(kotte__session_journal *j);

/* A sealed copy of @p token bound to @p hash, in kotte__malloc memory
 * (KOTTE__ID_SEALED_LEN bytes), or NULL. */
unsigned char *kotte__session_journal_seal(kotte__id_keys *keys, const char *token,
                                           const char *hash);

/* Gives @p *sealed (from kotte__session_journal_seal) to @p e, replacing what it held; never
 * fails. *sealed is NULL afterwards. */
void kotte__session_journal_attach(kotte__session_entry *e, unsigned char **sealed);

/* Line builders: e->id is the hash, e->sealed the sealed id. */
void kotte__session_journal_put(kotte__journal_buf *b, const char *from_hash,
                                const kotte__session_entry *e);
void kotte__session_journal_touch(kotte__journal_buf *b, const kotte__session_entry *e);
void kotte__session_journal_del(kotte__journal_buf *b, const char *hash);
void kotte__session_journal_delu(kotte__journal_buf *b, const char *user_id);

#endif
