/* kotte-server: what the users backends (file, postgresql) share. */
#ifndef KS_USERS_INTERNAL_H
#define KS_USERS_INTERNAL_H

#include "users.h"

typedef struct ks_users_ops {
  const char *name;
  /* Finds the user's hash and hands it to ks__users_check(), or (unknown
   * user) hands it the dummy hash with @p known = 0; or fails through
   * ks__users_defer(). */
  void (*verify)(ks_users *u, const char *username, const char *password, ks_user_cb cb, void *ud);
  void (*lookup)(ks_users *u, const char *user_id, ks_user_cb cb, void *ud);
  void (*ping)(ks_users *u, ks_user_cb cb, void *ud);
  /* Releases the backend's state; called once nothing is pending. */
  void (*free_impl)(ks_users *u);
} ks_users_ops;

struct check_job;
struct deferred;

struct ks_users {
  const ks_users_ops *ops;
  void *impl;
  uv_loop_t *loop;
  uv_async_t async; /* delivers deferred results on a later loop turn */
  struct deferred *dq_head, *dq_tail;
  struct check_job *cq_head, *cq_tail; /* queued password checks */
  unsigned running, queued, max_running, max_queued;
  unsigned pending; /* running checks + backend operations in flight */
  int closing;
  char dummy_hash[256]; /* for unknown users, so they cost the same */
};

/* Initialises the common part (the async handle must run on @p loop). */
int ks__users_init(ks_users *u, uv_loop_t *loop, const ks_users_ops *ops, unsigned max_running);
/* Queues a check of @p password against @p hash. On success the callback
 * gets KS_USER_OK with @p user_id / @p username; with @p known = 0 it
 * always gets KS_USER_DENIED (after the same work). */
void ks__users_check(ks_users *u, ks_hash_kind kind, const char *hash, int known,
                     const char *user_id, const char *username, const char *password, ks_user_cb cb,
                     void *ud);
/* Calls back on a later loop turn with @p result. */
void ks__users_defer(ks_users *u, int result, const char *user_id, const char *username,
                     ks_user_cb cb, void *ud);
/* Backend operations in flight keep the object alive while closing. */
void ks__users_hold(ks_users *u);
void ks__users_release(ks_users *u);

/* The file backend's parsed content. */
typedef struct ks_user_rec {
  char *name;
  char *hash;
} ks_user_rec;
int ks__users_file_read(const char *path, ks_user_rec **recs, size_t *n, char *err, size_t errlen);
void ks__users_recs_free(ks_user_rec *recs, size_t n);

#endif
