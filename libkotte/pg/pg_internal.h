/* Private: the PostgreSQL pool's structures, shared by pg_pool.c (dispatch,
 * timers, lifecycle) and pg_conn.c (one libpq connection on a uv_poll_t). */
#ifndef KOTTE_PG_INTERNAL_H
#define KOTTE_PG_INTERNAL_H

#include <libpq-fe.h>
#include <sys/types.h>

#include "runtime/runtime_internal.h"
#include "core/internal.h"
#include "kotte/pg.h"

typedef struct kpg_req kpg_req;
typedef struct kpg_conn kpg_conn;
typedef struct kpg_poll kpg_poll;

struct kotte_pg_stmt {
  unsigned int idx;
  char name[24];
  char *sql;
  int nparams;
  Oid *types;
};

typedef enum { REQ_WAITING = 1, REQ_SENT, REQ_DONE } kpg_req_state;

struct kpg_req {
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
  kpg_req_state state;
  int abandoned;     /* its callback already ran (timed out); still on a connection */
  int retried;       /* ran once more after a lost connection or read-only error */
  int reruns;        /* ran again because its batch was rolled back */
  uint64_t min_serial; /* only connections with at least this serial may take it */
  uint64_t queued_us;
  uint64_t deadline;   /* uv_now() ms; 0: none */
  int deadline_is_query;
  kpg_conn *conn;
  uint64_t seg;
  PGresult *res;     /* result, or the first error result */
  int failed;        /* res is an error */
  int aborted;       /* skipped: an earlier query of its batch failed */
  int status;        /* for delivery */
  kpg_req *next, *prev;   /* waiting queue or a connection's in-flight list */
  kpg_req *dnext, *dprev; /* deadline list */
  int in_deadlines;
  kpg_req *done_next;     /* delivery list */
};

typedef struct kpg_list {
  kpg_req *head, *tail;
  unsigned int n;
} kpg_list;

typedef enum { STEP_PREPARE = 1, STEP_EXEC, STEP_SYNC } kpg_step_kind;

typedef struct kpg_step {
  kpg_step_kind kind;
  kpg_req *req;      /* PREPARE, EXEC */
  unsigned int stmt; /* PREPARE */
  uint64_t seg;      /* SYNC */
} kpg_step;

typedef enum { CONN_CONNECTING = 1, CONN_SETUP, CONN_READY } kpg_conn_state;

struct kpg_poll {
  uv_poll_t h;
  kpg_conn *conn; /* NULL once the connection let go of it */
  kotte_pg_pool *pool;
  int fd;
  ino_t ino; /* of the socket, while connecting */
  int events;
};

typedef struct kpg_cancel kpg_cancel;

struct kpg_conn {
  kotte_pg_pool *pool;
  PGconn *pg;
  kpg_poll *poll;
  kpg_conn_state state;
  uint64_t serial;
  int want_write;
  int broken;     /* takes no new work; closed once drained */
  int setup_failed;
  uint64_t connect_deadline;
  uint64_t created;
  uint64_t retire_at; /* 0: never */
  uint64_t idle_since;
  uint64_t stuck_since; /* its oldest query timed out at */
  kpg_list inflight;
  kpg_step *steps;
  size_t steps_cap, steps_head, steps_n;
  uint64_t seg_open;   /* number of the batch being filled */
  unsigned int seg_fill; /* queries in it, not yet synced */
  int seg_failed;      /* the batch at the head of the results failed */
  unsigned char *prepared;
  size_t prepared_cap;
  kpg_cancel *cancel;
  int sync_listed;
  kpg_conn *next, *prev;       /* all connections */
  kpg_conn *sync_next;         /* connections with an unsynced batch */
};

struct kpg_cancel {
  uv_work_t work;
  kotte_pg_pool *pool;
  kpg_conn *conn; /* NULL once the connection is gone */
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
  kpg_conn *conns;          /* list of all */
  unsigned int n_ready, n_connecting;
  kpg_list waiting;
  kpg_req *dl_head, *dl_tail; /* deadline list, sorted */
  kpg_req *done_head, *done_tail;
  int draining;
  int in_handler; /* in one of the pool's libuv callbacks: it drains on its way out */
  kpg_conn *sync_head;
  uv_timer_t wake;     /* earliest deadline */
  uint64_t wake_due;   /* when wake is armed for (kpg_now() ms), 0: not armed */
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
uint64_t kpg_now(kotte_pg_pool *p);
void kpg_complete(kpg_req *r, int status);
void kpg_requeue(kpg_req *r, int fresh);
void kpg_pump(kotte_pg_pool *p);
void kpg_drain(kotte_pg_pool *p);
void kpg_deadline_set(kpg_req *r, uint64_t deadline, int is_query);
void kpg_deadline_remove(kpg_req *r);
void kpg_list_push(kpg_list *l, kpg_req *r);
void kpg_list_unshift(kpg_list *l, kpg_req *r);
void kpg_list_remove(kpg_list *l, kpg_req *r);
void kpg_req_free(kpg_req *r);
/* Connection attempt @p serial failed for @p why (libpq's first line: host,
 * port, reason; never a password): counts it, moves the backoff on. */
void kpg_connect_failed(kotte_pg_pool *p, uint64_t serial, const char *why);
void kpg_connected(kotte_pg_pool *p);
void kpg_update_ref(kotte_pg_pool *p);
void kpg_need_sync(kpg_conn *c);
void kpg_handle_closed(uv_handle_t *h);

/* pg_conn.c */
int kpg_conn_start(kotte_pg_pool *p);
/* PQconnectStart(), with a multi-host conninfo's hosts (and the ports and
 * hostaddrs that go with them) rotated left by @p rotation (pg_hosts.c). */
PGconn *kpg_connect_start(const char *conninfo, unsigned int rotation);
void kpg_conn_close(kpg_conn *c);
void kpg_conn_lost(kpg_conn *c, const char *why);
int kpg_conn_send(kpg_conn *c, kpg_req *r);
int kpg_conn_sync(kpg_conn *c);
int kpg_conn_alive(kpg_conn *c);
void kpg_conn_cancel(kpg_conn *c);
void kpg_conn_check_timeout(kpg_conn *c, uint64_t now);

#endif
