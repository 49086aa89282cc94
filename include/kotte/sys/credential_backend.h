/*
 * libkotte — the credential backend interface, for backend writers.
 *
 * A backend is a struct whose first member is a kotte_cred_backend:
 *
 *     struct my_backend { kotte_cred_backend base; ... };
 *
 * The store validates, chooses ids and times, seals and opens; a backend
 * stores records whose username and password are opaque sealed blobs, and
 * never sees a key or a plaintext. Every operation maps onto one SQL
 * statement on the table
 *
 *     kotte_credentials(id uuid primary key, user_id text, name text,
 *       host text, port int, database text, sslmode text, username bytea,
 *       password bytea, key_id text, created_at timestamptz,
 *       updated_at timestamptz, unique (user_id, name))
 *
 * as the comment of each method shows.
 *
 * Contract of every operation:
 *  - called on the store's loop thread;
 *  - returns 0 when started, then calls @p cb exactly once with @p ctx; or
 *    returns a negative code and never calls @p cb;
 *  - may call @p cb before returning (the store defers it for the user);
 *  - the store may call the backend again from inside @p cb, so hold no
 *    lock across it;
 *  - pointers passed in are valid only during the call; pointers passed to
 *    @p cb only during the callback;
 *  - a record belongs to its user_id: every lookup matches id AND user_id,
 *    and another user's record is KOTTE_ENOTFOUND.
 *
 * Ids reach the backend in canonical form (lowercase UUID, 36 characters),
 * so their string order is the order of PostgreSQL's uuid type.
 *
 * A NULL optional method means "not supported": the store answers
 * KOTTE_ENOTSUP. Fields are only ever appended. Start from
 * kotte_cred_backend_init() (or KOTTE_CRED_BACKEND_INIT for a static struct), which
 * zeroes every method and sets the version, then fill in yours:
 *
 *     struct my_backend *b = calloc(1, sizeof *b);
 *     kotte_cred_backend_init(&b->base, KOTTE_CRED_BACKEND_VERSION);
 *     b->base.name = "mine";
 *     b->base.get = my_get;  ...
 */
#ifndef KOTTE_SYS_CREDENTIAL_BACKEND_H
#define KOTTE_SYS_CREDENTIAL_BACKEND_H

#include "kotte/credential.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 2 added `check`; a version-1 backend is still accepted (without it). */
#define KOTTE_CRED_BACKEND_VERSION 2

/** A saved connection as backends see it: one row. */
typedef struct kotte_cred_record {
  const char *id;      /**< canonical UUID */
  const char *user_id;
  const char *name;    /**< unique per user_id */
  const char *host;
  int port;
  const char *database;
  const char *sslmode;
  const unsigned char *username; /**< sealed blob (NULL in list results is allowed) */
  size_t username_len;
  const unsigned char *password; /**< sealed blob (NULL in list results is allowed) */
  size_t password_len;
  const char *key_id; /**< the key that sealed both blobs (KOTTE_KEY_ID_LEN hex) */
  kotte_time created_at;
  kotte_time updated_at;
} kotte_cred_record;

/** Bits of kotte_cred_patch.set. */
#define KOTTE_CRED_SET_NAME (1u << 0)
#define KOTTE_CRED_SET_HOST (1u << 1)
#define KOTTE_CRED_SET_PORT (1u << 2)
#define KOTTE_CRED_SET_DATABASE (1u << 3)
#define KOTTE_CRED_SET_SSLMODE (1u << 4)
#define KOTTE_CRED_SET_USERNAME (1u << 5)
#define KOTTE_CRED_SET_PASSWORD (1u << 6)
#define KOTTE_CRED_SET_KEY_ID (1u << 7)
#define KOTTE_CRED_SET_UPDATED_AT (1u << 8)

/**
 * A change of one record: the columns named in @p set take the values
 * below, if every expectation holds (compare-and-swap). The store never
 * sets a blob without also setting key_id when that changes.
 */
typedef struct kotte_cred_patch {
  unsigned int set; /**< KOTTE_CRED_SET_* bits */
  const char *name;
  const char *host;
  int port;
  const char *database;
  const char *sslmode;
  const unsigned char *username;
  size_t username_len;
  const unsigned char *password;
  size_t password_len;
  const char *key_id;
  kotte_time updated_at;
  /** Expectations; NULL means none. */
  const char *expect_key_id;
  const unsigned char *expect_username;
  size_t expect_username_len;
  const unsigned char *expect_password;
  size_t expect_password_len;
} kotte_cred_patch;

/** One line of count_keys: how many records @p key_id seals. */
typedef struct kotte_cred_key_count {
  const char *key_id;
  uint64_t count;
} kotte_cred_key_count;

typedef void (*kotte_cred_backend_status_cb)(int status, void *ctx);
typedef void (*kotte_cred_backend_record_cb)(int status, const kotte_cred_record *rec,
                                             void *ctx);
typedef void (*kotte_cred_backend_list_cb)(int status, const kotte_cred_record *recs, size_t n,
                                           void *ctx);
typedef void (*kotte_cred_backend_count_cb)(int status, uint64_t count, void *ctx);
typedef void (*kotte_cred_backend_keys_cb)(int status, const kotte_cred_key_count *counts,
                                           size_t n, void *ctx);

/** A kotte_cred_backend with every method NULL and the version set. */
/* (every field named, so that -Wextra stays quiet; it grows with the struct) */
#define KOTTE_CRED_BACKEND_INIT                                              \
  { KOTTE_CRED_BACKEND_VERSION, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL }

/**
 * Readies @p be for a backend writer (libgit2's git_odb_init_backend()):
 * zeroes the fields that version @p version of the struct has, and no
 * byte past them (a backend compiled against an older header has a
 * smaller struct, and its own fields follow it), and sets be->version.
 * Then set the name and the methods. Any thread.
 * @return 0; KOTTE_EINVAL for a NULL @p be; KOTTE_EVERSION (and @p be
 *         untouched) for a version this library does not know
 *         (outside 1..KOTTE_CRED_BACKEND_VERSION).
 */
KOTTE_EXTERN int kotte_cred_backend_init(kotte_cred_backend *be, unsigned int version);

struct kotte_cred_backend {
  /** KOTTE_CRED_BACKEND_VERSION of the header the backend was built with. */
  unsigned int version;
  /** Short name, e.g. "memory". */
  const char *name;

  /**
   * Stores a new record. KOTTE_EEXISTS if the id is taken or the user
   * already has a record of that name; nothing is written then.
   *     INSERT INTO kotte_credentials VALUES (...)
   */
  int (*insert)(kotte_cred_backend *be, const kotte_cred_record *rec,
                kotte_cred_backend_status_cb cb, void *ctx);

  /**
   * The record @p id of @p user_id, blobs included; KOTTE_ENOTFOUND.
   *     SELECT * FROM kotte_credentials WHERE id = $1 AND user_id = $2
   */
  int (*get)(kotte_cred_backend *be, const char *user_id, const char *id,
             kotte_cred_backend_record_cb cb, void *ctx);

  /**
   * The records of @p user_id ordered by created_at, then id. Blobs may be
   * left out (NULL): the store never reads them here.
   *     SELECT id, ..., created_at, updated_at FROM kotte_credentials
   *      WHERE user_id = $1 ORDER BY created_at, id
   */
  int (*list)(kotte_cred_backend *be, const char *user_id, kotte_cred_backend_list_cb cb,
              void *ctx);

  /**
   * Applies @p patch atomically and calls back with the whole record as it
   * now is. Without expectations: KOTTE_ENOTFOUND if there is no such
   * record. With expectations: KOTTE_ECONFLICT if nothing was updated,
   * whether the record is gone or changed (the store reads again to tell).
   * KOTTE_EEXISTS if the new name is taken; nothing is written then.
   *     UPDATE kotte_credentials SET <set columns>
   *      WHERE id = $1 AND user_id = $2
   *        [AND key_id = $e1] [AND username = $e2] [AND password = $e3]
   *      RETURNING *
   */
  int (*update)(kotte_cred_backend *be, const char *user_id, const char *id,
                const kotte_cred_patch *patch, kotte_cred_backend_record_cb cb, void *ctx);

  /**
   * Deletes the record; calls back with the number deleted (0 or 1).
   *     DELETE FROM kotte_credentials WHERE id = $1 AND user_id = $2
   */
  int (*remove)(kotte_cred_backend *be, const char *user_id, const char *id,
                kotte_cred_backend_count_cb cb, void *ctx);

  /**
   * Up to @p limit records not sealed with @p key_id whose id is greater
   * than @p after_id (NULL: from the start), ordered by id, blobs included:
   * one round of a rewrap (keyset pagination, so every record is visited
   * once even while others change). Optional.
   *     SELECT * FROM kotte_credentials WHERE key_id <> $1
   *        AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3
   */
  int (*scan_stale)(kotte_cred_backend *be, const char *key_id, const char *after_id,
                    unsigned int limit, kotte_cred_backend_list_cb cb, void *ctx);

  /**
   * How many records each key seals, ordered by key_id. Optional.
   *     SELECT key_id, count(*) FROM kotte_credentials
   *      GROUP BY key_id ORDER BY key_id
   */
  int (*count_keys)(kotte_cred_backend *be, kotte_cred_backend_keys_cb cb, void *ctx);

  /**
   * Releases the backend. Called once, on the loop thread, when no
   * operation is in flight (or from inside the last callback: finish after
   * it returns). A backend with libuv handles closes them here and frees
   * its memory in the last close callback.
   */
  void (*free)(kotte_cred_backend *be);

  /**
   * Version 2. Readiness (kotte_cred_store_check()): calls back with 0 if
   * the backend can serve reads and writes now, else the error a write
   * would meet. Cheap, and must not grow the storage while all is well.
   * Optional: without it the store lists a user nobody is.
   */
  int (*check)(kotte_cred_backend *be, kotte_cred_backend_status_cb cb, void *ctx);
};

#ifdef __cplusplus
}
#endif
#endif /* KOTTE_SYS_CREDENTIAL_BACKEND_H */
