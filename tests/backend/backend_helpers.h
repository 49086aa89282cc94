/* What the session and credential fixtures (tests/session/session_fixture.c,
 * tests/credential/cred_fixture.c) need around their store, written once
 * (libgit2's tests/libgit2/odb/backend/backend_helpers.c is the model): a
 * loop the test drives; for json_file a temporary folder and the journal's
 * path in it; for postgresql a pool on $KOTTE_TEST_PG_CONNINFO with the
 * store's table emptied; and the count of callbacks that came while their
 * start call was still on the stack (the delivery rule: must stay 0). */
#ifndef KOTTE_TEST_BACKEND_HELPERS_H
#define KOTTE_TEST_BACKEND_HELPERS_H

#include <kotte.h>
#include <kotte/pg.h>

enum { BH_MEMORY = 1, BH_JSON_FILE = 2, BH_POSTGRESQL = 3 };

typedef struct bh_env {
  uv_loop_t loop;
  int kind;             /* BH_MEMORY, BH_JSON_FILE or BH_POSTGRESQL */
  char dir[128];        /* BH_JSON_FILE: the temporary folder */
  char path[256];       /* BH_JSON_FILE: the journal in it */
  kotte_pg_pool *pool;  /* BH_POSTGRESQL: the pool the backends borrow */
  int in_start;         /* set while a start call is on the stack */
  int inline_callbacks; /* callbacks seen while in_start: must stay 0 */
} bh_env;

/* $KOTTE_TEST_PG_CONNINFO (tests/pg/pg.sh sets it), or NULL when unset. */
const char *bh_postgresql_conninfo(void);

/* Readies @p e for a store of @p kind: the loop; BH_JSON_FILE: a folder
 * with @p file's path in it; BH_POSTGRESQL: a pool and `DELETE FROM
 * @p table` (kotte_app may DELETE, not TRUNCATE). Asserts on failure. */
/* The pipeline_depth of the pool bh_env_open() opens for BH_POSTGRESQL
 * (1, no pipelining, unless a test group sets it). */
extern unsigned int bh_pg_pipeline_depth;
void bh_env_open(bh_env *e, int kind, const char *file, const char *table);

/* After the store was freed: the pool, the loop (which must close), the
 * folder; and the check that no callback came inline. */
void bh_env_close(bh_env *e);

/* Runs @p e's loop until the store a test just freed has closed. */
void bh_env_settle(bh_env *e);

/* Starting and ending a call, for the fixtures' blocking helpers: a
 * callback while in_start breaks the delivery rule. */
static inline void bh_seen(bh_env *e, int *calls) {
  if (e->in_start) e->inline_callbacks++;
  (*calls)++;
}

/* The end of a blocking helper whose start call returned @p rc: a failed
 * start never calls back (asserted); else runs the loop until the one
 * callback, and one more turn in which a second one would come (asserted
 * absent). Returns @p rc. */
int bh_finish(bh_env *e, const int *calls, int rc);

#endif
