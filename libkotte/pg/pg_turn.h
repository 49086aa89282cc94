/* Work a pool user wants done once per loop turn, just before the pool
 * sends the Sync of the batches filled in that turn: the PostgreSQL session
 * backend gathers the reads of a turn there into one statement
 * (session/backend_postgresql.c). Loop thread only. */
#ifndef KOTTE_PG_TURN_H
#define KOTTE_PG_TURN_H

#include "kotte/pg.h"

typedef struct kotte__pg_turn_hook {
  void (*fn)(void *arg); /* runs once per kotte__pg_at_turn_end() */
  void *arg;
  struct kotte__pg_turn_hook *next;
  int listed;
} kotte__pg_turn_hook;

/* Runs @p h->fn at the end of this loop turn, in the pool's flush, before
 * the batches of the turn are synced (so that the queries it submits go
 * with them). Listing a hook already listed does nothing. */
void kotte__pg_at_turn_end(kotte_pg_pool *p, kotte__pg_turn_hook *h);

/* Takes @p h off the list (before its owner is freed). */
void kotte__pg_turn_hook_cancel(kotte_pg_pool *p, kotte__pg_turn_hook *h);

/* The pool's pipeline_depth and max_size options. */
unsigned int kotte__pg_pipeline_depth(const kotte_pg_pool *p);
unsigned int kotte__pg_max_size(const kotte_pg_pool *p);

#endif
