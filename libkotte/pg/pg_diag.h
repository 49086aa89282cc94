/* Private: what the PostgreSQL backends tell a caller about a failed
 * statement. Not installed. */
#ifndef KOTTE_PG_DIAG_H
#define KOTTE_PG_DIAG_H

#include "kotte/pg.h"

/* The remedy for a missing or older schema, named by every message about
 * one (kotte-migrate, its Python twin, and the start-up setting). */
#define KOTTE__PG_MIGRATE_HINT                                                            \
  "run kotte-migrate (or python3 -m libkotte.kotte migrate) as the database owner, or " \
  "start with KOTTE_MIGRATE_ON_START=true"

/* Sets kotte_error_detail() for a statement of @p who that ended with
 * @p status (and @p res, which may be NULL) and returns @p status:
 *   "WHO: SQLSTATE XXXXX: PostgreSQL's message; hint: what to do"
 * for KOTTE_EDB, with PostgreSQL's own hint when it gave one, else the one
 * that SQLSTATE calls for; the pool's own detail with a hint for
 * KOTTE_EPOOLTIMEOUT; other codes are returned as they are. */
int kotte__pg_fail(int status, const char *who, const kotte_pg_result *res);

/* What to do about @p sqlstate (never NULL). */
const char *kotte__pg_hint(const char *sqlstate);

/* The check a store runs when it opens on @p pool (blocking; not on the
 * loop thread): KOTTE_ESCHEMA (with its detail) for a missing or older
 * schema, else 0 -- also when the database cannot be asked now (it may
 * come later; the operations then say why they fail) or the pool has no
 * runtime to wait on. */
int kotte__pg_schema_verify(kotte_pg_pool *pool);

#endif
