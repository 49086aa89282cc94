/* kotte-server: the users who may log in.
 *
 *  - file: a users file of "username:argon2id-hash" lines (libsodium's
 *    crypto_pwhash_str), written by `kotte-server user add`; the user id is
 *    the username (as Kotte's built-in admin has user_id "admin"). The file
 *    is re-read when it changes, so several servers may share it.
 *  - postgresql: Kotte's kotte_users table (id, username, password_hash
 *    with bcrypt "$2b$" hashes, checked with libxcrypt's crypt_rn()).
 *
 * Password hashes are checked on libuv's thread pool, at most
 * max_password_checks at a time and a bounded number queued, so logins
 * can neither block the loop nor starve the json_file backends of pool
 * threads. An unknown user costs the same check as a wrong password. */
#ifndef KS_USERS_H
#define KS_USERS_H

#include <stdio.h>

#include <uv.h>

#include "config.h"

typedef struct ks_users ks_users;

enum {
  KS_USER_OK = 0,     /* verified / found */
  KS_USER_DENIED = 1, /* unknown user or wrong password */
  KS_USER_BUSY = 2    /* too many password checks queued: try later */
};                    /* negative: a KOTTE_E* code, the store did not answer */

/* @p user_id and @p username are valid during the call only. */
typedef void (*ks_user_cb)(int result, const char *user_id, const char *username, void *ud);

typedef struct ks_users_stats {
  unsigned running, queued;
} ks_users_stats;

/* Opens the users file at cfg->users_file. If it does not exist, creates
 * it with the user "admin" and ADMIN_PASSWORD (default "admin", refused
 * when ENVIRONMENT=production), as Kotte seeds its admin. */
int ks_users_open_file(ks_users **out, uv_loop_t *loop, const ks_config *cfg, char *err,
                       size_t errlen);

/* Checks a password. Always calls back later on the loop thread. */
void ks_users_verify(ks_users *u, const char *username, const char *password, ks_user_cb cb,
                     void *ud);
/* Finds a user by id. Always calls back later on the loop thread. */
void ks_users_lookup(ks_users *u, const char *user_id, ks_user_cb cb, void *ud);
/* Readiness: calls back with 0 when the store answers, else a negative code. */
void ks_users_ping(ks_users *u, ks_user_cb cb, void *ud);

const char *ks_users_backend(const ks_users *u);
void ks_users_get_stats(const ks_users *u, ks_users_stats *out);

/* Cancels queued checks (their callbacks get KOTTE_ECANCELED) and frees
 * the object once running ones have finished. NULL is a no-op. */
void ks_users_close(ks_users *u);

/* ---- the users file, for the `user` subcommand ---------------------- */

/* 1 if @p name is a valid username: 1-64 of [A-Za-z0-9._@-]. */
int ks_username_valid(const char *name);
/* Adds (or with @p replace, also replaces) a user. 0 or -1 with err set. */
int ks_users_file_put(const char *path, const char *username, const char *password, int replace,
                      char *err, size_t errlen);
/* Deletes a user. 0, 1 when there was none, or -1 with err set. */
int ks_users_file_delete(const char *path, const char *username, char *err, size_t errlen);
/* Prints the usernames, one a line. 0 or -1 with err set. */
int ks_users_file_list(const char *path, FILE *out, char *err, size_t errlen);

/* ---- shared with the backends (users_internal) ---------------------- */

typedef enum ks_hash_kind { KS_HASH_ARGON2ID, KS_HASH_BCRYPT } ks_hash_kind;

#endif
