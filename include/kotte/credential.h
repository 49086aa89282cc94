/*
 * libkotte — the credential store (saved connections).
 *
 * Its secrets are sealed with a key ring (kotte/keyring.h, included here).
 *
 * A kotte_cred_store keeps a user's saved database connections over one
 * backend (memory, json_file, postgresql or your own, see
 * kotte/sys/credential_backend.h). The store seals and opens; backends only
 * ever see sealed blobs, so all backends behave alike:
 *
 *  - ids are random (v4) UUIDs, 36 characters, lowercase;
 *  - a connection name is unique per user (KOTTE_EEXISTS);
 *  - get decrypts username and password; list returns metadata only and
 *    never opens a blob;
 *  - an unknown id, another user's id or a string that is not a UUID is
 *    KOTTE_ENOTFOUND, never a crash and never someone else's record;
 *  - times are UTC (µs since the epoch, and ISO 8601 strings);
 *  - rewrap re-seals every record under the current key while the store
 *    serves requests, and reports how many records each key still seals.
 *
 * Two ways to call the store, as for sessions (kotte/session.h):
 * asynchronous on the caller's loop (one callback per accepted call, on the
 * loop thread, never before the call returned; a call that returns non-zero
 * never calls back), or blocking (*_sync) on a store opened on a
 * kotte_runtime, from any thread but the loop thread, with a timeout in ms
 * (negative: the runtime's default).
 */
#ifndef KOTTE_CREDENTIAL_H
#define KOTTE_CREDENTIAL_H

#include <uv.h>

#include "kotte/core.h"
#include "kotte/keyring.h"
#include "kotte/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Credential records                                                  */
/* ------------------------------------------------------------------ */

typedef struct kotte_cred_store kotte_cred_store;
typedef struct kotte_cred_backend kotte_cred_backend;

/** One saved connection, owned by whoever received it; release with kotte_cred_free(). */
typedef struct kotte_cred kotte_cred;

/** A list of connections (metadata only); release with kotte_cred_list_free(). */
typedef struct kotte_cred_list kotte_cred_list;

/** What rewrap and key usage report; release with kotte_cred_report_free(). */
typedef struct kotte_cred_report kotte_cred_report;

/** Length of a connection id (a canonical UUID), without the NUL. */
#define KOTTE_CRED_ID_LEN 36

/** Limits, in bytes of UTF-8 unless said otherwise. */
#define KOTTE_CRED_MAX_NAME_CHARS 100 /**< name: 1 to 100 characters (code points) */
#define KOTTE_CRED_MAX_FIELD 1024     /**< host, database, username */
#define KOTTE_CRED_MAX_PASSWORD 4096

/** Bits of kotte_cred_input.fields: what an update changes. */
#define KOTTE_CRED_NAME (1u << 0)
#define KOTTE_CRED_HOST (1u << 1)
#define KOTTE_CRED_PORT (1u << 2)
#define KOTTE_CRED_DATABASE (1u << 3)
#define KOTTE_CRED_SSLMODE (1u << 4)
#define KOTTE_CRED_USERNAME (1u << 5)
#define KOTTE_CRED_PASSWORD (1u << 6)
#define KOTTE_CRED_ALL 0x7fu

#define KOTTE_CRED_INPUT_VERSION 1

/**
 * A connection to save, or the changes of an update. Initialise with
 * KOTTE_CRED_INPUT_INIT; fields are only ever appended. Every string is
 * UTF-8; only the name must be non-empty (an empty host, database, user or
 * password means libpq's default). The store copies what it needs: the
 * struct and its strings may go away when the call returns.
 */
typedef struct kotte_cred_input {
  unsigned int version;
  /** Update only: the KOTTE_CRED_* bits of the fields to change. Save takes all. */
  unsigned int fields;
  const char *name;     /**< 1-100 characters, unique per user */
  const char *host;     /**< as libpq takes it */
  int port;             /**< 1-65535 */
  const char *database;
  /** disable, allow, prefer, require, verify-ca or verify-full; NULL: "prefer" (libpq's default). */
  const char *sslmode;
  const char *username; /**< sealed */
  const char *password; /**< sealed */
  /**
   * Save only, for imports: keep this id (a UUID, any case) and these
   * times (µs since the epoch; 0: now) instead of fresh ones. Never pass
   * an id a client chose. KOTTE_EEXISTS if the id is taken.
   */
  const char *id;
  kotte_time created_at;
  kotte_time updated_at;
} kotte_cred_input;

#define KOTTE_CRED_INPUT_INIT                                                \
  { KOTTE_CRED_INPUT_VERSION, 0, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, 0, 0 }

/** The id: a lowercase UUID (36 characters). Never NULL. */
KOTTE_EXTERN const char *kotte_cred_id(const kotte_cred *c);
KOTTE_EXTERN const char *kotte_cred_user_id(const kotte_cred *c);
KOTTE_EXTERN const char *kotte_cred_name(const kotte_cred *c);
KOTTE_EXTERN const char *kotte_cred_host(const kotte_cred *c);
KOTTE_EXTERN int kotte_cred_port(const kotte_cred *c);
KOTTE_EXTERN const char *kotte_cred_database(const kotte_cred *c);
KOTTE_EXTERN const char *kotte_cred_sslmode(const kotte_cred *c);
/** The decrypted user name: only in records from get, NULL otherwise. */
KOTTE_EXTERN const char *kotte_cred_username(const kotte_cred *c);
/** The decrypted password: only in records from get, NULL otherwise. */
KOTTE_EXTERN const char *kotte_cred_password(const kotte_cred *c);
/** The id of the key that sealed this record's secrets. */
KOTTE_EXTERN const char *kotte_cred_key_id(const kotte_cred *c);
/** Creation time, µs since the epoch, UTC. */
KOTTE_EXTERN kotte_time kotte_cred_created_at(const kotte_cred *c);
/** Time of the last update (equal to created_at until then). */
KOTTE_EXTERN kotte_time kotte_cred_updated_at(const kotte_cred *c);
/** created_at as ISO 8601 in UTC, as Python's datetime.isoformat() writes it
 * ("2026-11-25T10:00:00.123456+00:00"; the fraction only when non-zero). */
KOTTE_EXTERN const char *kotte_cred_created_at_iso(const kotte_cred *c);
/** updated_at as ISO 8601 (see kotte_cred_created_at_iso()). */
KOTTE_EXTERN const char *kotte_cred_updated_at_iso(const kotte_cred *c);
/** Wipes the secrets and frees @p c. NULL is a no-op. Any thread. */
KOTTE_EXTERN void kotte_cred_free(kotte_cred *c);

/** Number of records in @p list (0 for NULL). */
KOTTE_EXTERN size_t kotte_cred_list_count(const kotte_cred_list *list);
/** The i-th record (oldest first), owned by the list; NULL when out of range. */
KOTTE_EXTERN const kotte_cred *kotte_cred_list_get(const kotte_cred_list *list, size_t i);
/** Frees the list and its records. NULL is a no-op. */
KOTTE_EXTERN void kotte_cred_list_free(kotte_cred_list *list);

/** Records re-sealed under the current key by this rewrap (0 for key usage). */
KOTTE_EXTERN uint64_t kotte_cred_report_rewrapped(const kotte_cred_report *r);
/** Records rewrap could not open (tampered, or their key is not in the ring); left as they were. */
KOTTE_EXTERN uint64_t kotte_cred_report_failed(const kotte_cred_report *r);
/** Records still sealed with another key than the current one, at the end. */
KOTTE_EXTERN uint64_t kotte_cred_report_stale(const kotte_cred_report *r);
/** Number of distinct keys that seal records, at the end. */
KOTTE_EXTERN size_t kotte_cred_report_key_count(const kotte_cred_report *r);
/** Key @p i's id (sorted by id), or NULL when out of range. */
KOTTE_EXTERN const char *kotte_cred_report_key_id(const kotte_cred_report *r, size_t i);
/** How many records key @p i seals. An old key with 0 records can be dropped. */
KOTTE_EXTERN uint64_t kotte_cred_report_key_records(const kotte_cred_report *r, size_t i);
/** 1 if key @p i is the ring's current key. */
KOTTE_EXTERN int kotte_cred_report_key_is_current(const kotte_cred_report *r, size_t i);
/** 1 if key @p i is in the ring at all (0: its records cannot be opened). */
KOTTE_EXTERN int kotte_cred_report_key_in_ring(const kotte_cred_report *r, size_t i);
/** Frees the report. NULL is a no-op. */
KOTTE_EXTERN void kotte_cred_report_free(kotte_cred_report *r);

/* ------------------------------------------------------------------ */
/* Built-in backends                                                   */
/* ------------------------------------------------------------------ */

/**
 * An in-process backend (hash tables; nothing survives the process).
 * Returns 0 or KOTTE_ENOMEM. *out belongs to the caller until a store takes it.
 */
KOTTE_EXTERN int kotte_cred_backend_memory_new(kotte_cred_backend **out);

/**
 * A file backend with the guarantees of the session json_file backend
 * (kotte/session.h): an append-only journal at @p path, one checksummed
 * record a line, files mode 0600; every acknowledged write was fdatasync'd;
 * a torn last line (a write never acknowledged) is dropped; a file cut
 * short or removed while open is logged as an ERROR and rewritten from
 * what this process read, an existing empty file is a new store; a corrupt or
 * foreign file (Kotte's connections.json, say) fails with KOTTE_ECORRUPT,
 * names the path in kotte_error_detail() and is never written to; several
 * processes may share the path (flock on "<path>.lock"); compaction by
 * rename keeps a write's cost independent of the number of records; queued
 * writes share one fdatasync (group commit) on @p loop's thread pool.
 * The file holds sealed blobs only, never a plaintext secret.
 *
 * Loads the journal now, on the calling thread. Returns 0, KOTTE_EINVAL,
 * KOTTE_ENOMEM, KOTTE_EIO, KOTTE_ELOCK or KOTTE_ECORRUPT.
 */
KOTTE_EXTERN int kotte_cred_backend_json_file_new(kotte_cred_backend **out, uv_loop_t *loop,
                                                  const char *path);

typedef struct kotte_pg_pool kotte_pg_pool; /* kotte/pg.h */

/**
 * A PostgreSQL backend on table kotte_credentials (sql/migrations/),
 * through @p pool (kotte/pg.h), which it borrows: free the store first,
 * then the pool. One statement per operation, as
 * kotte/sys/credential_backend.h lists them; the table holds only the
 * store's sealed blobs. Any thread (statements are registered with the
 * pool on first use, on the loop thread). Returns 0, KOTTE_EINVAL or
 * KOTTE_ENOMEM.
 */
KOTTE_EXTERN int kotte_cred_backend_postgresql_new(kotte_cred_backend **out, kotte_pg_pool *pool);

/** Frees a backend that no store took. NULL is a no-op. */
KOTTE_EXTERN void kotte_cred_backend_free(kotte_cred_backend *backend);

/* ------------------------------------------------------------------ */
/* Store lifecycle                                                     */
/* ------------------------------------------------------------------ */

#define KOTTE_CRED_OPTIONS_VERSION 1

/** Store options. Initialise with KOTTE_CRED_OPTIONS_INIT; fields are only ever appended. */
typedef struct kotte_cred_options {
  unsigned int version;
  /** Records per rewrap round; one round per loop turn (default 100). */
  unsigned int rewrap_batch;
  /** Clock for created_at / updated_at; NULL = kotte_clock_now(). */
  kotte_clock_fn clock;
  void *clock_ctx;
} kotte_cred_options;

#define KOTTE_CRED_OPTIONS_INIT { KOTTE_CRED_OPTIONS_VERSION, 100, NULL, NULL }

/**
 * Creates a store on @p loop with key ring @p kr (the store takes its own
 * reference). Call on the loop's thread (or before the loop runs). On
 * success the store owns @p backend; on failure the caller still does.
 * @p opts may be NULL. Returns 0, KOTTE_EINVAL, KOTTE_EVERSION or
 * KOTTE_ENOMEM. Free with kotte_cred_store_free().
 */
KOTTE_EXTERN int kotte_cred_store_new(kotte_cred_store **out, uv_loop_t *loop,
                                      kotte_cred_backend *backend, kotte_keyring *kr,
                                      const kotte_cred_options *opts);

/** Like kotte_cred_store_new() on @p rt's loop; enables the *_sync calls.
 * Any thread but the loop thread. */
KOTTE_EXTERN int kotte_cred_store_open(kotte_cred_store **out, kotte_runtime *rt,
                                       kotte_cred_backend *backend, kotte_keyring *kr,
                                       const kotte_cred_options *opts);

/**
 * Frees the store, its backend and its key ring reference. Operations in
 * flight end with KOTTE_ECANCELED (a rewrap stops after its current round).
 * Threads as for kotte_session_store_free(). NULL is a no-op.
 */
KOTTE_EXTERN void kotte_cred_store_free(kotte_cred_store *store);

/** The backend's name ("memory", "json_file", ...). Never NULL. */
KOTTE_EXTERN const char *kotte_cred_store_backend_name(const kotte_cred_store *store);

/* ------------------------------------------------------------------ */
/* Asynchronous API (loop thread only)                                 */
/* ------------------------------------------------------------------ */

/** Receives a record (owned by the callee, NULL unless status is 0). */
typedef void (*kotte_cred_cb)(int status, kotte_cred *cred, void *userdata);
/** Receives only a status. */
typedef void (*kotte_cred_status_cb)(int status, void *userdata);
/** Receives a list (owned by the callee, NULL unless status is 0). */
typedef void (*kotte_cred_list_cb)(int status, kotte_cred_list *list, void *userdata);
/** Receives a report (owned by the callee, NULL unless status is 0). */
typedef void (*kotte_cred_report_cb)(int status, kotte_cred_report *report, void *userdata);

/**
 * Saves a new connection for @p user_id (1-255 bytes) with a fresh UUID,
 * its secrets sealed under the current key. The callback gets the record
 * without secrets (its id is kotte_cred_id()). Errors: KOTTE_EINVAL
 * (missing or invalid field; the detail says which), KOTTE_EVERSION,
 * KOTTE_EEXISTS (the user has a connection of that name, or the import id
 * is taken), backend errors.
 */
KOTTE_EXTERN int kotte_cred_save(kotte_cred_store *store, const char *user_id,
                                 const kotte_cred_input *in, kotte_cred_cb cb, void *userdata);

/**
 * The connection @p id of @p user_id with username and password opened.
 * KOTTE_ENOTFOUND for an unknown id, another user's id, or an @p id that is
 * not a UUID (returned at once, without a callback); KOTTE_EINTEGRITY if
 * the stored blobs were altered or swapped; KOTTE_EKEY if they were sealed
 * with a key the ring no longer holds.
 */
KOTTE_EXTERN int kotte_cred_get(kotte_cred_store *store, const char *user_id, const char *id,
                                kotte_cred_cb cb, void *userdata);

/** The connections of @p user_id, oldest first, metadata only: opens nothing. */
KOTTE_EXTERN int kotte_cred_list_user(kotte_cred_store *store, const char *user_id,
                                      kotte_cred_list_cb cb, void *userdata);

/**
 * Changes the fields of @p id named by in->fields (any of them, secrets and
 * name included) and sets updated_at; returns the record without secrets.
 * Changed secrets are sealed under the current key (the unchanged one is
 * re-sealed with it if the record was under an older key). Atomic in the
 * backend: a concurrent update or rewrap is never overwritten (the store
 * retries a lost compare-and-swap; KOTTE_ECONFLICT only if it kept
 * losing). KOTTE_ENOTFOUND as for get; KOTTE_EEXISTS for a name the user
 * already has; KOTTE_EINVAL for an empty field set or an invalid field.
 */
KOTTE_EXTERN int kotte_cred_update(kotte_cred_store *store, const char *user_id, const char *id,
                                   const kotte_cred_input *in, kotte_cred_cb cb, void *userdata);

/** Deletes the connection. KOTTE_ENOTFOUND as for get. */
KOTTE_EXTERN int kotte_cred_delete(kotte_cred_store *store, const char *user_id, const char *id,
                                   kotte_cred_status_cb cb, void *userdata);

/**
 * Re-seals every record that is not under the current key, online: rounds
 * of rewrap_batch records, one per loop turn, each record written with a
 * compare-and-swap on its old blobs, so concurrent reads always succeed and
 * a concurrent update is never overwritten. Records that cannot be opened
 * are left alone and counted as failed (their ids are logged at WARN). The
 * report then counts the records each key seals. Needs a backend with
 * scan_stale and count_keys (else KOTTE_ENOTSUP). A rewrap takes time in
 * proportion to the records (json_file: roughly 10,000 a second on a small
 * machine): give kotte_cred_rewrap_sync() a timeout to match; a timed-out
 * rewrap keeps going and can simply be run again.
 */
KOTTE_EXTERN int kotte_cred_rewrap(kotte_cred_store *store, kotte_cred_report_cb cb,
                                   void *userdata);

/** Only the counting part of rewrap: how many records each key seals. */
KOTTE_EXTERN int kotte_cred_key_usage(kotte_cred_store *store, kotte_cred_report_cb cb,
                                      void *userdata);

/**
 * Readiness: calls back with 0 if the store's backend can serve reads and
 * writes now, else the error that stops it; changes nothing, cheap enough
 * for a probe every few seconds. json_file: as kotte_session_store_check()
 * (kotte/session.h): the journal locks and reads, and its last write
 * succeeded, or a nop record written by the check itself succeeds.
 * Backends without their own check: a list of a user nobody is.
 */
KOTTE_EXTERN int kotte_cred_store_check(kotte_cred_store *store, kotte_cred_status_cb cb,
                                        void *userdata);

/* ------------------------------------------------------------------ */
/* Blocking API (stores from kotte_cred_store_open(); any thread but   */
/* the loop thread). Return 0 or a negative code; *out is set on 0.    */
/* ------------------------------------------------------------------ */

KOTTE_EXTERN int kotte_cred_save_sync(kotte_cred_store *store, const char *user_id,
                                      const kotte_cred_input *in, kotte_cred **out,
                                      int timeout_ms);
KOTTE_EXTERN int kotte_cred_get_sync(kotte_cred_store *store, const char *user_id,
                                     const char *id, kotte_cred **out, int timeout_ms);
KOTTE_EXTERN int kotte_cred_list_user_sync(kotte_cred_store *store, const char *user_id,
                                           kotte_cred_list **out, int timeout_ms);
KOTTE_EXTERN int kotte_cred_update_sync(kotte_cred_store *store, const char *user_id,
                                        const char *id, const kotte_cred_input *in,
                                        kotte_cred **out, int timeout_ms);
KOTTE_EXTERN int kotte_cred_delete_sync(kotte_cred_store *store, const char *user_id,
                                        const char *id, int timeout_ms);
KOTTE_EXTERN int kotte_cred_rewrap_sync(kotte_cred_store *store, kotte_cred_report **out,
                                        int timeout_ms);
KOTTE_EXTERN int kotte_cred_key_usage_sync(kotte_cred_store *store, kotte_cred_report **out,
                                           int timeout_ms);
KOTTE_EXTERN int kotte_cred_store_check_sync(kotte_cred_store *store, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif /* KOTTE_CREDENTIAL_H */
