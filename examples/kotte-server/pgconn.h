/* kotte-server: the PostgreSQL connection shared by the stores (DB_*). */
#ifndef KS_PGCONN_H
#define KS_PGCONN_H

#include <stddef.h>

#include <uv.h>

#include <kotte/pg.h>

#include "config.h"

/* A libpq conninfo from DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD and
 * DB_CONNECT_TIMEOUT, values quoted. It holds the password: it lives in
 * sodium_malloc memory; release it with ks_pg_conninfo_free(), which wipes
 * it. NULL when out of memory. */
char *ks_pg_conninfo(const ks_config *cfg);
void ks_pg_conninfo_free(char *conninfo);

/* Opens the asynchronous pool on @p loop (DB_POOL_MIN_SIZE..MAX_SIZE). */
int ks_pg_pool_open(kotte_pg_pool **out, uv_loop_t *loop, const ks_config *cfg, char *err,
                    size_t errlen);

/* Readiness from the pool's known state (kotte_pg_pool_get_state()), at
 * once: 0 when queries may be tried, or KOTTE_EDB while the pool has no
 * connection and its attempts fail, with @p reason ("3 connection attempts
 * failed in a row: Connection refused"; libpq's reason, without host or
 * port). A pool that is failing with no attempt under way or scheduled
 * (DB_POOL_MIN_SIZE=0 makes none on its own) gets a query that it keeps
 * trying to run, so that readiness returns once the database does. */
int ks_pg_pool_ready(kotte_pg_pool *pool, char *reason, size_t n);

/* The schema at start-up, with @p pool open on @p loop (before serving):
 * with KOTTE_MIGRATE_ON_START, kotte_pg_migrate() of KOTTE_SQL_DIR first
 * (DB_USER must then be the database owner; concurrent starts take turns
 * under its advisory lock); then kotte_pg_schema_check(). A missing or
 * older schema stops the start: -1 with the check's message in err. A
 * database that cannot be asked now does not (logged; /ready tells). */
int ks_pg_schema_startup(kotte_pg_pool *pool, uv_loop_t *loop, const ks_config *cfg, char *err,
                         size_t errlen);

/* The key material of the postgresql session backend, the same on every
 * replica and the same as libkotte's Python drop-in derives:
 * SESSION_SECRET_KEY's bytes (at least 16), else BLAKE2b-256 of
 * MASTER_ENCRYPTION_KEY with personalisation "kotte-pg-session". Written to
 * @p out (sodium_malloc'd, release with sodium_free()). 0 or -1 with err. */
int ks_pg_session_secret(unsigned char **out, size_t *len, char *err, size_t errlen);

#endif
