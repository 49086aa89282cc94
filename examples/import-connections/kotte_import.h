/* Importing Kotte's saved connections (connections.json) into a libkotte
 * credential store — any backend.
 *
 * Two steps, so that a bad key or a bad file writes nothing:
 *
 *  1. kotte_import_load() parses the file and decrypts every connection
 *     (see fernet.h), then saves them all into a throw-away memory store
 *     with the same key ring: every validation rule of the store (names,
 *     ports, sslmode, UTF-8, unique names per user) runs before the target
 *     is touched.
 *  2. kotte_import_write() first checks the target for conflicts (a name
 *     a user already has under another id), then saves each connection
 *     with its original id, name and timestamps. A connection already in
 *     the target under its id is skipped, so an import can be run again.
 *
 * Why C with libcrypto rather than a Python module: the import writes
 * through libkotte's own store API, so it reaches every backend (memory,
 * json_file, PostgreSQL when the pool lands, and backends users write)
 * with the store's own validation and sealing, without waiting for the
 * Python binding; it runs under the sanitizers with the other suites; and
 * libcrypto is linked into this tool only, so libkotte itself keeps a
 * single crypto dependency (libsodium).
 */
#ifndef KOTTE_IMPORT_H
#define KOTTE_IMPORT_H

#include <kotte.h>

typedef struct kotte_import_set kotte_import_set;

/* What happened; `message` says what went wrong (never a secret). */
typedef struct kotte_import_report {
  size_t users;       /* users in the file */
  size_t connections; /* connections in the file */
  size_t imported;    /* written to the target */
  size_t skipped;     /* already in the target under their id */
  char message[512];
} kotte_import_report;

/*
 * Parses Kotte's connections.json (@p json, @p len bytes) and decrypts every
 * connection with Kotte's MASTER_ENCRYPTION_KEY @p kotte_key; validates the
 * result against the store rules using key ring @p kr. On success *out
 * holds the connections (free with kotte_import_set_free(), which wipes
 * the secrets). Returns 0; KOTTE_EKEY (the key is shorter than 32 bytes),
 * KOTTE_EINTEGRITY (a token does not verify under the key: almost always
 * the wrong key), KOTTE_EBADJSON (not Kotte's format), KOTTE_EINVAL or
 * KOTTE_EEXISTS (data the store refuses), KOTTE_ENOMEM. Never writes.
 */
int kotte_import_load(const char *json, size_t len, const char *kotte_key, kotte_keyring *kr,
                      kotte_import_set **out, kotte_import_report *rep);

/*
 * Saves the connections into @p store (opened on a runtime) with blocking
 * calls of at most @p timeout_ms each. Returns 0, KOTTE_EEXISTS (a
 * conflict found before writing anything) or the error of the save that
 * failed (rep->imported says how many were written before it).
 */
int kotte_import_write(kotte_cred_store *store, const kotte_import_set *set,
                       kotte_import_report *rep, int timeout_ms);

void kotte_import_set_free(kotte_import_set *set);

/* Parses an ISO 8601 time as Python's isoformat() writes it
 * ("2024-05-01T12:00:00.123456+00:00"; 'Z', other offsets and no offset,
 * taken as UTC, too) into µs since the epoch. 0, or -1. */
int kotte_import_parse_time(const char *s, kotte_time *out);

#endif
