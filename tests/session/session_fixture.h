/* Test fixture: a session store on a loop the test drives, with a clock
 * the test sets, over a chosen backend; and blocking helpers that run one
 * asynchronous operation to completion while checking the delivery rule. */
#ifndef KOTTE_TEST_SESSION_FIXTURE_H
#define KOTTE_TEST_SESSION_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <kotte.h>
#include <kotte/pg.h>

#include "backend_helpers.h"

#define SEC 1000000LL

typedef struct fx {
  bh_env env; /* loop, kind, json_file path, pool (backend_helpers.h) */
  kotte_session_store *store;
  kotte_time now;
  kotte_session_options opts;
  kotte_session_backend *be; /* the store's backend (borrowed) */
} fx;

enum { FX_MEMORY = BH_MEMORY, FX_JSON_FILE = BH_JSON_FILE, FX_POSTGRESQL = BH_POSTGRESQL };

/* What the next setup applies (a group's setup sets them, fx_variant_reset
 * restores the defaults): the store's touch interval, and on PostgreSQL
 * whether the backend keeps its cache (then setup waits until the cache is
 * live, so that the tests exercise it). */
extern int64_t fx_touch_interval_s; /* KOTTE_SESSION_TOUCH_DEFAULT by default */
extern int fx_pg_cache;             /* 0 by default */
int fx_variant_reset(void **state);
int fx_variant_touch0(void **state);
/* a pipelining pool (pipeline_depth 8): the PostgreSQL backend gathers the
 * reads of a loop turn into one statement */
int fx_variant_pipelined(void **state);
int fx_variant_pipelined_cache(void **state);
int fx_variant_cache(void **state);

/* The backend kinds the conformance suite runs over. */
int fx_setup_memory(void **state);
int fx_setup_json_file(void **state);
/* PostgreSQL at $KOTTE_TEST_PG_CONNINFO (tests/pg/pg.sh); the table is
 * emptied before each test. fx_postgresql_conninfo() is NULL when unset. */
int fx_setup_postgresql(void **state);
#define fx_postgresql_conninfo bh_postgresql_conninfo
int fx_teardown(void **state);

/* (Re)creates the store with fx->opts (after a test changed them). */
void fx_reopen(fx *f);

/* PostgreSQL with the cache: runs the loop until the cache is live (10 s at most). */
void fx_wait_cache_live(fx *f);

/* Creates a backend of the fixture's kind on its loop (json_file: same path). */
kotte_session_backend *fx_backend(fx *f);

/* Blocking helpers (run the loop until the one callback). */
int fx_create(fx *f, const char *user, const char *data, kotte_session **out);
int fx_get(fx *f, const char *id, kotte_session **out);
int fx_update(fx *f, const char *id, const char *patch, kotte_session **out);
int fx_set(fx *f, const char *id, const char *user, const char *data, int64_t ttl,
           kotte_session **out);
int fx_delete(fx *f, const char *id);
int fx_touch(fx *f, const char *id);
int fx_regenerate(fx *f, const char *id, kotte_session **out);
int fx_list(fx *f, const char *user, kotte_session_list **out);
int fx_delete_user(fx *f, const char *user, uint64_t *count);
int fx_purge(fx *f, uint64_t *count);
int fx_check(fx *f);

/* Creates a session and copies its id into @p id. */
void fx_new_session(fx *f, const char *user, const char *data, char id[KOTTE_SESSION_ID_LEN + 1]);

#endif
