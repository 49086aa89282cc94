/* kotte-server: users in Kotte's kotte_users table. */
#ifndef KS_USERS_PG_H
#define KS_USERS_PG_H

#include <stdio.h>

#include <kotte/pg.h>

#include "users.h"

/* Opens the users store over @p pool (borrowed: close the users first).
 * First seeds the user admin into an empty table, as Kotte does (blocking
 * libpq; call before the loop runs). */
int ks_users_open_pg(ks_users **out, uv_loop_t *loop, kotte_pg_pool *pool, const ks_config *cfg,
                     char *err, size_t errlen);

/* The `user` subcommand on kotte_users (blocking libpq): add (or with
 * @p replace, change the password of) a user; list id and username. */
int ks_users_pg_put(const ks_config *cfg, const char *username, const char *password, int replace,
                    char *err, size_t errlen);
int ks_users_pg_list(const ks_config *cfg, FILE *out, char *err, size_t errlen);

/* A bcrypt ("$2b$", cost 12) hash of @p password into @p out. */
int ks_bcrypt_hash(const char *password, char *out, size_t cap);

#endif
