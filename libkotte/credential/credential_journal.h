/* Private: credential records over the shared file journal
 * (core/journal_file.h: line format, locking, torn tails, compaction).
 *
 * The header is {"kotte":"credentials","version":1}. Then, in order:
 *
 *     {"op":"put","id":..,"u":..,"n":..,"h":..,"p":..,"db":..,"ssl":..,
 *      "un":<base64 blob>,"pw":<base64 blob>,"k":..,"c":..,"m":..}
 *     {"op":"del","id":..}
 *
 * A put is the whole record after an insert or an update (c: created_at,
 * m: updated_at, µs since the epoch). The blobs are sealed: the file never
 * holds a plaintext secret.
 */
#ifndef KOTTE_CREDENTIAL_JOURNAL_H
#define KOTTE_CREDENTIAL_JOURNAL_H

#include "core/journal_file.h"
#include "credential/credential_table.h"

/* Opens and loads @p path into @p t; the journal stays bound to @p t. */
int kotte__cred_journal_open(kotte__journal *j, const char *path, kotte__cred_table *t);

/* Line builders. */
void kotte__cred_journal_put(kotte__journal_buf *b, const kotte__cred_entry *e);
void kotte__cred_journal_del(kotte__journal_buf *b, const char *id);

#endif
