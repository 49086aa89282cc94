/* Private: the PostgreSQL pool's structures, shared by pg_pool.c (dispatch,
 * timers, lifecycle) and pg_conn.c (one libpq connection on a uv_poll_t). */
#ifndef KOTTE_PG_INTERNAL_H
#define KOTTE_PG_INTERNAL_H

#include <libpq-fe.h>
#include <sys/types.h>

#include "runtime/runtime_internal.h"
#include "core/internal.h"
#include "kotte/pg.h"

typedef struct kotte__pg_req kotte__pg_req;
typedef struct kotte__pg_conn kotte__pg_conn;
typedef struct kotte__pg_poll kotte__pg_poll;

struct kotte_pg_stmt {
  unsigned int idx;
  char name[24];
  char *sql;
  int nparams;
  Oid *types;
};

typedef enum { REQ_WAITING = 1, REQ_SENT, REQ_DONE } kotte__pg_req_state;

struct kotte__pg_req {
  kotte_pg_pool *pool;
  kotte_pg_result_cb cb;
  void *userdata;
  const kotte_pg_stmt *stmt;
  char *sql;
  int nparams;
  char **values;
  int *lengths;
  int *formats;
  unsigned int flags;
  unsigned int timeout_ms; /* 0: none */
  kotte__pg_req_state state;
  int abandoned;     /* its callback already ran (timed out); still on a connection */
  int retried;       /* ran once more after a lost connection or read-only error */
  int reruns;        /* ran again because its batch was rolled back */
  uint64_t min_serial; /* only connections with at least this serial may take it */
  uint64_t queued_us;
  uint64_t deadline;   /* uv_now() ms; 0: none */
  int deadline_is_query;
  kotte__pg_conn *conn;
  uint64_t seg;
  PGresult *res;     /* result, or the first error result */
  int failed;        /* res is an error */
  int aborted;       /* skipped: an earlier query of its batch failed */
  int status;        /* for delivery */
  kotte__pg_req *next, *prev;   /* waiting queue or a connection's in-flight list */
  kotte__pg_req *dnext, *dprev; /* deadline list */
  int in_deadlines;
  kotte__pg_req *done_next;     /* delivery list */
};

typedef struct kotte__pg_list {
  kotte__pg_req *head, *tail;
  unsigned int n;
} kotte__pg_list;

typedef enum { STEP_PREPARE = 1, STEP_EXEC, STEP_SYNC } kotte__pg_step_kind;

typedef struct kotte__pg_step {
  kotte__pg_step_kind kind;
  kotte__pg_req *req;      /* PREPARE, EXEC */
  unsigned int stmt; /* PREPARE */
  uint64_t seg;      /* SYNC */
} kotte__pg_step;

typedef enum { CONN_CONNECTING = 1, CONN_SETUP, CONN_READY } kotte__pg_conn_state;

struct kotte__pg_poll {
  uv_poll_t h;
  kotte__pg_conn *conn; /* NULL once the connection let go of it */
  kotte_pg_pool *pool;
  int fd;
  ino_t ino; /* of the socket, while connecting */
  int events;
};

typedef struct kotte__pg_cancel kotte__pg_cancel;

struct kotte__pg_conn {
  kotte_pg_pool *pool;
  PGconn *pg;
  kotte__pg_poll *poll;
  kotte__pg_conn_state state;
  uint64_t serial;
  int want_write;
  int broken;     /* takes no new work; closed once drained */
  int setup_failed;
  uint64_t connect_deadline;
  uint64_t created;
  uint64_t retire_at; /* 0: never */
  uint64_t idle_since;
  uint64_t stuck_since; /* its oldest query timed out at */
  kotte__pg_list inflight;
  kotte__pg_step *steps;
  size_t steps_cap, steps_head, steps_n;
  uint64_t seg_open;   /* number of the batch being filled */
  unsigned int seg_fill; /* queries in it, not yet synced */
  int seg_failed;      /* the batch at the head of the results failed */
  unsigned char *prepared;
  size_t prepared_cap;
  kotte__pg_cancel *cancel;
  int sync_listed;
  kotte__pg_conn *next, *prev;       /* all connections */
  kotte__pg_conn *sync_next;         /* connections with an unsynced batch */
};

struct kotte__pg_cancel {
  uv_work_t work;
  kotte_pg_pool *pool;
  kotte__pg_conn *conn; /* NULL once the connection is gone */
  PGcancel *pc;
  int ok;
};

struct kotte_pg_pool {
  uv_loop_t *loop;
  kotte_runtime *rt;
  kotte_pg_pool_options opts;
  char *conninfo;
  unsigned int host_rotation; /* where the next attempt starts in a multi-host list */
  char *on_connect_sql;
  kotte__pg_conn *conns;          /* list of all */
  unsigned int n_ready, n_connecting;
  kotte__pg_list waiting;
  kotte__pg_req *dl_head, *dl_tail; /* deadline list, sorted */
  kotte__pg_req *done_head, *done_tail;
  int draining;
  int in_handler; /* in one of the pool's libuv callbacks: it drains on its way out */
  kotte__pg_conn *sync_head;
  struct kotte__pg_turn_hook *turn_hooks; /* pg_turn.h: run first in the flush */
  uv_timer_t wake;     /* earliest deadline */
  uint64_t wake_due;   /* when wake is armed for (kotte__pg_now() ms), 0: not armed */
  uv_timer_t backoff;  /* next connection attempt after failures */
  uv_timer_t maint;    /* lifetime, idle timeout, stuck connections, min_size */
  uv_prepare_t flusher; /* sends the Sync of batches filled this loop turn */
  uv_async_t defer;    /* delivery outside of any libpq processing */
  int flusher_active;
  int backoff_active;
  int defer_ref;
  unsigned int failures; /* consecutive failed connection attempts */
  unsigned int backoff_steps; /* of those, the ones that moved the backoff on */
  uint64_t backoff_serial;    /* the newest attempt when it last moved */
  kotte_time failing_since; /* wall clock of the first of them, 0 when none */
  char last_error[256];     /* why the last of them failed (no password), "" when none */
  int lost_since_connect;
  uint64_t backoff_until;
  uint64_t serial;
  kotte_pg_stmt **stmts;
  unsigned int n_stmts, stmts_cap;
  unsigned int n_handles; /* libuv handles not yet closed */
  unsigned int n_cancels; /* cancel requests on the thread pool */
  unsigned int n_pending; /* accepted queries whose callback has not run */
  int closing, finalized;
  kotte_pg_pool_stats stats;
  kotte__waiter *free_waiter; /* set while a thread waits in *_free() */
};

/* pg_pool.c */
uint64_t kotte__pg_now(kotte_pg_pool *p);
void kotte__pg_complete(kotte__pg_req *r, int status);
void kotte__pg_requeue(kotte__pg_req *r, int fresh);
void kotte__pg_pump(kotte_pg_pool *p);
void kotte__pg_drain(kotte_pg_pool *p);
void kotte__pg_deadline_set(kotte__pg_req *r, uint64_t deadline, int is_query);
void kotte__pg_deadline_remove(kotte__pg_req *r);
void kotte__pg_list_push(kotte__pg_list *l, kotte__pg_req *r);
void kotte__pg_list_unshift(kotte__pg_list *l, kotte__pg_req *r);
void kotte__pg_list_remove(kotte__pg_list *l, kotte__pg_req *r);
void kotte__pg_req_free(kotte__pg_req *r);
/* Connection attempt @p serial failed for @p why (libpq's first line: host,
 * port, reason; never a password): counts it, moves the backoff on. */
void kotte__pg_connect_failed(kotte_pg_pool *p, uint64_t serial, const char *why);
void kotte__pg_connected(kotte_pg_pool *p);
void kotte__pg_update_ref(kotte_pg_pool *p);
void kotte__pg_need_sync(kotte__pg_conn *c);
void kotte__pg_handle_closed(uv_handle_t *h);

/* pg_conn.c */
int kotte__pg_conn_start(kotte_pg_pool *p);
/* PQconnectStart(), with a multi-host conninfo's hosts (and the ports and
 * hostaddrs that go with them) rotated left by @p rotation (pg_hosts.c). */
PGconn *kotte__pg_connect_start(const char *conninfo, unsigned int rotation);
void kotte__pg_conn_close(kotte__pg_conn *c);
void kotte__pg_conn_lost(kotte__pg_conn *c, const char *why);
int kotte__pg_conn_send(kotte__pg_conn *c, kotte__pg_req *r);
int kotte__pg_conn_sync(kotte__pg_conn *c);
int kotte__pg_conn_alive(kotte__pg_conn *c);
void kotte__pg_conn_cancel(kotte__pg_conn *c);
void kotte__pg_conn_check_timeout(kotte__pg_conn *c, uint64_t now);

#endif
